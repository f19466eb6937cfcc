"""Input checks for the device adapters: the signal package's checks, raising
`neurogate.errors.DeviceError` (a whole sentence: the parameter, the bad value, what is
allowed)."""

from __future__ import annotations

import functools

from neurogate.errors import DeviceError
from neurogate.signal._checks import check_option as _check_option
from neurogate.signal._checks import check_range as _check_range
from neurogate.signal._checks import fmt_allowed

check_option = functools.partial(_check_option, error=DeviceError)
check_range = functools.partial(_check_range, error=DeviceError)

__all__ = ["check_option", "check_range", "fmt_allowed"]
