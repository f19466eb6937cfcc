"""BrainFlow boards: ids and input parameters from names, the synthetic board end to end."""

from __future__ import annotations

import time

import numpy as np
import pytest
from brainflow.board_shim import BoardIds, BrainFlowError

from neurogate.devices import BrainFlowAdapter, board_id, input_params
from neurogate.errors import DeviceError


@pytest.mark.parametrize(("board", "expected"), [
    ("synthetic", BoardIds.SYNTHETIC_BOARD.value),
    ("SYNTHETIC_BOARD", BoardIds.SYNTHETIC_BOARD.value),
    ("cyton", BoardIds.CYTON_BOARD.value),
    ("muse-2", BoardIds.MUSE_2_BOARD.value),
    (-1, BoardIds.SYNTHETIC_BOARD.value),
    ("0", BoardIds.CYTON_BOARD.value),
])
def test_board_id_accepts_names_and_numbers(board: str | int, expected: int) -> None:
    """Any BoardIds name (with or without _BOARD, any case) or number selects a board."""
    assert board_id(board) == expected


@pytest.mark.parametrize("board", ["toaster", 99999, ""])
def test_board_id_refuses_unknown_boards(board: str | int) -> None:
    """An unknown board is refused with examples of what is allowed."""
    with pytest.raises(DeviceError, match=r"'board' parameter\. Allowed values are the names "
                                          r"and numbers of brainflow\.board_shim\.BoardIds"):
        board_id(board)


def test_input_params_sets_fields_and_refuses_unknown_or_mistyped_ones() -> None:
    """Input parameters come from a mapping; typos and wrong types are refused."""
    params = input_params({"serial_port": "/dev/ttyUSB0", "ip_port": 6677, "file": None})
    assert params.serial_port == "/dev/ttyUSB0" and params.ip_port == 6677
    assert params.file == ""
    with pytest.raises(DeviceError, match=r"Invalid BrainFlow input parameter 'serialport'"):
        input_params({"serialport": "/dev/ttyUSB0"})
    with pytest.raises(DeviceError, match=r"'ip_port' must be an integer, but got str '1'"):
        input_params({"ip_port": "1"})


def test_synthetic_board_streams_eeg_in_volts() -> None:
    """The synthetic board's 16 EEG channels at 250 Hz come out in volts with epoch times."""
    with BrainFlowAdapter("synthetic") as board:
        info = board.info
        assert info.sfreq == 250.0 and info.n_channels == 16
        assert info.channel_names[:4] == ("Fz", "C3", "Cz", "C4")
        assert set(info.channel_types) == {"eeg"} and set(info.units) == {"uV"}
        with board.streaming():
            chunks = [board.read(timeout=1.0) for _ in range(5)]
    data = np.concatenate([c.data for c in chunks if c is not None], axis=1)
    stamps = np.concatenate([c.timestamps for c in chunks if c is not None])
    assert data.shape[0] == 16 and data.shape[1] >= 40
    assert 1e-6 < np.abs(data).max() < 1e-3, "microvolts were converted to volts"
    assert abs(stamps[-1] - time.time()) < 5.0
    assert board.state == "released"


def test_synthetic_board_lists_each_row_once_across_kinds() -> None:
    """Rows a board lists as EEG and EMG (the synthetic board does) are streamed once."""
    with BrainFlowAdapter("synthetic", kinds=("emg", "eeg")) as board:
        assert board.info.n_channels == 16
        assert set(board.info.channel_types) == {"emg"}
        assert board.info.channel_names[0] == "EMG1"


def test_board_without_hardware_fails_with_a_device_error() -> None:
    """BrainFlow's error on a board that is not there is wrapped, with advice."""
    adapter = BrainFlowAdapter("cyton", params={"serial_port": "/dev/does-not-exist"})
    with pytest.raises(DeviceError, match=r"BrainFlow could not prepare the session for board "
                                          r"CYTON_BOARD \(id 0\).*serial_port") as caught:
        adapter.prepare()
    assert isinstance(caught.value.__cause__, BrainFlowError)
    adapter.release()
    assert adapter.state == "released"


def test_board_kinds_are_checked_before_anything_opens() -> None:
    """Only EXG kinds can be streamed."""
    with pytest.raises(DeviceError, match=r"'kinds' parameter\. Allowed values are 'eeg', "
                                          r"'emg', 'ecg' and 'eog'"):
        BrainFlowAdapter("synthetic", kinds=("accel",))
