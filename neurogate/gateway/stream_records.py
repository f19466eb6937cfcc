"""Durable records of live streams, so that a killed gateway's streams get their stop leaf.

Every live stream (a device's ingest, an app's subscription) has a row in
``live_streams``, written in the transaction that appends its ``stream.start`` leaf and
deleted in the one that appends its ``stream.stop`` leaf. A process that dies without
stopping its streams (``kill -9``, a power cut) leaves rows behind. They are closed with a
``stream.stop`` leaf whose ``reason_code`` is ``gateway_restart``:

- at start-up, every row of an earlier process of the same *instance* (this host and
  data directory). The instance lock (``gateway.lock`` in the data directory, held for
  the process's lifetime; the kernel releases it when a process dies) proves that no
  earlier process of the instance still runs. A process that cannot take the lock
  leaves those rows to the next rule;
- every ``HEARTBEAT_SECONDS``, every row whose process (another node of a cluster, say)
  has not refreshed it for ``STALE_SECONDS``.

A stop leaf that cannot be written when its stream ends (the store is down) is kept in
memory and written when the store answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import socket
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from neurogate.consent.models import LiveStreamRecord, utcnow
from neurogate.errors import NeurogateError
from neurogate.gateway.state import Gateway

log = logging.getLogger("neurogate.streams")
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0
RESTART_REASON = "gateway_restart"
PROCESS = uuid.uuid4().hex  # this process
_pending_stops: list[tuple[str, dict[str, Any]]] = []  # (stream, leaf) not yet written


def instance_of(gateway: Gateway) -> str:
    """This gateway's host and data directory: one process at a time runs an instance."""
    return f"{socket.gethostname()}:{Path(gateway.settings.data_dir).resolve()}"


def start(gateway: Gateway, *, stream: str, **leaf: Any) -> None:
    """Append the ``stream.start`` leaf and record the stream as live, in one transaction."""
    with gateway.transaction() as session:
        gateway.ledger.append(session, action="stream.start", stream=stream, **leaf)
        session.add(LiveStreamRecord(stream=stream, instance=instance_of(gateway),
                                     process=PROCESS, leaf=leaf))


def stop(gateway: Gateway, *, stream: str, **leaf: Any) -> None:
    """Append the ``stream.stop`` leaf and forget the stream, in one transaction.

    If the store cannot be written, the leaf is kept and written later by ``keep``."""
    try:
        _stop(gateway, stream, leaf)
    except NeurogateError:
        _pending_stops.append((stream, leaf))


def _stop(gateway: Gateway, stream: str, leaf: dict[str, Any]) -> None:
    with gateway.transaction() as session:
        gateway.ledger.append(session, action="stream.stop", stream=stream, **leaf)
        session.exec(delete(LiveStreamRecord).where(  # type: ignore[call-overload]
            col(LiveStreamRecord.stream) == stream))


def close_orphans(gateway: Gateway, *, own_instance: bool) -> int:
    """Close, with a ``gateway_restart`` stop leaf, the streams of processes that are gone.

    ``own_instance``: this process holds the instance lock, so every other process's row
    of this instance is an orphan. Returns how many streams were closed."""
    stale = utcnow() - timedelta(seconds=STALE_SECONDS)
    gone = col(LiveStreamRecord.seen_at) < stale
    if own_instance:
        gone = gone | (col(LiveStreamRecord.instance) == instance_of(gateway))
    with gateway.transaction() as session:
        rows = session.exec(
            select(LiveStreamRecord)
            .where(col(LiveStreamRecord.process) != PROCESS, gone)
            .order_by(col(LiveStreamRecord.started_at))
            .with_for_update(skip_locked=True)  # two nodes never close the same stream
        ).all()
        for row in rows:
            gateway.ledger.append(session, action="stream.stop", stream=row.stream,
                                  reason_code=RESTART_REASON, **row.leaf)
            session.delete(row)
    return len(rows)


def _heartbeat(gateway: Gateway) -> None:
    """Refresh this process's rows, write stop leaves kept back, close stale rows."""
    while _pending_stops:
        stream, leaf = _pending_stops[0]
        _stop(gateway, stream, leaf)
        _pending_stops.pop(0)
    if gateway.hub.streams or gateway.hub.subscriptions:
        with gateway.transaction() as session:
            _refresh(session)
    close_orphans(gateway, own_instance=False)


def _refresh(session: Session) -> None:
    session.exec(update(LiveStreamRecord)  # type: ignore[call-overload]
                 .where(col(LiveStreamRecord.process) == PROCESS).values(seen_at=utcnow()))


def _lock_instance(gateway: Gateway) -> int | None:
    """Take the instance lock; the open file descriptor, or None if another holds it."""
    path = Path(gateway.settings.data_dir) / "gateway.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        log.warning("another gateway process uses %s; its streams are left to it", path)
        return None
    return fd


async def keep(gateway: Gateway) -> None:
    """At start-up close the streams an earlier process left open; then keep the records."""
    fd = _lock_instance(gateway)
    try:
        try:
            closed = await run_in_threadpool(close_orphans, gateway,
                                             own_instance=fd is not None)
            if closed:
                log.warning("closed %d streams left open by a gateway that stopped "
                            "without ending them", closed)
        except NeurogateError as exc:
            log.warning("could not close streams left open at start-up: %s", exc.code)
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await run_in_threadpool(_heartbeat, gateway)
            except NeurogateError as exc:
                log.warning("live stream records not refreshed: %s", exc.code)
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


__all__ = ["HEARTBEAT_SECONDS", "RESTART_REASON", "STALE_SECONDS", "close_orphans",
           "instance_of", "keep", "start", "stop"]
