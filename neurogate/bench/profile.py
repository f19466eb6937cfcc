"""``neurogate bench profile``: where the gateway spends its CPU under streaming load.

Starts a gateway, streams N devices of one setting with their two apps each (as the
throughput benchmark does), and samples the gateway process with py-spy
(``pip install py-spy``) for a while. Writes the raw collapsed stacks (``.txt``, for
flame graph tools) and a summary (``.json``): the functions with the most samples
on-CPU, by self time and by inclusive time.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neurogate.bench._procs import Meter, start_gateway
from neurogate.bench._seed import create_admin, open_clinic
from neurogate.bench.config import SETTINGS
from neurogate.bench.run import write_json
from neurogate.bench.throughput import GatewaySystem
from neurogate.errors import ValidationError
from neurogate.gateway.recording_bench import RecordingGateway

Say = Callable[[str], None]
_FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+?)(?::(?P<line>\d+))?\)$")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        msg = "py-spy is not installed; install it with 'pip install py-spy' and try again."
        raise ValidationError(msg, field="py-spy")
    return found


def _where(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``file.py:func`` (line numbers merged)."""
    match = _FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    marker = "site-packages/"
    short = path.split(marker, 1)[1] if marker in path else "/".join(path.split("/")[-3:])
    return f"{short}:{match['func']}"


def summarize_stacks(text: str, top: int = 30) -> dict[str, Any]:
    """Self and inclusive sample shares per function from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_where(f) for f in stack.split(";") if f and not f.startswith("process ")
                  and not f.startswith("thread ")]
        if not frames:
            continue
        total += n
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n

    def share(counter: collections.Counter[str]) -> list[dict[str, Any]]:
        return [{"function": name, "pct": round(100.0 * n / total, 2)}
                for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "self": share(own), "inclusive": share(inclusive)}


def run_profile(setting_name: str, streams: int, seconds: float, out: Path,
                say: Say = print, *, recording: bool = False) -> dict[str, Any]:
    """Profile the gateway carrying ``streams`` streams of ``setting_name`` (with
    ``recording``: the benchmark's gateway with recording on, docs/recordings.md)."""
    if setting_name not in SETTINGS:
        msg = (f"Invalid value for the 'setting' parameter. Allowed values are "
               f"{', '.join(repr(k) for k in SETTINGS)}, but got {setting_name!r} instead.")
        raise ValidationError(msg, field="setting")
    spy = _py_spy()
    setting = SETTINGS[setting_name]
    out.mkdir(parents=True, exist_ok=True)
    name = f"profile-{setting.name}-{streams}{'-recording' if recording else ''}"
    raw = out / f"{name}.txt"
    with tempfile.TemporaryDirectory(prefix="neurogate-profile-") as tmp:
        recorder = RecordingGateway.start(Path(tmp)) if recording else None
        if recorder is not None:
            server, clinic = recorder.server, recorder.clinic
        else:
            create_admin(Path(tmp) / "var")
            server = start_gateway(Path(tmp) / "var", Path(tmp) / "gateway.log")
        system = None
        try:
            if recorder is None:
                clinic = open_clinic(server.url)
            system = GatewaySystem(setting, server, clinic)
            system.grow(streams)
            system.start(time.time() + 0.2)
            time.sleep(3.0)
            meter = Meter(system.pids())
            meter.begin()
            say(f"Sampling the gateway (pid {server.pid}) for {seconds:g} s with py-spy...")
            subprocess.run([spy, "record", "--pid", str(server.pid), "--duration",
                            str(int(seconds)), "--rate", "200", "--format", "raw",
                            "--output", str(raw), "--nonblocking"], check=True,
                           capture_output=True, timeout=seconds + 60)
            usage = meter.end()
        finally:
            if system is not None:
                system.close()
            if recorder is not None:
                recorder.stop()
            else:
                server.stop()
    summary = {"setting": setting.as_dict(), "streams": streams, "seconds": seconds,
               "recording": recording, "usage": usage, "raw_stacks": raw.name,
               **summarize_stacks(raw.read_text(encoding="utf-8"))}
    write_json(summary, out / f"{name}.json")
    say(f"Gateway CPU {usage['server']['cpu_pct']}% of one core; top functions (inclusive):")
    for row in summary["inclusive"][:20]:
        say(f"  {row['pct']:6.2f}%  {row['function']}")
    return summary


__all__ = ["run_profile", "summarize_stacks"]
