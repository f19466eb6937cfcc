"""Device adapters: turn a source (BrainFlow board, LSL outlet, file, vendor client) into
frames for the gateway. Adapters never decide anything about consent.

- `Adapter` and `DeviceInfo`: the lifecycle (prepare, start, read, stop, release, through
  context managers) and the per-device facts as data; `to_volts` converts units.
- `BrainFlowAdapter` (any BrainFlow board), `LslInletAdapter` (an LSL outlet),
  `FileAdapter` (any recording MNE reads, replayed).
- `stream_adapter`: feed an adapter's chunks to a `neurogate_client.DeviceClient`.
- `LslOutBridge`: an app's governed products (a `neurogate_client.AppSubscription`), as
  local LSL outlets.

The device client, the app subscriber and the wire codec are the separate distribution
``neurogate-client`` (``clients/python``, package `neurogate_client`), which the adapters
and the gateway import; it imports nothing from here.
"""

from __future__ import annotations

import importlib
from typing import Any

# Imported on first use, so that the gateway does not load BrainFlow, liblsl or MNE's
# readers.
_WHERE = {
    "Adapter": "adapters", "AdapterState": "adapters", "Chunk": "adapters",
    "DeviceInfo": "adapters", "normalize_unit": "adapters", "to_volts": "adapters",
    "BOARD_KINDS": "boards", "BrainFlowAdapter": "boards", "board_id": "boards",
    "input_params": "boards",
    "NEURAL_TYPES": "files", "FileAdapter": "files", "identifying_fields": "files",
    "BridgeResult": "lsl", "LslInletAdapter": "lsl", "LslOutBridge": "lsl",
    "destroy_outlet": "lsl", "lsl_predicate": "lsl",
    "stream_adapter": "streaming",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_WHERE])


__all__ = [
    "Adapter",
    "AdapterState",
    "BOARD_KINDS",
    "BrainFlowAdapter",
    "BridgeResult",
    "Chunk",
    "DeviceInfo",
    "FileAdapter",
    "LslInletAdapter",
    "LslOutBridge",
    "NEURAL_TYPES",
    "board_id",
    "destroy_outlet",
    "identifying_fields",
    "input_params",
    "lsl_predicate",
    "normalize_unit",
    "stream_adapter",
    "to_volts",
]
