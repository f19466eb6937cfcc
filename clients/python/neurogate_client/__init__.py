"""neurogate-client: stream a device into a NeuroGate gateway, or receive an app's governed
products from it. Depends only on websockets, httpx and numpy.

- `DeviceClient` (with `StreamInfo` and `ClientStats`): push samples in volts; tokens,
  reconnects across gateway addresses, a bounded buffer with exact loss accounting, pacing.
- `AppSubscription`: an app's subscription, as typed events (`Subscribed`, `Data`, `Gap`,
  `Revoked`, `Notice`), JSON or binary, with reconnection that respects refusals.
- `TokenSource`: OAuth2 client-credentials tokens, refreshed before they expire.
- `neurogate_client.wire`: the protocol's codec (frames, hello, close codes), the one the
  gateway itself uses.
- Errors: `ClientError` and its subclasses (`neurogate_client.errors`).
"""

from __future__ import annotations

from .auth import TokenSource, websocket_url
from .device import ClientStats, DeviceClient
from .errors import (
    ClientError,
    CredentialsRejected,
    GatewayUnavailable,
    ProtocolError,
    StreamRefused,
    SubscriptionRefused,
)
from .events import Data, Event, Gap, Notice, Revoked, Subscribed
from .layout import StreamInfo, StreamLayout
from .listeners import add_message_listener, remove_message_listener
from .subscriber import AppSubscription

__version__ = "0.1.0"

__all__ = [
    "AppSubscription",
    "ClientError",
    "ClientStats",
    "CredentialsRejected",
    "Data",
    "DeviceClient",
    "Event",
    "Gap",
    "GatewayUnavailable",
    "Notice",
    "ProtocolError",
    "Revoked",
    "StreamInfo",
    "StreamLayout",
    "StreamRefused",
    "Subscribed",
    "SubscriptionRefused",
    "TokenSource",
    "add_message_listener",
    "remove_message_listener",
    "websocket_url",
]
