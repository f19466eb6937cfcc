"""The one way a person logs in, shared by ``POST /v1/auth/login`` and the portal's form.

:func:`attempt_login` throttles and checks a username and password:

* Failed attempts are counted per account and per client address (moving windows of
  one minute, ``NEUROGATE_LOGIN_ATTEMPTS_PER_MINUTE`` and
  ``NEUROGATE_LOGIN_ATTEMPTS_PER_ADDRESS_PER_MINUTE``). Once either is used up, every
  attempt is refused with :class:`~neurogate.errors.RateLimitedError` (429 with
  ``Retry-After``) *before* the password is looked at, so even the right password waits.
  Successful logins use up nothing.
* The account is named by :func:`~neurogate.consent.abuse.account_key` (an HMAC of the
  NFKC username under the gateway's secret) for the throttle and the abuse counters
  alike, and that is computed the same way whether the account exists or not. An unknown
  username, a wrong password and a disabled account take the same path (the password is
  checked against a dummy hash when there is no account), answer the same
  :class:`~neurogate.errors.AuthenticationError`, and count the same.
* Failures and throttled attempts are counted in ``abuse_counts`` and reach the ledger as
  one ``abuse.aggregate`` leaf per account key and window (see ``neurogate.consent.abuse``),
  never a leaf per attempt.
"""

from __future__ import annotations

import threading
import zlib

from neurogate.consent.abuse import account_key, record
from neurogate.consent.accounts import authenticate
from neurogate.consent.models import Account
from neurogate.errors import AuthenticationError, RateLimitedError
from neurogate.gateway.state import Gateway

WRONG_CREDENTIALS = "The username or password is wrong."
RATE_LIMITED = (
    "Too many failed logins for this account or from this address; wait the number of "
    "seconds given in the Retry-After header, then try again."
)
ACCOUNT_THROTTLE = "login.account"
ADDRESS_THROTTLE = "login.address"
# Attempts on one account key take turns within a process, so that a concurrent burst
# cannot slip more guesses past the throttle than it allows (striped: bounded memory).
_STRIPES = tuple(threading.Lock() for _ in range(64))


def _address_key(secret: str, client_address: str | None) -> str:
    # Hashed as well: a shared rate-limit store should not hold people's addresses.
    return account_key(secret, f"address:{client_address or 'unknown'}")


def attempt_login(gw: Gateway, *, username: str, password: str,
                  client_address: str | None) -> Account:
    """The account if ``password`` is right and no throttle holds; else raise.

    Raises :class:`~neurogate.errors.RateLimitedError` while the account or the address
    is throttled, and :class:`~neurogate.errors.AuthenticationError` with one message for
    every wrong username, password or disabled account.
    """
    settings = gw.settings
    secret = settings.secret_key.get_secret_value()
    key = account_key(secret, username)
    address = _address_key(secret, client_address)
    with _STRIPES[zlib.crc32(key.encode()) % len(_STRIPES)]:
        return _attempt(gw, key=key, address=address, username=username, password=password)


def _attempt(gw: Gateway, *, key: str, address: str, username: str, password: str) -> Account:
    settings = gw.settings
    per_account = gw.throttles.get(ACCOUNT_THROTTLE, limit=settings.login_attempts_per_minute)
    per_address = gw.throttles.get(
        ADDRESS_THROTTLE, limit=settings.login_attempts_per_address_per_minute
    )
    if not (per_account.allowed(key) and per_address.allowed(address)):
        wait = max(per_account.retry_after(key), per_address.retry_after(address), 1)
        with gw.transaction() as session:
            record(session=session, kind="auth.login_throttled", key=key,
                   window_seconds=settings.abuse_window_seconds)
        msg = RATE_LIMITED
        raise RateLimitedError(msg, retry_after=wait)
    with gw.transaction() as session:
        account = authenticate(session=session, username=username, password=password)
        if account is None:
            record(session=session, kind="auth.login_failed", key=key,
                   window_seconds=settings.abuse_window_seconds)
    if account is None:
        per_account.hit(key)
        per_address.hit(address)
        raise AuthenticationError(WRONG_CREDENTIALS)
    return account


__all__ = ["RATE_LIMITED", "WRONG_CREDENTIALS", "attempt_login"]
