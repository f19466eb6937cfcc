"""``neurogate keys status|rotate``, ``neurogate subjects export`` and
``neurogate recordings sweep`` against a gateway's data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import mne
import pytest
from typer.testing import CliRunner

from neurogate.consent.models import Recording
from neurogate.gateway.cli import app
from neurogate.gateway.state import Gateway
from neurogate.recordings import Keyring, SegmentStore, write_segment
from neurogate.settings import get_settings
from tests.recordings.conftest import add_recording, add_subject, samples


@pytest.fixture
def cli_env(gateway: Gateway, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    settings = gateway.settings
    monkeypatch.setenv("NEUROGATE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("NEUROGATE_RECORDING_KEK_FILE", str(settings.recording_kek_file))
    monkeypatch.setenv("NEUROGATE_ENVIRONMENT", "test")
    if settings.database_url:
        monkeypatch.setenv("NEUROGATE_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def test_keys_rotate_and_export_from_the_command_line(
        gateway: Gateway, store: SegmentStore, keyring: Keyring, cli_env: CliRunner,
        tmp_path: Path) -> None:
    """Status shows v1, rotation moves every data key to v2, the export still decrypts."""
    subject_id, consent_id = add_subject(gateway)
    recording_id = add_recording(gateway, subject_id, consent_id)
    with gateway.transaction() as session:
        row = session.get(Recording, recording_id)
        for index in range(2):
            write_segment(session=session, store=store, keyring=keyring, recording=row,  # type: ignore[arg-type]
                          index=index, segment=samples(index * 250, 250))
    status = cli_env.invoke(app, ["keys", "status"])
    assert status.exit_code == 0, status.output
    assert "Current version: v1" in status.output
    rotated = cli_env.invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    assert "Re-wrapped 1 data keys under v2" in rotated.output
    after = cli_env.invoke(app, ["keys", "status"])
    assert "Current version: v2" in after.output and "v1" not in after.output.split(
        "Current")[0]
    out = tmp_path / "export"
    exported = cli_env.invoke(app, ["subjects", "export", subject_id, "--out", str(out)])
    assert exported.exit_code == 0, exported.output
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{recording_id}.edf", "ledger-proofs.json", "metadata.json"])
    raw = mne.io.read_raw_edf(out / f"{recording_id}.edf", verbose="error")
    assert raw.n_times >= 500
    unknown = cli_env.invoke(app, ["subjects", "export", "nobody", "--out", str(out)])
    assert unknown.exit_code == 1
    assert "No subject with the id 'nobody' exists" in unknown.output
    swept = cli_env.invoke(app, ["recordings", "sweep"])
    assert swept.exit_code == 0 and "Deleted 0 recordings" in swept.output
