"""A person's preferences for how the gateway talks to them (the portal's language)."""

from __future__ import annotations

from sqlmodel import Session

from neurogate.consent.models import Account
from neurogate.consent.purposes import LANGUAGES
from neurogate.errors import NotFoundError, ValidationError


def set_language(*, session: Session, account_id: str, language: str) -> Account:
    """Keep ``language`` (one of the catalog's languages) as the account's preference."""
    if language not in LANGUAGES:
        allowed = ", ".join(repr(code) for code in LANGUAGES)
        msg = (f"Invalid value for the 'language' field. Allowed values are {allowed}, "
               f"but got {language!r} instead.")
        raise ValidationError(msg, field="language")
    account = session.get(Account, account_id)
    if account is None:
        msg = f"No account has the id {account_id!r}."
        raise NotFoundError(msg)
    account.language = language
    session.add(account)
    return account


__all__ = ["set_language"]
