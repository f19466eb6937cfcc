"""Every shell block of README.md, run against a live demo gateway.

The rule: every ```sh and ```bash block of README.md runs, in document order, in one
``bash`` process (so variables set by one block are there for the next) with
``set -euo pipefail``; a block succeeds when bash reaches its end, and the test fails
naming the first block that did not. The working directory is a fresh temporary directory
with ``.venv`` linked to the repository's virtual environment, so ``.venv/bin/neurogate``
works as it does in a checkout and nothing is written into the repository.

The gateway is the one ``make demo`` runs: this test starts ``neurogate demo`` itself on a
free loopback port with its own data directory (cheap password hashing), and the blocks
get ``NEUROGATE_URL`` (its address) and ``NEUROGATE_DATA_DIR`` (its data directory) in
their environment. Lines that would start a gateway or run the test suite would recurse
or never end, so they are run in a form that checks and returns:

- ``make <target>`` runs as ``make -n -C <repository> <target>`` (the target exists and
  would run; ``make demo``'s recipe must be ``neurogate demo``, the command this test
  started);
- ``neurogate serve`` and ``neurogate demo`` without ``--script`` or a subcommand are
  replaced by a check that the gateway this test started answers ``/healthz``.

Every other line runs as written. The blocks need ``curl`` and ``jq``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import skip_or_fail
from tests.e2e.conftest import FAST_HASHING_ENV, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
_SERVES = re.compile(r"^\s*(\S*/)?neurogate (serve\b|demo(?!\s+(--script|credentials)))")
_MAKE = re.compile(r"^\s*make\s+(\S+)(.*)$")


def readme_blocks() -> list[str]:
    """The ```sh and ```bash blocks of README.md, in order."""
    return re.findall(r"^```(?:sh|bash)\n(.*?)^```$", README.read_text(encoding="utf-8"),
                      flags=re.MULTILINE | re.DOTALL)


def runnable(block: str) -> str:
    """A block with its serving and make lines in the form the module docstring gives."""
    lines = []
    for line in block.splitlines():
        make = _MAKE.match(line)
        if make:
            lines.append(f'make -n -C "$NEUROGATE_REPO" {make.group(1)} >/dev/null')
        elif _SERVES.match(line):
            lines.append('curl -sf "$NEUROGATE_URL/healthz" >/dev/null')
        else:
            lines.append(line)
    return "\n".join(lines)


@dataclass
class Demo:
    url: str
    data_dir: Path
    env: dict[str, str]
    printed: list[str]


def _start_demo(env: dict[str, str], port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """``neurogate demo`` on ``port``; returns the process and what it printed before it
    served (read until its ``API docs:`` line)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "neurogate", "demo", "--host", "127.0.0.1", "--port",
         str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    printed: list[str] = []
    for line in process.stdout:
        printed.append(line.rstrip("\n"))
        if line.startswith("API docs:"):
            break
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, f"neurogate demo exited: {printed}"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process, printed
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, "neurogate demo did not answer within 60 s"
        time.sleep(0.1)


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A ``neurogate demo`` gateway on loopback with its own data directory."""
    for tool in ("curl", "jq", "make"):
        if shutil.which(tool) is None:
            skip_or_fail(f"The README's shell blocks need {tool!r}, which is not installed.")
    data_dir = tmp_path_factory.mktemp("readme") / "var"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEUROGATE_")}
    env.update(NEUROGATE_DATA_DIR=str(data_dir), NEUROGATE_ENVIRONMENT="development",
               **FAST_HASHING_ENV)
    process, printed = _start_demo(env, port)
    try:
        yield Demo(f"http://127.0.0.1:{port}", data_dir, env, printed)
    finally:
        _stop(process)


def test_readme_has_shell_blocks_for_login_consent_decision_revoke() -> None:
    """The README shows the request bodies of login, consent, decision and revoke."""
    text = "\n".join(readme_blocks())
    for path in ("/v1/auth/login", "/v1/consents\"", "/v1/decisions", "/revoke"):
        assert path in text, path
    assert '{"username": "alex", "password": "demo-password"}' in text
    assert '{"reason": "Trying the README"}' in text
    assert "neurogate demo credentials --shell" in text
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:.*\n\t\$\(BIN\)/neurogate demo$", makefile, flags=re.MULTILINE)


def test_every_readme_shell_block_succeeds(demo: Demo, tmp_path: Path) -> None:
    """Every ```sh/```bash block of README.md runs in order and succeeds (module docstring)."""
    blocks = readme_blocks()
    assert len(blocks) >= 5
    (tmp_path / ".venv").symlink_to(REPO / ".venv")
    script = ["set -euo pipefail"]
    for number, block in enumerate(blocks, start=1):
        script += [f"echo '>>> README block {number}' >&2", runnable(block),
                   f"printf '\\nREADME block {number} ok\\n'"]
    env = {**demo.env, "NEUROGATE_URL": demo.url, "NEUROGATE_REPO": str(REPO)}

    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)

    finished = re.findall(r"^README block (\d+) ok$", done.stdout, flags=re.MULTILINE)
    failed = len(finished) + 1
    assert done.returncode == 0, (
        f"README block {failed} failed (exit {done.returncode}):\n"
        f"{blocks[failed - 1] if failed <= len(blocks) else ''}\n--- stderr:\n"
        f"{done.stderr[-3000:]}")
    assert [int(n) for n in finished] == list(range(1, len(blocks) + 1))
    assert "Receipt valid" in done.stdout
    assert "Ledger verified" in done.stdout


def test_demo_prints_its_client_credentials_at_start(demo: Demo) -> None:
    """``neurogate demo`` prints the client credentials it keeps beside its data, and the
    gateway accepts them (a second start prints them again: tests/gateway/test_demo.py)."""
    from neurogate.gateway.demo import load_credentials

    lines = re.findall(r"^client credentials \((\w+)\): (\S+) (\S+)$", "\n".join(demo.printed),
                       flags=re.MULTILINE)
    printed = {label: (client_id, secret) for label, client_id, secret in lines}
    assert set(printed) == {"clinic", "focus", "adlab", "cap", "band"}
    assert printed == load_credentials(demo.data_dir)
    token = httpx.post(f"{demo.url}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=printed["clinic"])
    assert token.status_code == 200, token.text
