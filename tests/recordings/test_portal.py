"""The portal's "My recordings" page and download, and erasure's crypto-shredding, the
copies it names and its receipt, over a real gateway in process."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from neurogate.consent.activity import record_delivery
from neurogate.consent.models import Consent, Recording
from neurogate.consent.receipts import verify_receipt
from neurogate.gateway.app import create_app
from neurogate.gateway.demo import DemoWorld, seed
from neurogate.gateway.state import Gateway, build_gateway
from neurogate.recordings import Keyring, SegmentStore, write_segment
from neurogate.settings import Settings
from tests.gateway.conftest import FAST_HASHING
from tests.portal.test_data_pages import BASE_URL, csrf_of, sign_in
from tests.recordings.conftest import add_recording, samples


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Gateway, DemoWorld]]:
    gateway = build_gateway(Settings(data_dir=tmp_path / "data", environment="test",
                                     recording_kek_file=tmp_path / "secrets" / "kek",
                                     **FAST_HASHING))
    yield gateway, seed(gateway)
    gateway.engine.dispose()


def test_my_recordings_download_then_erasure_shreds_them(
        world: tuple[Gateway, DemoWorld], keyring: Keyring, store: SegmentStore) -> None:
    """A guardian sees the child's recording, downloads it as EDF, then erases: the
    recording and its files go, the copies an app received are named, a receipt verifies."""
    gateway, demo = world
    mia = demo.subjects["mia"]
    with gateway.transaction() as session:
        consent = session.exec(select(Consent).where(Consent.subject_id == mia)).first()
        assert consent is not None
        record_delivery(session=session, subject_id=mia, app_id=consent.app_id,
                        purpose_id=consent.purpose_id, day=datetime.now(UTC).date(),
                        messages=7)
    recording_id = add_recording(gateway, mia, consent.id)
    with gateway.transaction() as session:
        row = session.get(Recording, recording_id)
        write_segment(session=session, store=store, keyring=keyring, recording=row,  # type: ignore[arg-type]
                      index=0, segment=samples(0, 500))
    with TestClient(create_app(gateway=gateway), base_url=BASE_URL) as client:
        sign_in(client, "parent.chen")
        overview = client.get(f"/portal/my-data?subject={mia}")
        assert f'href="/portal/my-data/recordings?subject={mia}"' in overview.text
        page = client.get(f"/portal/my-data/recordings?subject={mia}")
        assert page.status_code == 200, page.text
        assert "My recordings" in page.text and "Download my recordings (.zip)" in page.text
        download = client.post("/portal/my-data/recordings/export",
                               data={"csrf_token": csrf_of(page.text), "subject": mia})
        assert download.status_code == 200, download.text
        names = zipfile.ZipFile(io.BytesIO(download.content)).namelist()
        assert f"{recording_id}.edf" in names
        spanish = client.get(f"/portal/my-data/recordings?subject={mia}",
                             headers={"Accept-Language": "es"})
        assert "Mis grabaciones" in spanish.text
        erase = client.get(f"/portal/my-data/erase?subject={mia}")
        assert "Your recordings, and the key that could decrypt them." in erase.text
        done = client.post("/portal/my-data/erase", data={
            "csrf_token": csrf_of(erase.text), "subject": mia, "confirm": "yes"})
        assert done.status_code == 200, done.text
    assert "Your recordings (1) were deleted" in done.text
    assert "received 7 messages about you" in done.text
    receipt = json.loads(done.text.split('<pre class="receipt">')[1].split("</pre>")[0]
                         .replace("&#34;", '"').replace("&quot;", '"').replace("&#39;", "'")
                         .replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))
    assert verify_receipt(receipt, gateway.ledger.signer.verifier).leaf["action"] == \
        "subject.erase"
    assert not (store.root / recording_id).exists()
    with gateway.transaction() as session:
        assert session.get(Recording, recording_id) is None
