"""Small input checks shared by the signal modules (after MNE ``mne/utils/check.py``)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from neurogate.errors import NeurogateError, SignalError, ValidationError

#: Channel types whose data the pipeline filters and turns into products.
NEURAL_TYPES = ("dbs", "ecog", "eeg", "seeg")


def fmt_allowed(allowed: Iterable[object]) -> str:
    """``'a', 'b' and 'c'``: a list of allowed values for a message."""
    items = [repr(a) for a in allowed]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" and {items[-1]}"


def check_option(name: str, value: object, allowed: Iterable[object], *,
                 error: type[NeurogateError] = ValidationError) -> None:
    """Raise ``error`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        msg = (
            f"Invalid value for the '{name}' parameter. Allowed values are "
            f"{fmt_allowed(allowed)}, but got {value!r} instead."
        )
        raise error(msg, field=name)


def check_range(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    unit: str = "",
    error: type[NeurogateError] = ValidationError,
) -> float:
    """Return ``value`` as a finite float, or raise ``error`` if out of range."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        msg = f"The '{name}' parameter must be a number, but got {type(value).__name__} {value!r}."
        raise error(msg, field=name)
    out = float(value)
    too_low = low is not None and (out < low if low_inclusive else out <= low)
    too_high = high is not None and (out > high if high_inclusive else out >= high)
    if not math.isfinite(out) or too_low or too_high:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        bracket = "[" if low_inclusive else "("
        closing = "]" if high_inclusive else ")"
        msg = (
            f"The '{name}' parameter must be finite and in {bracket}{lo}, {hi}{closing}{unit}, "
            f"but got {out!r}{unit}."
        )
        raise error(msg, field=name)
    return out


def check_chunk(
    chunk: object,
    n_channels: int,
    *,
    name: str = "chunk",
    ch_names: Sequence[str] | None = None,
) -> NDArray[np.float64]:
    """Check a data chunk and return it as a new C-contiguous float64 array.

    Parameters
    ----------
    chunk : array-like, shape (n_channels, n_times)
        Real-valued samples (integer or floating dtype).
    n_channels : int
        The number of rows the chunk must have.
    name : str
        The parameter name used in error messages.
    ch_names : sequence of str | None
        Channel names, to name the channel of the first non-finite value.

    Returns
    -------
    data : ndarray, shape (n_channels, n_times), dtype float64
        A copy of the chunk; the caller may keep it.

    Raises
    ------
    SignalError
        If the chunk is not a 2-D real numeric array with ``n_channels`` rows, or holds
        NaN or infinite values.
    """
    if not isinstance(chunk, np.ndarray):
        msg = (
            f"The '{name}' parameter must be a numpy ndarray of shape (n_channels, n_times), "
            f"but got {type(chunk).__name__}."
        )
        raise SignalError(msg, field=name)
    kind = chunk.dtype.kind
    if kind not in "iuf":
        msg = (
            f"The '{name}' parameter must have a real integer or floating dtype, but got "
            f"dtype {chunk.dtype}; convert it with chunk.astype(np.float64)."
        )
        raise SignalError(msg, field=name)
    if chunk.ndim != 2:
        msg = (
            f"The '{name}' parameter must be 2-D with shape (n_channels, n_times), but got "
            f"shape {chunk.shape} ({chunk.ndim}-D)."
        )
        raise SignalError(msg, field=name)
    if chunk.shape[0] != n_channels:
        msg = (
            f"The '{name}' parameter must have {n_channels} channels (rows), but got shape "
            f"{chunk.shape}; chunks must be (n_channels, n_times), not transposed."
        )
        raise SignalError(msg, field=name)
    data = np.array(chunk, dtype=np.float64, order="C", copy=True)
    finite = np.isfinite(data)
    if not finite.all():
        n_bad = int(data.size - np.count_nonzero(finite))
        ch, t = (int(i) for i in np.unravel_index(int(np.argmin(finite)), data.shape))
        where = (
            f"channel index {ch}" if ch_names is None else f"channel {ch_names[ch]!r} (index {ch})"
        )
        msg = (
            f"The '{name}' parameter contains {n_bad} non-finite value(s) (NaN or inf); "
            f"the first is {float(data[ch, t])} at {where}, sample {t}. "
            "Only finite values are allowed."
        )
        raise SignalError(msg, field=name)
    return data


def read_only(array: NDArray[Any]) -> NDArray[Any]:
    """Mark ``array`` read-only (frames are shared between consumers) and return it."""
    array.flags.writeable = False
    return array
