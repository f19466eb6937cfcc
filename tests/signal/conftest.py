"""Fixtures for the signal tests: the shared EEG recordings, found or explained."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import mne
import pytest

#: ``../shared/data/eeg`` relative to the repository root.
EEG_DIR = Path(__file__).parents[2].parent / "shared" / "data" / "eeg"


def _locate_eeg_dir(path: Path) -> Path:
    """Return ``path`` if it holds test_raw.set; else skip, or fail when services are required."""
    if (path / "test_raw.set").is_file():
        return path
    reason = (
        f"The shared EEG recordings are missing: {path / 'test_raw.set'} does not exist. "
        "Put the shared data folder beside the repository (../shared/data/eeg)."
    )
    if os.environ.get("NEUROGATE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} NEUROGATE_REQUIRE_SERVICES=1 makes this an error.")
    pytest.skip(reason)


@pytest.fixture
def locate_eeg_dir() -> Callable[[Path], Path]:
    """Give tests the helper behind `eeg_dir`, to check its skip and fail behaviour."""
    return _locate_eeg_dir


@pytest.fixture(scope="session")
def eeg_dir() -> Path:
    """The folder of shared EEG recordings (skips, or fails, if it is missing)."""
    return _locate_eeg_dir(EEG_DIR)


@pytest.fixture(scope="session")
def eeg_raw(eeg_dir: Path) -> mne.io.BaseRaw:
    """test_raw.set: 32 EEG channels at 128 Hz, about 238 s (MNE reads it without warnings)."""
    return mne.io.read_raw_eeglab(eeg_dir / "test_raw.set", preload=True, verbose=False)
