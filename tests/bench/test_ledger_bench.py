"""``neurogate bench ledger`` at a tiny size: the report's shape, never its timings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from neurogate.bench.ledger import run_ledger_bench


def test_ledger_bench_reports_every_size(tmp_path: Path) -> None:
    """Each size gets append, commit and root figures, and ledger.json holds the same."""
    lines: list[str] = []
    report = run_ledger_bench((20, 60), samples=10, out=tmp_path, say=lines.append,
                              progress=False)
    assert [row["leaves"] for row in report["sizes"]] == [20, 60]
    keys = {"leaves", "append_mean_us", "append_p99_us", "append_cpu_mean_us",
            "commit_mean_us", "root_us", "full_root_us"}
    for row in report["sizes"]:
        assert set(row) == keys
        assert all(isinstance(row[k], int | float) and row[k] >= 0 for k in keys)
    assert json.loads((tmp_path / "ledger.json").read_text(encoding="utf-8")) == report
    assert lines[0].startswith("Ledger append and root cost")
    assert len(lines) == 2 + 2 + 1  # title, header, one line per size, the file written


@pytest.mark.parametrize("sizes", [(), (10, 10), (50, 20), (0, 5)])
def test_ledger_bench_refuses_sizes_not_increasing(sizes: tuple[int, ...]) -> None:
    """Sizes must be increasing positive leaf counts; the message names the parameter."""
    with pytest.raises(ValueError, match="Invalid value for the 'sizes' parameter"):
        run_ledger_bench(sizes, samples=10, say=lambda _: None, progress=False)
