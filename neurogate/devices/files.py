"""Recorded files as NeuroGate sources: anything ``mne.io.read_raw`` reads, replayed.

EDF, BDF, GDF, EEGLAB, FIF, BrainVision and the other formats MNE reads are replayed in
real time or faster. Only channel names, types, the rate and samples leave the adapter;
file headers identify people and equipment (patient name, id and birth date, recording
date and time, technician, equipment serials, free-text annotations), so `FileAdapter`
keeps those out of everything it hands on: the samples' timestamps start at the replay's
own wall-clock time, never at the recording date, and annotations are not read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import mne
import numpy as np
from neurogate_client.wire import CHANNEL_TYPES
from numpy.typing import NDArray

from neurogate.errors import DeviceError

from ._checks import check_range, fmt_allowed
from .adapters import Adapter, DeviceInfo

__all__ = ["NEURAL_TYPES", "FileAdapter", "identifying_fields"]

#: Channel types the gateway turns into products (the default selection of a replay).
NEURAL_TYPES = ("eeg", "ecog", "seeg")
_INFO_FIELDS = ("meas_date", "experimenter", "description", "proj_name", "proj_id",
                "device_info", "helium_info", "his_id", "file_id", "meas_id", "utc_offset")
# EDF/BDF fixed header: (field, offset, length) of what identifies a person or a session.
_EDF_HEADER = (("patient identification", 8, 80), ("recording identification", 88, 80),
               ("start date", 168, 8), ("start time", 176, 8))


def identifying_fields(raw: mne.io.BaseRaw, path: Path | None = None) -> dict[str, str]:
    """The header fields of a recording that could identify a person, a unit or a session.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        The recording as MNE read it.
    path : Path | None
        Its file; for EDF and BDF files the raw header's identification fields are read
        too (MNE parses only part of them).

    Returns
    -------
    fields : dict of str to str
        Field name to its value as text (``subject_info.*``, ``meas_date``,
        ``device_info.*``, ``experimenter``, EDF header fields, ...); annotations are
        counted, not copied. Empty and absent fields are left out.
    """
    info = raw.info
    found: dict[str, str] = {}

    def keep(name: str, value: object) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                keep(f"{name}.{key}", item)
        elif value is not None and not (isinstance(value, str | int) and value in ("", 0)):
            found[name] = str(value)

    keep("subject_info", dict(info.get("subject_info") or {}))
    for key in _INFO_FIELDS:
        keep(key, info.get(key))
    if len(raw.annotations):
        found["annotations"] = f"{len(raw.annotations)} annotations (descriptions not read)"
    if path is not None and path.suffix.lower() in (".edf", ".bdf"):
        with path.open("rb") as handle:
            header = handle.read(256)
        for name, offset, length in _EDF_HEADER:
            text = header[offset:offset + length].decode("latin-1").strip()
            if text:
                found[f"header.{name}"] = text
    return found


class FileAdapter(Adapter):
    """Replay a recording that MNE reads, in real time or faster.

    Parameters
    ----------
    path : str | Path
        The recording (``.edf``, ``.bdf``, ``.set``, ``.fif``, ``.vhdr``, ...).
    types : sequence of str
        Channel types to replay (MNE types that are also protocol types); by default the
        neural ones, `NEURAL_TYPES`. Add ``"stim"`` or ``"misc"`` to send those channels
        too, declared with their types (the device registration must list them).
    start_s : float
        Where the replay starts in the recording, in seconds.
    duration_s : float | None
        How much to replay in seconds (default: to the end).
    speed : float
        Replay speed: 1 is real time, 2 twice as fast.
    chunk_s : float
        Length of each chunk in seconds (at least one sample).
    clock, sleep : callable
        Wall clock (seconds since the Unix epoch) and sleep, replaceable in tests.

    Attributes
    ----------
    position : int
        Samples replayed so far.
    n_times : int
        Samples to replay in all (after `prepare`).
    """

    def __init__(self, path: str | Path, *, types: Sequence[str] = NEURAL_TYPES,
                 start_s: float = 0.0, duration_s: float | None = None, speed: float = 1.0,
                 chunk_s: float = 0.04, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        super().__init__()
        self.path = Path(path)
        types = tuple(types)
        bad = [t for t in types if t not in CHANNEL_TYPES]
        if not types or bad:
            msg = (f"Invalid value for the 'types' parameter. Allowed values are "
                   f"{fmt_allowed(CHANNEL_TYPES)} (one or more), but got {list(types)!r} "
                   "instead.")
            raise DeviceError(msg, field="types")
        self.types = types
        self.start_s = check_range("start_s", start_s, low=0.0, unit=" s")
        self.duration_s = None if duration_s is None else check_range(
            "duration_s", duration_s, low=0.0, low_inclusive=False, unit=" s")
        self.speed = check_range("speed", speed, low=0.0, high=1000.0, low_inclusive=False)
        self.chunk_s = check_range("chunk_s", chunk_s, low=0.0, low_inclusive=False, unit=" s")
        self._clock, self._sleep = clock, sleep
        self._data: NDArray[np.float64] | None = None
        self._chunk = 1
        self.position = 0
        self.n_times = 0
        self._t0 = 0.0
        self._wall0 = 0.0

    def _read_raw(self) -> mne.io.BaseRaw:
        if not self.path.is_file():
            msg = (f"The recording {str(self.path)!r} does not exist or is not a file; give "
                   "the path of an EDF, BDF, EEGLAB, FIF, BrainVision or other file MNE reads.")
            raise DeviceError(msg, field="path")
        try:
            return mne.io.read_raw(self.path, preload=False, verbose="error")
        except Exception as exc:  # MNE's dozens of readers fail in their own ways
            msg = (f"MNE could not read {self.path.name!r} ({type(exc).__name__}: {exc}). "
                   "Give a recording in a format mne.io.read_raw supports (EDF, BDF, GDF, "
                   "EEGLAB .set, FIF, BrainVision .vhdr, ...) and check the file is complete.")
            raise DeviceError(msg, field="path") from exc

    def _prepare(self) -> DeviceInfo:
        raw = self._read_raw()
        sfreq = float(raw.info["sfreq"])
        kinds = raw.get_channel_types()
        picks = [i for i, kind in enumerate(kinds) if kind in self.types]
        if not picks:
            found = sorted(set(kinds))
            msg = (f"The recording {self.path.name!r} has no channels of the types "
                   f"{list(self.types)}; it has {found}. Choose types among those.")
            raise DeviceError(msg, field="types")
        length = raw.n_times / sfreq
        if self.start_s >= length:
            msg = (f"The 'start_s' parameter is {self.start_s:g} s but the recording lasts "
                   f"{length:g} s; start earlier.")
            raise DeviceError(msg, field="start_s")
        stop = min(length, self.start_s + (self.duration_s or length))
        first, last = round(self.start_s * sfreq), round(stop * sfreq)
        identifying = identifying_fields(raw, self.path)
        # One contiguous read of the slice: MNE resamples mixed-rate EDF channels per read,
        # so reading once leaves no edge artifacts inside the slice.
        try:
            data = raw.get_data(picks=picks, start=first, stop=last, verbose="error")
        except (ValueError, OSError, RuntimeError) as exc:
            msg = (f"MNE could not load the samples of {self.path.name!r} "
                   f"({type(exc).__name__}: {exc}); check the file is complete.")
            raise DeviceError(msg, field="path") from exc
        names = tuple(raw.ch_names[i] for i in picks)
        types = tuple(kinds[i] for i in picks)
        del raw  # nothing of the header is kept beyond the fields listed as identifying
        self._data = np.ascontiguousarray(data, dtype=np.float64)
        self.n_times = int(self._data.shape[1])
        self._chunk = max(1, round(self.chunk_s * sfreq))
        return DeviceInfo(names, types, ("V",) * len(names), sfreq,
                          source_id=f"file:{self.path.name}", model="Recording replay",
                          identifying=identifying)

    @property
    def duration(self) -> float:
        """Seconds of recording to replay (after `prepare`)."""
        return self.n_times / self.info.sfreq

    def _start(self) -> None:
        now = self._clock()
        if self.position == 0:
            self._t0 = now
        # Pacing resumes where it stopped.
        self._wall0 = now - self.position / self.info.sfreq / self.speed

    def _read(self, timeout: float) -> tuple[NDArray[np.generic], NDArray[np.float64]] | None:
        assert self._data is not None
        sfreq = self.info.sfreq
        if self.position >= self.n_times:
            return None
        end = min(self.n_times, self.position + self._chunk)
        due = self._wall0 + end / sfreq / self.speed
        wait = due - self._clock()
        if wait > timeout:
            self._sleep(timeout)
            return self._data[:, :0], np.empty(0)
        if wait > 0:
            self._sleep(wait)
        begin, self.position = self.position, end
        stamps = self._t0 + np.arange(begin, end) / sfreq
        return self._data[:, begin:end], stamps

    def _stop(self) -> None:
        pass

    def _release(self) -> None:
        self._data = None
