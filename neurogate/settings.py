"""Settings, read from the environment with the ``NEUROGATE_`` prefix."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_PLACEHOLDER_SECRET = "change-me"


class Settings(BaseSettings):
    """Gateway settings.

    ``data_dir`` holds the embedded SQLite database and the signing keys; ``database_url``
    overrides the database (e.g. ``postgresql+psycopg://user@host/db``).
    """

    model_config = SettingsConfigDict(env_prefix="NEUROGATE_", extra="ignore")

    environment: str = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str = "neurogate"
    ledger_origin: str = "neurogate.local/ledger"
    access_token_ttl_seconds: int = 600
    session_idle_seconds: int = 30 * 60
    session_absolute_seconds: int = 12 * 3600
    secret_key: SecretStr = SecretStr(_PLACEHOLDER_SECRET)
    # argon2id cost (RFC 9106's second recommended profile by default).
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 65536
    # Abuse limits (neurogate/gateway/throttle.py, neurogate/consent/abuse.py). Failed
    # logins per account and per client address in any minute; subscribe attempts per app
    # in any minute; where the counts live (``memory://`` = this process; a cluster gives
    # a shared store such as ``redis://host:6379``); how long one aggregated ledger
    # window lasts and how often closed windows are flushed to the ledger.
    login_attempts_per_minute: int = 5
    login_attempts_per_address_per_minute: int = 30
    subscribe_attempts_per_minute: int = 30
    rate_limit_storage_uri: str = "memory://"
    abuse_window_seconds: int = 60
    abuse_flush_seconds: float = 15.0

    @field_validator("environment")
    @classmethod
    def _check_environment(cls, value: str) -> str:
        allowed = ("development", "test", "production")
        if value not in allowed:
            msg = (
                f"Invalid value for NEUROGATE_ENVIRONMENT. Allowed values are "
                f"{', '.join(repr(a) for a in allowed)}, but got {value!r} instead."
            )
            raise ValueError(msg)
        return value

    @field_validator("login_attempts_per_minute", "login_attempts_per_address_per_minute",
                     "subscribe_attempts_per_minute", "abuse_window_seconds")
    @classmethod
    def _check_positive_limit(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            name = f"NEUROGATE_{(info.field_name or '').upper()}"
            msg = f"Invalid value for {name}. It must be at least 1, but got {value!r} instead."
            raise ValueError(msg)
        return value

    def model_post_init(self, __context: object) -> None:
        if self.environment == "production" and (
            self.secret_key.get_secret_value() == _PLACEHOLDER_SECRET
        ):
            msg = (
                "NEUROGATE_SECRET_KEY still has its placeholder value; set a long random "
                "secret before running with NEUROGATE_ENVIRONMENT=production."
            )
            raise ValueError(msg)

    @property
    def resolved_database_url(self) -> str:
        """The database URL: ``database_url`` if set, else SQLite inside ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'neurogate.db').resolve()}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache or override the dependency)."""
    return Settings()


__all__ = ["Settings", "get_settings"]
