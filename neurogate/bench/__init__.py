"""Benchmarks: throughput, latency, revocation and leakage (``neurogate bench``).

The gateway is measured as a separate process over loopback, beside a bare relay
(`neurogate.bench.relay`) and Lab Streaming Layer, with client workers in their own
processes; see ``docs/benchmarks.md``. Names load on first use, so that importing the
command line (`bench_app`) stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "BenchConfig": "neurogate.bench.config",
    "FULL": "neurogate.bench.config",
    "QUICK": "neurogate.bench.config",
    "StreamSetting": "neurogate.bench.config",
    "bench_app": "neurogate.bench.cli",
    "run_bench": "neurogate.bench.run",
    "run_leakage": "neurogate.bench.leakage",
    "run_profile": "neurogate.bench.profile",
    "tiny": "neurogate.bench.config",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        msg = f"module 'neurogate.bench' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_WHERE[name]), name)


__all__ = [
    "BenchConfig",
    "FULL",
    "QUICK",
    "StreamSetting",
    "bench_app",
    "run_bench",
    "run_leakage",
    "run_profile",
    "tiny",
]
