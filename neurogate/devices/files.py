"""Recorded files as NeuroGate sources: anything ``mne.io.read_raw`` reads, replayed.

EDF, BDF, GDF, EEGLAB, FIF, BrainVision and the other formats MNE reads are replayed in
real time or faster. Only channel names, types, the rate and samples leave the adapter;
file headers identify people and equipment (patient name, id and birth date, recording
date and time, technician, equipment serials, free-text annotations), so `FileAdapter`
keeps those out of everything it hands on: the samples' timestamps start at the replay's
own wall-clock time, never at the recording date, and annotations are not read.

MNE's warnings about a file (a truncated EDF whose header promises more records, say) are
kept in `FileAdapter.warnings` for the caller to show, or refused with ``strict=True``.
Reader options (``data_format="int16"`` for a Neuroscan .cnt) go to MNE's reader as they
are. Some readers crash the process on a file they misread (MNE's Neuroscan reader takes
a segmentation fault on 16-bit files read as 32-bit); with ``isolate=True`` the file is
read in a child process, so such a crash becomes a `DeviceError` that says what to try.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Request:
    path: Path
    reader_options: dict[str, Any]
    types: tuple[str, ...]
    start_s: float
    duration_s: float | None


@dataclass(frozen=True)
class _Loaded:
    data: NDArray[np.float64]
    names: tuple[str, ...]
    types: tuple[str, ...]
    sfreq: float
    identifying: dict[str, str]
    warnings: tuple[str, ...]


_READERS = "EDF, BDF, GDF, EEGLAB .set, FIF, BrainVision .vhdr, ANT or Neuroscan .cnt, ..."


def _read_raw(request: _Request, caught: list[str]) -> mne.io.BaseRaw:
    path = request.path
    if not path.is_file():
        msg = (f"The recording {str(path)!r} does not exist or is not a file; give the path "
               f"of a file MNE reads ({_READERS}).")
        raise DeviceError(msg, field="path")
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            raw = mne.io.read_raw(path, preload=False, verbose="warning",
                                  **request.reader_options)
    except TypeError as exc:
        if request.reader_options and "keyword argument" in str(exc):
            names = ", ".join(repr(k) for k in request.reader_options)
            msg = (f"MNE's reader for {path.name!r} does not take the reader option(s) "
                   f"{names} ({exc}). Give only options of that reader (see mne.io.read_raw "
                   f"and the reader for {path.suffix!r} files).")
            raise DeviceError(msg, field="reader_options") from exc
        raise DeviceError(_unreadable(request, exc), field="path") from exc
    except Exception as exc:  # MNE's dozens of readers fail in their own ways
        raise DeviceError(_unreadable(request, exc), field="path") from exc
    caught.extend(str(w.message) for w in seen)
    return raw


def _options(request: _Request) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in request.reader_options.items()) or "none"


def _unreadable(request: _Request, exc: BaseException) -> str:
    return (f"MNE could not read {request.path.name!r} with the reader options "
            f"{_options(request)} ({type(exc).__name__}: {exc}). Give a recording in a "
            f"format mne.io.read_raw supports ({_READERS}), check the file is complete, and "
            "pass only options its reader takes (for a Neuroscan .cnt, data_format='int16' "
            "or 'int32').")


def _load(request: _Request) -> _Loaded:
    """Read the slice of a recording to replay, with what MNE warned about it."""
    caught: list[str] = []
    raw = _read_raw(request, caught)
    name = request.path.name
    sfreq = float(raw.info["sfreq"])
    kinds = raw.get_channel_types()
    picks = [i for i, kind in enumerate(kinds) if kind in request.types]
    if not picks:
        msg = (f"The recording {name!r} has no channels of the types "
               f"{list(request.types)}; it has {sorted(set(kinds))}. Choose types among those.")
        raise DeviceError(msg, field="types")
    length = raw.n_times / sfreq
    if request.start_s >= length:
        msg = (f"The 'start_s' parameter is {request.start_s:g} s but the recording lasts "
               f"{length:g} s; start earlier.")
        raise DeviceError(msg, field="start_s")
    stop = min(length, request.start_s + (request.duration_s or length))
    first, last = round(request.start_s * sfreq), round(stop * sfreq)
    identifying = identifying_fields(raw, request.path)
    # One contiguous read of the slice: MNE resamples mixed-rate EDF channels per read,
    # so reading once leaves no edge artifacts inside the slice.
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            data = raw.get_data(picks=picks, start=first, stop=last, verbose="warning")
    except (ValueError, OSError, RuntimeError) as exc:
        msg = (f"MNE could not load the samples of {name!r} "
               f"({type(exc).__name__}: {exc}); check the file is complete.")
        raise DeviceError(msg, field="path") from exc
    caught.extend(str(w.message) for w in seen)
    # Nothing of the header is kept beyond the fields listed as identifying.
    return _Loaded(np.asarray(data, dtype=np.float64), tuple(raw.ch_names[i] for i in picks),
                   tuple(kinds[i] for i in picks), sfreq, identifying,
                   tuple(dict.fromkeys(caught)))


def _child(request: _Request, conn: Any) -> None:
    faulthandler.disable()  # a reader crash is reported by the parent, in a sentence
    try:
        conn.send(("ok", _load(request)))
    except DeviceError as exc:
        conn.send(("error", (exc.message, exc.field)))
    conn.close()


def _load_isolated(request: _Request) -> _Loaded:
    """`_load` in a child process: a reader that crashes takes only the child down."""
    # fork is cheap (MNE is imported already) and safe while this is the only thread.
    method = "fork" if threading.active_count() == 1 else "spawn"
    context = multiprocessing.get_context(method)
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(request, sender), daemon=True)
    child.start()
    sender.close()
    answer = None
    try:
        answer = receiver.recv()
    except EOFError:  # the child died before it answered
        pass
    finally:
        receiver.close()
        child.join(timeout=30)
    if answer is None:
        code = child.exitcode
        how = (f"signal {-code} ({signal.Signals(-code).name})" if code is not None and
               code < 0 else f"exit code {code}")
        msg = (f"MNE's reader crashed while reading {request.path.name!r} ({how}), with the "
               f"reader options {_options(request)}. The file may be damaged, or need "
               "reader options: a Neuroscan .cnt often needs data_format='int16' (or "
               "'int32').")
        raise DeviceError(msg, field="path")
    status, payload = answer
    if status == "error":
        message, field = payload
        raise DeviceError(message, field=field)
    assert isinstance(payload, _Loaded)
    return payload


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
    reader_options : mapping of str to object | None
        Keyword arguments for MNE's reader, e.g. ``{"data_format": "int16"}`` for a
        Neuroscan .cnt (`mne.io.read_raw_cnt`).
    strict : bool
        Refuse a file MNE warns about (`DeviceError`) instead of keeping its warnings.
    isolate : bool
        Read the file in a child process, so that a reader crash is an error here.
    clock, sleep : callable
        Wall clock (seconds since the Unix epoch) and sleep, replaceable in tests.

    Attributes
    ----------
    position : int
        Samples replayed so far.
    n_times : int
        Samples to replay in all (after `prepare`).
    warnings : tuple of str
        What MNE warned about the file while reading it (after `prepare`).
    """

    def __init__(self, path: str | Path, *, types: Sequence[str] = NEURAL_TYPES,
                 start_s: float = 0.0, duration_s: float | None = None, speed: float = 1.0,
                 chunk_s: float = 0.04, reader_options: Mapping[str, Any] | None = None,
                 strict: bool = False, isolate: bool = False,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Any] = time.sleep) -> None:
        super().__init__()
        self.path = Path(path)
        self.reader_options = dict(reader_options or {})
        self.strict = bool(strict)
        self.isolate = bool(isolate)
        self.warnings: tuple[str, ...] = ()
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

    def _prepare(self) -> DeviceInfo:
        request = _Request(self.path, dict(self.reader_options), self.types, self.start_s,
                           self.duration_s)
        loaded = _load_isolated(request) if self.isolate else _load(request)
        if loaded.warnings and self.strict:
            msg = (f"MNE warned about {self.path.name!r} and strict reading refuses "
                   f"warnings: {' '.join(loaded.warnings)} Fix the file, or replay it "
                   "without strict to accept it as MNE reads it.")
            raise DeviceError(msg, field="path")
        self.warnings = loaded.warnings
        self._data = np.ascontiguousarray(loaded.data, dtype=np.float64)
        self.n_times = int(self._data.shape[1])
        self._chunk = max(1, round(self.chunk_s * loaded.sfreq))
        return DeviceInfo(loaded.names, loaded.types, ("V",) * len(loaded.names),
                          loaded.sfreq, source_id=f"file:{self.path.name}",
                          model="Recording replay", identifying=loaded.identifying)

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
