"""Errors the client library raises.

Every error it raises on purpose derives from one root::

    ClientError
    ├── ProtocolError          a message or frame that breaks the protocol (``close_code``)
    ├── GatewayUnavailable     the gateway cannot be reached or failed; retry later
    ├── CredentialsRejected    the gateway refused the client credentials; do not retry
    ├── StreamRefused          the gateway refused a device's stream for good
    └── SubscriptionRefused    the gateway refused or ended an app's subscription for good

Each message is a whole sentence: what was wrong, the bad value, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ClientError",
    "CredentialsRejected",
    "GatewayUnavailable",
    "ProtocolError",
    "StreamRefused",
    "SubscriptionRefused",
]


class ClientError(Exception):
    """Root of every error the client library raises on purpose.

    Attributes
    ----------
    message : str
        The whole message.
    field : str | None
        The parameter or protocol field it is about, if one.
    """

    code = "client_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ProtocolError(ClientError):
    """A message or frame that breaks the protocol; ``close_code`` says how to close."""

    code = "protocol_error"

    def __init__(self, message: str, *, close_code: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.close_code = close_code


class GatewayUnavailable(ClientError):
    """The gateway could not be reached or answered with a server error; retry later."""

    code = "gateway_unavailable"


class CredentialsRejected(ClientError):
    """The gateway refused the client credentials; retrying will not help."""

    code = "credentials_rejected"


class StreamRefused(ClientError):
    """The gateway refused the stream for good (bad hello, unpaired device, ...)."""

    code = "stream_refused"

    def __init__(self, message: str, *, close_code: int) -> None:
        super().__init__(message, field="stream")
        self.close_code = close_code


class SubscriptionRefused(ClientError):
    """The gateway refused (or ended for good) a subscription; ``reasons`` are the
    policy's ids."""

    code = "subscription_refused"

    def __init__(self, message: str, *, close_code: int, reasons: tuple[str, ...] = (),
                 retry_after: float | None = None) -> None:
        super().__init__(message, field="subscription")
        self.close_code = close_code
        self.reasons = reasons
        self.retry_after = retry_after
