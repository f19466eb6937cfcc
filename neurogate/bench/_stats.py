"""Summary statistics shared by the benchmark sections."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def summary(values: Iterable[float] | np.ndarray, digits: int = 2) -> dict[str, Any]:
    """Count, p50, p95, p99 and max of ``values`` (None when there are none)."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                     dtype=np.float64)
    if arr.size == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"n": int(arr.size), "p50": round(float(p50), digits), "p95": round(float(p95), digits),
            "p99": round(float(p99), digits), "max": round(float(arr.max()), digits)}


def slope(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs (None with fewer than two distinct xs)."""
    if len(set(xs)) < 2:
        return None
    value = float(np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)[0])
    return round(value, 4) if math.isfinite(value) else None


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when undefined."""
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


__all__ = ["ratio", "slope", "summary"]
