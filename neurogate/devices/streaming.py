"""Run a source into the gateway: read an adapter, push to a `DeviceClient`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from neurogate_client import DeviceClient

from ._checks import check_range
from .adapters import Adapter, Chunk

__all__ = ["stream_adapter"]


def stream_adapter(adapter: Adapter, client: DeviceClient, *, duration_s: float | None = None,
                   stop: threading.Event | None = None, block: bool = False,
                   on_chunk: Callable[[Chunk], None] | None = None,
                   read_timeout_s: float = 0.1) -> int:
    """Read a started adapter and push every chunk to a client, until told to stop.

    Parameters
    ----------
    adapter : Adapter
        A started adapter (inside ``with adapter, adapter.streaming():``).
    client : DeviceClient
        A started client for the same layout (``client.info == adapter.info``).
    duration_s : float | None
        Stop after this many seconds of wall-clock time (default: until the source ends
        or ``stop`` is set).
    stop : threading.Event | None
        Set it to stop early.
    block : bool
        Wait for room in the client's buffer instead of dropping (for files, which can
        wait; a live board cannot).
    on_chunk : callable | None
        Called with each chunk pushed (for progress and tests).
    read_timeout_s : float
        Longest wait per read, so that ``stop`` is noticed.

    Returns
    -------
    samples : int
        Samples pushed.
    """
    if duration_s is not None:
        duration_s = check_range("duration_s", duration_s, low=0.0, unit=" s")
    deadline = None if duration_s is None else time.monotonic() + duration_s
    pushed = 0
    while not (stop is not None and stop.is_set()):
        if deadline is not None and time.monotonic() >= deadline:
            break
        chunk = adapter.read(timeout=read_timeout_s)
        if chunk is None:
            break
        if chunk.n_times == 0:
            continue
        client.push(chunk.data, float(chunk.timestamps[0]), block=block)
        pushed += chunk.n_times
        if on_chunk is not None:
            on_chunk(chunk)
    return pushed
