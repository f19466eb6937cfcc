"""``neurogate bench ledger``: what one append and one root cost as the log grows.

The ledger keeps its frontier (the roots of its perfect subtrees), so an append hashes
O(log n) nodes and reads O(1) rows, and the root folds O(log n) subtree roots; the
checkpoint is signed once per committing transaction. This bench grows a real ledger on
SQLite (the gateway's own code path, batches of ``FILL_BATCH`` appends per transaction)
to each size and then measures, at that size:

- ``append``: one ``Ledger.append`` in its own transaction (the lock check, the catch-up
  query, the entry, its salt and commitment, the row written, the frontier), in
  microseconds, timed after the transaction's ``BEGIN IMMEDIATE``;
- ``append CPU``: the same, in CPU time of this process (wall-clock figures on a shared
  machine include waiting for a core; CPU time does not);
- ``commit``: that transaction's commit, with its one checkpoint signature (and SQLite's
  fsync, which dominates on most disks);
- ``root``: the root from the frontier, against ``full root``, the root recomputed from
  every leaf hash (what each append used to cost).

The figures are printed and, with ``--out``, written to ``ledger.json``.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

FILL_BATCH = 1000
"""Appends per transaction while the log is grown to the next size."""

DEFAULT_SIZES = (1_000, 10_000, 100_000)


def _p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def run_ledger_bench(
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    samples: int = 200,
    out: Path | None = None,
    say: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Grow a ledger to each of ``sizes`` and measure appends and roots there.

    Returns ``{"sizes": [{"leaves", "append_mean_us", "append_p99_us",
    "append_cpu_mean_us", "commit_mean_us", "root_us", "full_root_us"}, ...]}``, also
    written to ``out/ledger.json`` when given.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlmodel import Session, col, select

    from neurogate.consent.checkpoint import generate_signer
    from neurogate.consent.db import get_engine, upgrade
    from neurogate.consent.ledger import Ledger
    from neurogate.consent.merkle import root
    from neurogate.consent.models import LedgerLeaf

    if not sizes or any(b <= a for a, b in zip(sizes, sizes[1:], strict=False)) or sizes[0] < 1:
        msg = (f"Invalid value for the 'sizes' parameter. It must be increasing positive "
               f"leaf counts, like 1000 10000 100000, but got {list(sizes)} instead.")
        raise ValueError(msg)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="neurogate-ledger-bench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'ledger.db'}"
        upgrade(url)
        engine = get_engine(url)
        ledger = Ledger(signer=generate_signer("bench.local/ledger"), origin="bench.local/ledger")
        size = 0

        def append(session: Session, n: int) -> None:
            ledger.append(session, action="consent.grant", subject=f"p_{n % 500:08x}",
                          app="app_bench", purpose="research_noncommercial",
                          consent=f"c_{n:08x}", actor_role="subject",
                          concerns=f"s_{n % 500:08x}")

        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns, disable=not progress, transient=False) as bar:
            task = bar.add_task("growing the ledger", total=sizes[-1] + samples * len(sizes))
            for target in sizes:
                while size < target:
                    batch = min(FILL_BATCH, target - size)
                    with Session(engine, expire_on_commit=False) as session:
                        for _ in range(batch):
                            append(session, size)
                            size += 1
                        session.commit()
                    bar.advance(task, batch)
                bar.update(task, description=f"measuring at {size} leaves")
                appends: list[float] = []
                cpu: list[float] = []
                commits: list[float] = []
                for _ in range(samples):
                    with Session(engine, expire_on_commit=False) as session:
                        session.connection()  # BEGIN IMMEDIATE: the transaction's, not the append's
                        c0, t0 = time.process_time_ns(), time.perf_counter_ns()
                        append(session, size)
                        t1, c1 = time.perf_counter_ns(), time.process_time_ns()
                        session.commit()
                        t2 = time.perf_counter_ns()
                    size += 1
                    appends.append((t1 - t0) / 1000)
                    cpu.append((c1 - c0) / 1000)
                    commits.append((t2 - t1) / 1000)
                    bar.advance(task)
                frontier = ledger.frontier()
                repeats = 1000
                t0 = time.perf_counter_ns()
                for _ in range(repeats):
                    frontier.root()
                root_us = (time.perf_counter_ns() - t0) / 1000 / repeats
                with Session(engine) as session:
                    hashes = [bytes(h) for h in session.exec(
                        select(LedgerLeaf.leaf_hash).order_by(col(LedgerLeaf.seq)))]
                t0 = time.perf_counter_ns()
                full = root(hashes)
                full_us = (time.perf_counter_ns() - t0) / 1000
                assert full == frontier.root()  # the two ways agree
                results.append({
                    "leaves": target,
                    "append_mean_us": round(statistics.fmean(appends), 1),
                    "append_p99_us": round(_p99(appends), 1),
                    "append_cpu_mean_us": round(statistics.fmean(cpu), 1),
                    "commit_mean_us": round(statistics.fmean(commits), 1),
                    "root_us": round(root_us, 2),
                    "full_root_us": round(full_us, 1),
                })
                bar.update(task, description="growing the ledger")
        engine.dispose()
    say("Ledger append and root cost (SQLite, one append per transaction):")
    say(f"{'leaves':>8} {'append mean µs':>15} {'append p99 µs':>14} {'append CPU µs':>14} "
        f"{'commit µs':>10} {'root µs':>8} {'full root µs':>13}")
    for row in results:
        say(f"{row['leaves']:>8} {row['append_mean_us']:>15} {row['append_p99_us']:>14} "
            f"{row['append_cpu_mean_us']:>14} {row['commit_mean_us']:>10} {row['root_us']:>8} "
            f"{row['full_root_us']:>13}")
    report = {"samples": samples, "fill_batch": FILL_BATCH, "sizes": results}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "ledger.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        say(f"Wrote {out / 'ledger.json'}")
    return report


__all__ = ["DEFAULT_SIZES", "FILL_BATCH", "run_ledger_bench"]
