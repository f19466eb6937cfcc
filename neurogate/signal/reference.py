"""Re-referencing of EEG channels, as a stateless step of a `FilterChain`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from neurogate.errors import ValidationError

from ._checks import check_chunk

__all__ = ["Reference"]


class Reference:
    """Re-reference channels to their average or to named reference channels.

    Parameters
    ----------
    ch_names : sequence of str
        Names of the rows of every chunk.
    ref_channels : ``"average"`` | str | sequence of str
        ``"average"`` subtracts the mean of all channels at each instant (MNE's average
        reference); a name or list of names subtracts the mean of those channels (which
        then read zero), like :meth:`mne.io.Raw.set_eeg_reference`.
    """

    def __init__(self, ch_names: Sequence[str], ref_channels: str | Sequence[str] = "average"):
        self.ch_names = tuple(str(name) for name in ch_names)
        if not self.ch_names:
            msg = "The 'ch_names' parameter must name at least one channel, but got none."
            raise ValidationError(msg, field="ch_names")
        self.n_channels = len(self.ch_names)
        self.name = "reference"
        if isinstance(ref_channels, str) and ref_channels == "average":
            self.ref_channels: tuple[str, ...] | str = "average"
            self._ref_idx: NDArray[np.intp] | None = None
        else:
            names = (ref_channels,) if isinstance(ref_channels, str) else tuple(ref_channels)
            missing = [name for name in names if name not in self.ch_names]
            if not names or missing:
                msg = (
                    "The 'ref_channels' parameter must be 'average' or name channels of the "
                    f"stream, but got {list(names)!r}; unknown: {missing!r}. Known channels: "
                    f"{list(self.ch_names)!r}."
                )
                raise ValidationError(msg, field="ref_channels")
            self.ref_channels = names
            self._ref_idx = np.array([self.ch_names.index(name) for name in names])

    def __repr__(self) -> str:
        return f"<Reference {self.ref_channels!r} | {self.n_channels} channels>"

    def process(self, chunk: NDArray[np.generic]) -> NDArray[np.float64]:
        """Re-reference one chunk, shape (n_channels, n_times); returns a new array."""
        return self.apply(check_chunk(chunk, self.n_channels))

    def apply(self, data: NDArray[np.float64]) -> NDArray[np.float64]:
        """Re-reference a checked float64 chunk without modifying it.

        Parameters
        ----------
        data : ndarray, shape (n_channels, n_times), dtype float64
            The chunk, in volts.

        Returns
        -------
        out : ndarray, shape (n_channels, n_times), dtype float64
            ``data`` minus the reference signal, in volts.
        """
        rows = data if self._ref_idx is None else data[self._ref_idx]
        return data - rows.mean(axis=0, keepdims=True)

    def reset(self) -> None:
        """Do nothing: re-referencing keeps no state across chunks."""
