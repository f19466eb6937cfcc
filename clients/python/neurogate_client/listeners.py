"""Listeners that see every JSON message a client of this library receives.

For logging and for contract checks (NeuroGate's own tests validate each message against
the gateway's AsyncAPI document this way). A listener is called from the thread that read
the message, with the endpoint (``"ingest"`` or ``"subscribe"``) and the decoded message;
whatever it raises propagates to that client's reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["MessageListener", "add_message_listener", "remove_message_listener"]

MessageListener = Callable[[str, dict[str, Any]], None]
_LISTENERS: list[MessageListener] = []


def add_message_listener(listener: MessageListener) -> None:
    """Call ``listener(endpoint, message)`` for every JSON message received from now on."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def remove_message_listener(listener: MessageListener) -> None:
    """Stop calling ``listener`` (no error if it was not added)."""
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


def notify(endpoint: str, message: dict[str, Any]) -> None:
    """Pass one received message to every listener."""
    for listener in list(_LISTENERS):
        listener(endpoint, message)
