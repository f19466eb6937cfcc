"""Small input checks for the device adapters (after MNE ``mne/utils/check.py``).

Each raises `neurogate.errors.DeviceError` with a whole sentence: the parameter, the bad
value, what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from neurogate.errors import DeviceError


def fmt_allowed(allowed: Iterable[object]) -> str:
    """``'a', 'b' and 'c'``: a list of allowed values for a message."""
    items = [repr(a) for a in allowed]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def check_option(name: str, value: object, allowed: Iterable[object]) -> None:
    """Raise `DeviceError` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        msg = (
            f"Invalid value for the '{name}' parameter. Allowed values are "
            f"{fmt_allowed(allowed)}, but got {value!r} instead."
        )
        raise DeviceError(msg, field=name)


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    unit: str = "",
) -> float:
    """Return ``value`` as a finite float, or raise `DeviceError` if out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        msg = f"The '{name}' parameter must be a number, but got {type(value).__name__} {value!r}."
        raise DeviceError(msg, field=name)
    out = float(value)
    too_low = low is not None and (out < low if low_inclusive else out <= low)
    too_high = high is not None and out > high
    if not math.isfinite(out) or too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bracket = "[" if low_inclusive else "("
        msg = (
            f"The '{name}' parameter must be finite and in {bracket}{lo}, {hi}]{unit}, "
            f"but got {out!r}{unit}."
        )
        raise DeviceError(msg, field=name)
    return out
