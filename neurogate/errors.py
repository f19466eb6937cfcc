"""Errors raised by NeuroGate.

Every error NeuroGate raises on purpose derives from one root::

    NeurogateError
    ├── ValidationError        bad input: names the field, the value and what is allowed
    ├── NotFoundError          unknown object, or one the caller may not see (same thing)
    ├── PermissionDenied       the caller's role may not do this at all
    ├── AuthenticationError    missing, wrong or expired credentials
    ├── RateLimitedError       too many attempts: wait ``retry_after`` seconds
    ├── ConflictError          the request is valid but clashes with the current state
    ├── ConsentError           consent or policy rules refuse the request
    ├── LedgerError            the ledger failed verification or cannot be appended to
    │   └── ErasedEntryError   an erased entry: nothing opens its leaf (also NotFoundError)
    ├── StorageError           the consent store cannot be read or written
    ├── SignalError            bad signal input to the processing pipeline
    └── DeviceError            a device adapter failed

Domain code raises these; the gateway maps them to HTTP status codes in one place.
"""

from __future__ import annotations


class NeurogateError(Exception):
    """Root of every error NeuroGate raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(NeurogateError):
    """Input that does not meet the documented rules."""

    code = "invalid_request"


class NotFoundError(NeurogateError):
    """An unknown object, or one the caller may not see: both look the same."""

    code = "not_found"


class PermissionDenied(NeurogateError):
    """The caller's role may not perform this action on any object."""

    code = "forbidden"


class AuthenticationError(NeurogateError):
    """Missing, wrong or expired credentials."""

    code = "unauthenticated"


class RateLimitedError(NeurogateError):
    """Too many attempts (logins, subscriptions) from one account, address or app."""

    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, field: str | None = None) -> None:
        super().__init__(message, field=field)
        self.retry_after = max(1, int(retry_after))


class ConflictError(NeurogateError):
    """A valid request that clashes with the current state."""

    code = "conflict"


class ConsentError(NeurogateError):
    """Consent or policy rules refuse the request."""

    code = "consent_refused"


class LedgerError(NeurogateError):
    """The ledger failed verification or could not be appended to."""

    code = "ledger_error"


class ErasedEntryError(NotFoundError, LedgerError):
    """A ledger entry was erased with its subject: its leaf stays, and nothing opens it."""

    code = "not_found"


class StorageError(NeurogateError):
    """The consent store cannot be read or written."""

    code = "storage_unavailable"


class SignalError(NeurogateError):
    """Bad input to the signal pipeline."""

    code = "signal_error"


class DeviceError(NeurogateError):
    """A device adapter failed."""

    code = "device_error"


def not_found(kind: str, ident: object) -> NotFoundError:
    """Build the one message used for unknown and forbidden objects alike."""
    return NotFoundError(f"No {kind} with id '{ident}' exists, or you may not access it.")


__all__ = [
    "AuthenticationError",
    "ConflictError",
    "ConsentError",
    "DeviceError",
    "ErasedEntryError",
    "LedgerError",
    "NeurogateError",
    "NotFoundError",
    "PermissionDenied",
    "RateLimitedError",
    "SignalError",
    "StorageError",
    "ValidationError",
    "not_found",
]
