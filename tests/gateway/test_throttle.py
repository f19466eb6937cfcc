"""The throttle helper on the ``limits`` library."""

from __future__ import annotations

import pytest

from neurogate.gateway.throttle import Throttle, Throttles


def test_throttle_allows_the_limit_then_refuses_with_a_retry_after() -> None:
    """Three hits pass, the fourth is refused and says how long to wait."""
    throttle = Throttle(name="t", limit=3, period_seconds=60)
    assert throttle.retry_after("app_1") == 0
    assert [throttle.hit("app_1") for _ in range(4)] == [True, True, True, False]
    assert not throttle.allowed("app_1")
    assert 1 <= throttle.retry_after("app_1") <= 60
    assert throttle.hit("app_2") and throttle.allowed("app_2")


def test_throttle_allowed_counts_nothing_and_clear_forgets() -> None:
    """Asking does not use up attempts; clearing a key lets it in again."""
    throttle = Throttle(name="t", limit=1, period_seconds=60)
    assert all(throttle.allowed("k") for _ in range(10))
    assert throttle.hit("k") and not throttle.hit("k")
    throttle.clear("k")
    assert throttle.allowed("k") and throttle.retry_after("k") == 0


def test_throttles_share_one_storage_and_keep_names_apart() -> None:
    """Throttles of one registry keep separate counts per name, and the same per call."""
    registry = Throttles("memory://")
    login = registry.get("login", limit=1)
    assert registry.get("login", limit=1) is login
    assert login.hit("k") and not login.hit("k")
    assert registry.get("subscribe", limit=1).hit("k")


@pytest.mark.parametrize(("limit", "period", "message"), [
    (0, 60, r"Invalid value for the 'limit' parameter of the 't' throttle\. It must be at "
            r"least 1, but got 0 instead\."),
    (1, 0, r"Invalid value for the 'period_seconds' parameter of the 't' throttle\. It must "
           r"be at least 1, but got 0 instead\."),
])
def test_throttle_refuses_a_limit_below_one(limit: int, period: int, message: str) -> None:
    """A throttle needs at least one attempt per period of at least one second."""
    with pytest.raises(ValueError, match=message):
        Throttle(name="t", limit=limit, period_seconds=period)
