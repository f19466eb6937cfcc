"""BrainFlow boards as NeuroGate sources: any board id, with its input parameters.

BrainFlow describes every board with a descriptor (``BoardShim.get_board_descr``): its
sampling rate, which rows of the data hold EEG, EMG, ECG or EOG, its EEG channel names and
its timestamp row. `BrainFlowAdapter` reads those facts as data; there is no class per
board. BrainFlow gives EXG channels in microvolts; `Adapter.read` converts to volts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from brainflow.board_shim import BoardIds, BoardShim, BrainFlowError, BrainFlowInputParams
from numpy.typing import NDArray

from neurogate.errors import DeviceError

from ._checks import check_range, fmt_allowed
from .adapters import Adapter, DeviceInfo

__all__ = ["BOARD_KINDS", "BrainFlowAdapter", "board_id", "input_params"]

#: Channel kinds a board may stream, each a protocol channel type, in microvolts.
BOARD_KINDS = ("eeg", "emg", "ecg", "eog")
#: Input parameters that identify one piece of hardware (never sent, see DeviceInfo).
_IDENTIFYING_PARAMS = ("serial_number", "mac_address", "serial_port", "ip_address")
_POLL_S = 0.005


def board_id(board: str | int) -> int:
    """The BrainFlow board id of a board name or number.

    Parameters
    ----------
    board : str | int
        A `brainflow.board_shim.BoardIds` name, with or without its ``_BOARD`` suffix and
        in any case (``"synthetic"``, ``"cyton"``, ``"SYNTHETIC_BOARD"``), or its number
        (``-1``, ``"0"``).

    Returns
    -------
    board_id : int
        The board's id.
    """
    ids = {member.name: member.value for member in BoardIds}
    if isinstance(board, int) and not isinstance(board, bool) or (
            isinstance(board, str) and board.strip().lstrip("-").isdigit()):
        number = int(board)
        if number in ids.values():
            return number
    elif isinstance(board, str):
        key = board.strip().upper().replace("-", "_")
        for name in (key, f"{key}_BOARD"):
            if name in ids:
                return ids[name]
    examples = ["synthetic", "cyton", "ganglion", "muse_2", "SYNTHETIC_BOARD", -1]
    msg = (f"Invalid value for the 'board' parameter. Allowed values are the names and "
           f"numbers of brainflow.board_shim.BoardIds (e.g. {fmt_allowed(examples)}), but got "
           f"{board!r} instead.")
    raise DeviceError(msg, field="board")


def input_params(fields: Mapping[str, Any] | None = None) -> BrainFlowInputParams:
    """BrainFlow input parameters from a mapping of their fields.

    Parameters
    ----------
    fields : mapping of str to str | int | None
        Fields of `brainflow.board_shim.BrainFlowInputParams` (``serial_port``,
        ``mac_address``, ``ip_address``, ``ip_port``, ``ip_protocol``, ``other_info``,
        ``timeout``, ``serial_number``, ``file``, ``master_board``, ...). ``None`` values
        keep BrainFlow's default.

    Returns
    -------
    params : BrainFlowInputParams
        The parameters, other fields at BrainFlow's defaults.
    """
    params = BrainFlowInputParams()
    defaults = vars(params)
    for key, value in (fields or {}).items():
        if key not in defaults:
            msg = (f"Invalid BrainFlow input parameter {key!r}. Allowed values are "
                   f"{fmt_allowed(sorted(defaults))}.")
            raise DeviceError(msg, field=key)
        if value is None:
            continue
        default = defaults[key]
        if isinstance(default, int) and not (isinstance(value, int)
                                             and not isinstance(value, bool)):
            msg = (f"The BrainFlow input parameter {key!r} must be an integer, but got "
                   f"{type(value).__name__} {value!r}.")
            raise DeviceError(msg, field=key)
        if isinstance(default, str) and not isinstance(value, str):
            msg = (f"The BrainFlow input parameter {key!r} must be a string, but got "
                   f"{type(value).__name__} {value!r}.")
            raise DeviceError(msg, field=key)
        setattr(params, key, value)
    return params


class BrainFlowAdapter(Adapter):
    """A BrainFlow board (the synthetic board by default).

    Parameters
    ----------
    board : str | int
        Board name or id (see `board_id`); ``"synthetic"`` needs no hardware.
    params : mapping of str to str | int | None
        BrainFlow input parameters (see `input_params`): a serial port, a MAC or IP
        address, a file for the playback board, ...
    kinds : sequence of str
        Which channel kinds to stream, among `BOARD_KINDS`; EEG only by default. A row
        that a board lists under several kinds (the synthetic board lists rows 1-16 as
        EEG, EMG, ECG and EOG) is streamed once, as the first kind given.
    chunk_s : float
        A read waits (up to its timeout) until this many seconds of samples are there.
    ring_buffer : int
        Samples BrainFlow keeps between reads.
    quiet : bool
        Silence BrainFlow's own logger.

    Notes
    -----
    Channel names come from the board's ``eeg_names`` where it has them, else they are
    ``"<KIND><row>"`` (e.g. ``"EMG3"``).
    """

    def __init__(self, board: str | int = "synthetic", *,
                 params: Mapping[str, Any] | None = None, kinds: Sequence[str] = ("eeg",),
                 chunk_s: float = 0.04, ring_buffer: int = 450_000, quiet: bool = True) -> None:
        super().__init__()
        self.board_id = board_id(board)
        self.params = input_params(params)
        kinds = tuple(kinds)
        bad = [k for k in kinds if k not in BOARD_KINDS]
        if not kinds or bad:
            msg = (f"Invalid value for the 'kinds' parameter. Allowed values are "
                   f"{fmt_allowed(BOARD_KINDS)} (one or more), but got {list(kinds)!r} instead.")
            raise DeviceError(msg, field="kinds")
        self.kinds = kinds
        self.chunk_s = check_range("chunk_s", chunk_s, low=0.0, high=10.0, unit=" s")
        self.ring_buffer = int(check_range("ring_buffer", ring_buffer, low=1000))
        self.quiet = quiet
        self._shim: BoardShim | None = None
        self._rows: list[int] = []
        self._timestamp_row = -1

    @property
    def board_name(self) -> str:
        """The board's `BoardIds` name."""
        return BoardIds(self.board_id).name

    def _fail(self, action: str, exc: BrainFlowError) -> DeviceError:
        set_params = {k: v for k, v in vars(self.params).items()
                      if v not in ("", 0, -100) and k not in _IDENTIFYING_PARAMS}
        msg = (f"BrainFlow could not {action} for board {self.board_name} (id {self.board_id}): "
               f"{exc}. Check that the board is connected and powered, and that its input "
               f"parameters are right (non-default ones: {set_params or 'none'}); for example "
               "a Cyton needs serial_port and a Ganglion needs mac_address or serial_port.")
        return DeviceError(msg, field="board")

    def _descriptor(self) -> dict[str, Any]:
        try:
            return dict(BoardShim.get_board_descr(self.board_id))
        except BrainFlowError as exc:
            error = self._fail("read the board description", exc)
            raise error from exc

    def _prepare(self) -> DeviceInfo:
        if self.quiet:
            BoardShim.disable_board_logger()
        descr = self._descriptor()
        rows: list[int] = []
        names: list[str] = []
        types: list[str] = []
        eeg_names = str(descr.get("eeg_names", "")).split(",") if descr.get("eeg_names") else []
        eeg_rows = list(descr.get("eeg_channels", []))
        for kind in self.kinds:
            for row in descr.get(f"{kind}_channels", []):
                if row in rows:
                    continue
                rows.append(row)
                types.append(kind)
                if kind == "eeg" and len(eeg_names) == len(eeg_rows):
                    names.append(eeg_names[eeg_rows.index(row)].strip())
                else:
                    names.append(f"{kind.upper()}{row}")
        if not rows:
            msg = (f"Board {self.board_name} has no channels of the kinds {list(self.kinds)}; "
                   f"choose among {fmt_allowed(BOARD_KINDS)} what the board provides.")
            raise DeviceError(msg, field="kinds")
        self._rows = rows
        self._timestamp_row = int(descr["timestamp_channel"])
        try:
            shim = BoardShim(self.board_id, self.params)
            shim.prepare_session()
        except BrainFlowError as exc:
            error = self._fail("prepare the session", exc)
            raise error from exc
        self._shim = shim
        identifying = {k: str(v) for k in _IDENTIFYING_PARAMS
                       if (v := getattr(self.params, k))}
        return DeviceInfo(tuple(names), tuple(types), ("uV",) * len(rows),
                          float(descr["sampling_rate"]), source_id=f"brainflow:{self.board_id}",
                          model=f"BrainFlow {descr.get('name', self.board_name)}",
                          identifying=identifying)

    def _start(self) -> None:
        assert self._shim is not None
        try:
            self._shim.start_stream(self.ring_buffer)
        except BrainFlowError as exc:
            error = self._fail("start the stream", exc)
            raise error from exc

    def _read(self, timeout: float) -> tuple[NDArray[np.generic], NDArray[np.float64]]:
        assert self._shim is not None
        deadline = time.monotonic() + timeout
        wanted = max(1, round(self.chunk_s * self.info.sfreq))
        try:
            while self._shim.get_board_data_count() < wanted and time.monotonic() < deadline:
                time.sleep(_POLL_S)
            data = self._shim.get_board_data()
        except BrainFlowError as exc:
            error = self._fail("read data", exc)
            raise error from exc
        return data[self._rows], data[self._timestamp_row]

    def _stop(self) -> None:
        assert self._shim is not None
        try:
            self._shim.stop_stream()
        except BrainFlowError as exc:
            error = self._fail("stop the stream", exc)
            raise error from exc

    def _release(self) -> None:
        if self._shim is None:
            return
        shim, self._shim = self._shim, None
        try:
            shim.release_session()
        except BrainFlowError as exc:
            error = self._fail("release the session", exc)
            raise error from exc
