"""Rate limits on the gateway's doors, on the ``limits`` library.

A :class:`Throttle` allows at most ``limit`` hits per key within any ``period_seconds``
(a moving window, so a burst at a window's edge cannot double the rate). Its state lives
in a ``limits`` storage named by a URI: ``memory://`` (the default) keeps it in this
process; a cluster points every node at one shared store, e.g. ``redis://host:6379``
(``NEUROGATE_RATE_LIMIT_STORAGE_URI``), so that an attacker gains nothing by spreading
attempts over nodes.

Typical use, e.g. subscribe attempts per app::

    throttle = gateway.throttles.get("subscribe", limit=30)
    if not throttle.hit(app_id):
        refuse(retry_after=throttle.retry_after(app_id))

``hit`` counts an attempt and says whether it is allowed; ``allowed`` only asks (logins
ask first, and count failures only, so that a correct password during a lockout is
refused without extending it). Keys are opaque strings; keep personal data out of them
where a shared store could be read by others (hash a username first).
"""

from __future__ import annotations

import math
import threading
import time

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

DEFAULT_STORAGE_URI = "memory://"


class Throttle:
    """At most ``limit`` hits per key in any ``period_seconds`` (moving window)."""

    def __init__(self, *, name: str, limit: int, period_seconds: int = 60,
                 storage: Storage | None = None,
                 storage_uri: str = DEFAULT_STORAGE_URI) -> None:
        if limit < 1:
            msg = (f"Invalid value for the 'limit' parameter of the {name!r} throttle. It "
                   f"must be at least 1, but got {limit} instead.")
            raise ValueError(msg)
        if period_seconds < 1:
            msg = (f"Invalid value for the 'period_seconds' parameter of the {name!r} "
                   f"throttle. It must be at least 1, but got {period_seconds} instead.")
            raise ValueError(msg)
        self.name = name
        self.limit = limit
        self.period_seconds = period_seconds
        self._item: RateLimitItem = RateLimitItemPerSecond(limit, period_seconds)
        self._limiter = MovingWindowRateLimiter(storage or storage_from_string(storage_uri))

    def hit(self, key: str) -> bool:
        """Count one attempt for ``key``; True if it is within the limit."""
        return bool(self._limiter.hit(self._item, self.name, key))

    def allowed(self, key: str) -> bool:
        """Whether one more attempt for ``key`` would be within the limit (counts nothing)."""
        return bool(self._limiter.test(self._item, self.name, key))

    def retry_after(self, key: str) -> int:
        """Whole seconds until ``key`` may try again: 0 if it may now, else at least 1."""
        stats = self._limiter.get_window_stats(self._item, self.name, key)
        if stats.remaining > 0:
            return 0
        return max(1, math.ceil(stats.reset_time - time.time()))

    def clear(self, key: str) -> None:
        """Forget every attempt counted for ``key``."""
        self._limiter.clear(self._item, self.name, key)


class Throttles:
    """The gateway's throttles by name, all on one storage (created on first use)."""

    def __init__(self, storage_uri: str = DEFAULT_STORAGE_URI) -> None:
        self.storage_uri = storage_uri
        self._storage: Storage | None = None
        self._by_name: dict[str, Throttle] = {}
        self._lock = threading.Lock()

    def get(self, name: str, *, limit: int, period_seconds: int = 60) -> Throttle:
        """The throttle called ``name``; a changed limit replaces it (and starts afresh)."""
        with self._lock:
            if self._storage is None:
                self._storage = storage_from_string(self.storage_uri)
            throttle = self._by_name.get(name)
            if throttle is None or (throttle.limit, throttle.period_seconds) != (
                limit, period_seconds
            ):
                throttle = Throttle(name=name, limit=limit, period_seconds=period_seconds,
                                    storage=self._storage)
                self._by_name[name] = throttle
            return throttle


__all__ = ["DEFAULT_STORAGE_URI", "Throttle", "Throttles"]
