"""The data model of products: a `Resolution` and the `Frame` a product is delivered in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from ._checks import check_option, check_range

__all__ = ["CHANNEL_LEVELS", "ChannelLevel", "Frame", "Resolution"]

#: How finely channels are resolved, finest first.
ChannelLevel = Literal["electrodes", "regions", "global"]
CHANNEL_LEVELS: tuple[ChannelLevel, ...] = ("electrodes", "regions", "global")

_REL_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Resolution:
    """How finely a product resolves time and space.

    A product declares the finest resolution it may be delivered at; the gateway delivers
    each app its purpose's resolution, which must be as coarse or coarser (see
    :meth:`is_coarser_or_equal` and `ResolutionReducer`).

    Parameters
    ----------
    window_s : float
        Length in seconds of signal each output value summarises (``1 / sfreq`` for
        sample products such as ``raw``). Longer is coarser.
    output_rate_hz : float
        Output values per second (``sfreq`` for sample products, ``1 / hop`` for windowed
        products). Lower is coarser.
    channels : {"electrodes", "regions", "global"}
        Spatial detail: one row per electrode, per scalp region, or a single row.
    """

    window_s: float
    output_rate_hz: float
    channels: ChannelLevel = "electrodes"

    def __post_init__(self) -> None:
        check_range("window_s", self.window_s, low=0.0, low_inclusive=False, unit=" s")
        check_range("output_rate_hz", self.output_rate_hz, low=0.0, low_inclusive=False, unit=" Hz")
        check_option("channels", self.channels, CHANNEL_LEVELS)

    @property
    def level(self) -> int:
        """Index of ``channels`` in `CHANNEL_LEVELS` (0 = electrodes, finest)."""
        return CHANNEL_LEVELS.index(self.channels)

    def is_coarser_or_equal(self, other: Resolution) -> bool:
        """Whether this resolution reveals no more than ``other`` on every axis.

        Parameters
        ----------
        other : Resolution
            Typically a product's finest resolution.

        Returns
        -------
        ok : bool
            ``True`` if the window is as long or longer, the output rate as low or lower
            and the channel level as coarse or coarser (with a relative tolerance of 1e-9).
        """
        return (
            self.window_s >= other.window_s * (1 - _REL_TOL)
            and self.output_rate_hz <= other.output_rate_hz * (1 + _REL_TOL)
            and self.level >= other.level
        )


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """One output of one product.

    Parameters
    ----------
    product : str
        The product's name (one of `PRODUCT_NAMES`).
    t : float
        Time in seconds of the first sample the frame covers, on the clock of the ``t0``
        given to `StreamPipeline.push`.
    data : ndarray, shape (n_rows, n_times) | (n_rows, n_columns) | (n_rows,)
        Read-only values; rows follow ``labels``. ``raw`` and ``filtered`` are
        (n_rows, n_times) in volts; ``band_power`` is (n_rows, n_bands) in V**2;
        ``signal_quality`` is (n_rows, n_metrics); the indices are (1,), unitless.
    labels : tuple of str
        One label per row: channel names, region names or ``("global",)``.
    columns : tuple of str
        Names along the last axis of 2-D windowed products (bands or metrics); empty for
        sample products and the indices.
    resolution : Resolution
        The resolution this frame is at.
    """

    product: str
    t: float
    data: NDArray[np.float64]
    labels: tuple[str, ...]
    columns: tuple[str, ...]
    resolution: Resolution

    def __repr__(self) -> str:
        return (
            f"<Frame {self.product!r} t={self.t:.3f}s | shape {self.data.shape}, "
            f"{self.resolution.channels}>"
        )
