"""Input checks: a whole sentence naming the parameter, the bad value and what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from .errors import ClientError


def fmt_allowed(allowed: Iterable[object]) -> str:
    """``'a', 'b' and 'c'``: a list of allowed values for a message."""
    items = [repr(a) for a in allowed]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def check_range(name: str, value: Any, *, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, unit: str = "") -> float:
    """Return ``value`` as a finite float, or raise `ClientError` if out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float) and not hasattr(
            value, "__float__"):
        msg = f"The '{name}' parameter must be a number, but got {type(value).__name__} {value!r}."
        raise ClientError(msg, field=name)
    out = float(value)
    too_low = low is not None and (out < low if low_inclusive else out <= low)
    too_high = high is not None and out > high
    if not math.isfinite(out) or too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bracket = "[" if low_inclusive else "("
        msg = (f"The '{name}' parameter must be finite and in {bracket}{lo}, {hi}]{unit}, "
               f"but got {out!r}{unit}.")
        raise ClientError(msg, field=name)
    return out
