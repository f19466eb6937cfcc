"""`pip install ./clients/python` in a fresh virtual environment brings none of the
gateway's dependencies, and the library's example device and app stream through a live
gateway from there."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import skip_or_fail
from tests.e2e.conftest import clinic_server

pytestmark = pytest.mark.e2e

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_ONLY = ("fastapi", "mne", "sqlalchemy", "scipy", "starlette", "cedarpy", "neurogate")


@dataclass
class World:
    """A fresh virtual environment with the client library, and a live gateway."""

    python: Path  # of the virtual environment
    url: str  # of the gateway
    secrets: dict[str, tuple[str, str]]  # the clinic's client credentials
    subject: str  # the clinical app's pseudonym of adult1, whose device dev1 is paired


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """``python -m venv`` then ``pip install ./clients/python`` (from a copy, so the build
    leaves nothing in the checkout), while a gateway process with the test clinic starts."""
    root = tmp_path_factory.mktemp("client-venv")
    source = root / "neurogate-client"
    shutil.copytree(CLIENT_DIR, source,
                    ignore=shutil.ignore_patterns("*.egg-info", "build", "__pycache__"))
    python = root / "venv" / "bin" / "python"
    install = subprocess.Popen(
        ["sh", "-c", '"$0" -m venv "$1" && "$2" -m pip install --quiet '
         '--disable-pip-version-check "$3"', sys.executable, str(root / "venv"), str(python),
         str(source)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with clinic_server(tmp_path_factory.mktemp("client-live")) as (server, clinic, _, _):
            token = httpx.post(f"{server.url}/oauth/token", auth=clinic.secrets["clinic_app"],
                               data={"grant_type": "client_credentials"},
                               timeout=30).json()["access_token"]
            rows = httpx.get(f"{server.url}/v1/consents", timeout=30,
                             headers={"Authorization": f"Bearer {token}"}).json()
            output, _ = install.communicate(timeout=600)
            if install.returncode != 0:
                skip_or_fail("pip could not install ./clients/python into a fresh virtual "
                             f"environment (is the package index reachable?): {output[-800:]}")
            yield World(python, server.url, clinic.secrets, str(rows[0]["subject"]))
    finally:
        install.kill()
        install.wait()


def test_clean_install_brings_no_server_dependency(world: World, tmp_path: Path) -> None:
    """The fresh environment has neurogate_client, websockets, httpx and numpy, and none of
    FastAPI, MNE, SQLAlchemy, SciPy, Starlette, Cedar or the gateway itself."""
    probe = ("import importlib.util, json; print(json.dumps({m: importlib.util.find_spec(m) "
             f"is not None for m in {list(SERVER_ONLY)!r} + ['neurogate_client', 'websockets', "
             "'httpx', 'numpy']}))")
    done = subprocess.run([str(world.python), "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=True)
    found = json.loads(done.stdout)
    assert {m for m, present in found.items() if present} == {
        "neurogate_client", "websockets", "httpx", "numpy"}


def test_clean_install_examples_stream_through_a_live_gateway(world: World,
                                                            tmp_path: Path) -> None:
    """examples/device.py streams 3 s from the fresh environment, and examples/app.py,
    subscribed meanwhile, receives raw samples from it: every sample the device sent."""
    url, subject = world.url, world.subject
    app_id, app_secret = world.secrets["clinic_app"]
    dev_id, dev_secret = world.secrets["dev1"]
    examples = CLIENT_DIR / "examples"
    app = subprocess.Popen(
        [str(world.python), str(examples / "app.py"), "--gateway", url, "--client-id", app_id,
         "--client-secret", app_secret, "--subject", subject, "--purpose",
         "clinical_monitoring", "--seconds", "30", "--stop-after", "750"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert app.stdout is not None
        first = app.stdout.readline()  # "subscribed: ..." once the gateway accepted it
        assert first.startswith("subscribed: products"), first + app.stderr.read()
        device = subprocess.run(
            [str(world.python), str(examples / "device.py"), "--gateway", url, "--client-id",
             dev_id, "--client-secret", dev_secret, "--channels", "C3,C4", "--rate", "250",
             "--seconds", "3"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
        out, err = app.communicate(timeout=60)
    finally:
        app.kill()
    assert device.returncode == 0, device.stderr
    stats = json.loads(device.stdout.strip().splitlines()[-1])
    assert stats["pushed_samples"] == stats["delivered_samples"] == 750
    assert stats["lost_samples"] == 0
    assert app.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["samples"]["raw"] == 750
    assert summary["gaps"] == 0
    assert summary["revoked"] is None


def test_clean_install_readme_device_example_runs(world: World, tmp_path: Path) -> None:
    """The device example of clients/python/README.md, with real credentials and address,
    runs in the fresh environment: 4 s pushed, every sample confirmed, none lost."""
    readme = (CLIENT_DIR / "README.md").read_text(encoding="utf-8")
    block = re.findall(r"```python\n(.*?)```", readme, flags=re.S)[0]
    dev_id, dev_secret = world.secrets["dev1"]
    code = (block.replace("http://127.0.0.1:8000", world.url)
            .replace('client_id="device_…", client_secret="…"',
                     f'client_id="{dev_id}", client_secret="{dev_secret}"'))
    assert dev_id in code and world.url in code
    done = subprocess.run([str(world.python), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "pushed_samples=1000, delivered_frames=" in done.stdout
    assert "delivered_samples=1000, lost_frames=0, lost_samples=0," in done.stdout
