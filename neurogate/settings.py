"""Settings, read from the environment with the ``NEUROGATE_`` prefix."""

from __future__ import annotations

import re
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

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
    # Streams stop reaching apps this long after the consent store last answered
    # (docs/protocol.md section 10, "Store lease").
    store_lease_seconds: float = 0.5
    # Abuse limits (neurogate/gateway/throttle.py, neurogate/consent/abuse.py). Failed
    # logins per account and per client address in any minute; subscribe attempts per app
    # in any minute; failed token requests per client address in any minute; where the
    # counts live (``memory://`` = this process; a cluster gives
    # a shared store such as ``redis://host:6379``); how long one aggregated ledger
    # window lasts and how often closed windows are flushed to the ledger.
    login_attempts_per_minute: int = 5
    login_attempts_per_address_per_minute: int = 30
    subscribe_attempts_per_minute: int = 30
    token_attempts_per_address_per_minute: int = 30
    rate_limit_storage_uri: str = "memory://"
    abuse_window_seconds: int = 60
    abuse_flush_seconds: float = 15.0
    # HTTP edge (neurogate/gateway/security.py and ``neurogate serve``).
    docs_enabled: bool = True
    allowed_origins: Annotated[list[str], NoDecode] = []
    header_timeout_seconds: float = 10.0
    body_timeout_seconds: float = 30.0
    limit_concurrency: int = 1000
    backlog: int = 2048
    # Largest request body the REST API reads (the largest valid one is a few KiB).
    max_body_bytes: int = 1024 * 1024
    # Hospital sign-in (OpenID Connect, neurogate/gateway/oidc/): the provider's issuer
    # URL (discovery at <issuer>/.well-known/openid-configuration), this gateway's client
    # id and secret there, the gateway's public base URL (the provider sends people back
    # to <redirect base>/portal/oidc/callback) and the provider's name on the sign-in
    # button. Until the first four are set, staff sign in with passwords only.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_redirect_base: str | None = None
    oidc_display_name: str | None = None
    # Scopes asked for; they must bring the claims the role mappings read (e.g. groups).
    oidc_scope: str = "openid profile email"
    # Sign-ins one client address may start at the provider in any minute (each keeps a
    # row in the store for ten minutes; a hospital's staff may share one address).
    oidc_starts_per_address_per_minute: int = 120
    # Encrypted recordings (docs/recordings.md): on where a purpose keeps data and a
    # key-encryption key is given, as a key file or as the key itself, with the wrapped
    # data keys in a key directory (both never inside ``data_dir``); segment length;
    # how often the retention sweeper runs.
    recording_enabled: bool = True
    recording_kek_file: Path | None = None
    recording_kek: SecretStr | None = None
    recording_key_dir: Path | None = None
    recording_segment_seconds: float = 10.0
    retention_sweep_seconds: float = 300.0
    # Cluster (docs/deployment.md): the NATS server nodes join (none: one process, no
    # NATS), this node's id (default: a random one per process start) and the address it
    # announces, NATS user credentials or token (secrets), the JetStream key-value bucket
    # of the node list and how long a node's heartbeat holds (it beats three times a lease).
    nats_url: str | None = None
    node_id: str = Field(default_factory=lambda: f"node-{secrets.token_hex(6)}")
    node_address: str | None = None
    nats_user: str | None = None
    nats_password: SecretStr | None = None
    nats_token: SecretStr | None = None
    cluster_bucket: str = "neurogate_nodes"
    cluster_lease_seconds: float = 6.0
    # /metrics: answered to loopback clients only unless a bearer token is set here.
    metrics_token: SecretStr | None = None

    @field_validator("nats_url")
    @classmethod
    def _check_nats_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for part in value.split(","):
            parts = urlsplit(part.strip())
            if parts.scheme not in ("nats", "tls") or not parts.hostname:
                msg = (
                    "Invalid value for NEUROGATE_NATS_URL. It must be nats://host:port or "
                    "tls://host:port (several separated by commas), but got "
                    f"{part.strip()[:80]!r} instead."
                )
                raise ValueError(msg)
            if parts.username is not None or parts.password is not None:
                msg = ("Invalid value for NEUROGATE_NATS_URL. Give NATS credentials in "
                       "NEUROGATE_NATS_USER and NEUROGATE_NATS_PASSWORD (or "
                       "NEUROGATE_NATS_TOKEN), not inside the URL.")
                raise ValueError(msg)
        return value.strip()

    @field_validator("node_id", "cluster_bucket")
    @classmethod
    def _check_cluster_name(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            msg = (
                f"Invalid value for NEUROGATE_{str(info.field_name).upper()}. It must be 1 to "
                "64 letters, digits, '-' or '_', but got "
                f"{value[:80]!r} instead."
            )
            raise ValueError(msg)
        return value

    @field_validator("cluster_lease_seconds")
    @classmethod
    def _check_cluster_lease(cls, value: float) -> float:
        if not 1 <= value <= 300:
            msg = (
                "Invalid value for NEUROGATE_CLUSTER_LEASE_SECONDS. Allowed values are from "
                f"1 to 300 seconds, but got {value!r} instead."
            )
            raise ValueError(msg)
        return value

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

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part for part in (p.strip() for p in value.split(",")) if part]
        if isinstance(value, list):
            return [_check_origin(str(origin)) for origin in value]
        return value

    @field_validator("header_timeout_seconds", "body_timeout_seconds")
    @classmethod
    def _check_read_timeout(cls, value: float, info: ValidationInfo) -> float:
        if not 0 < value <= 300:
            msg = (
                f"Invalid value for NEUROGATE_{str(info.field_name).upper()}. Allowed values "
                f"are greater than 0 and at most 300 seconds, but got {value!r} instead."
            )
            raise ValueError(msg)
        return value

    @field_validator("limit_concurrency", "backlog", "max_body_bytes")
    @classmethod
    def _check_server_limit(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            msg = (
                f"Invalid value for NEUROGATE_{str(info.field_name).upper()}. It must be at "
                f"least 1, but got {value!r} instead."
            )
            raise ValueError(msg)
        return value

    @field_validator("login_attempts_per_minute", "login_attempts_per_address_per_minute",
                     "subscribe_attempts_per_minute", "token_attempts_per_address_per_minute",
                     "abuse_window_seconds", "oidc_starts_per_address_per_minute")
    @classmethod
    def _check_positive_limit(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            name = f"NEUROGATE_{(info.field_name or '').upper()}"
            msg = f"Invalid value for {name}. It must be at least 1, but got {value!r} instead."
            raise ValueError(msg)
        return value

    @field_validator("oidc_issuer", "oidc_redirect_base")
    @classmethod
    def _check_oidc_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
        if (parts.scheme != "https" and not (parts.scheme == "http" and loopback)) \
                or not parts.hostname or parts.query or parts.fragment:
            msg = (
                f"Invalid value for NEUROGATE_{str(info.field_name).upper()}. It must be an "
                "https:// URL without query or fragment (http:// only on loopback), but got "
                f"{value[:80]!r} instead."
            )
            raise ValueError(msg)
        value = value.strip()
        # The issuer is compared with the provider's ``iss`` as written; the base loses "/".
        return value if info.field_name == "oidc_issuer" else value.rstrip("/")

    @property
    def oidc_enabled(self) -> bool:
        """Whether hospital sign-in is configured (issuer, client id and secret, base)."""
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret
                    and self.oidc_client_secret.get_secret_value() and self.oidc_redirect_base)

    @field_validator("recording_segment_seconds", "retention_sweep_seconds")
    @classmethod
    def _check_recording_seconds(cls, value: float, info: ValidationInfo) -> float:
        if not 0 < value <= 86400:
            msg = (
                f"Invalid value for NEUROGATE_{str(info.field_name).upper()}. Allowed values "
                f"are greater than 0 and at most 86400 seconds, but got {value!r} instead."
            )
            raise ValueError(msg)
        return value

    @field_validator("store_lease_seconds")
    @classmethod
    def _check_store_lease(cls, value: float) -> float:
        if not 0.1 <= value <= 10:
            msg = (
                "Invalid value for NEUROGATE_STORE_LEASE_SECONDS. Allowed values are from "
                f"0.1 to 10 seconds, but got {value!r} instead."
            )
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


def _check_origin(origin: str) -> str:
    """An origin as ``scheme://host[:port]`` in lower case, or a ValueError naming it."""
    parts = urlsplit(origin.strip())
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (parts.scheme not in ("http", "https") or not parts.hostname or port == -1
            or parts.path not in ("", "/") or parts.query or parts.fragment
            or parts.username is not None):
        msg = (
            "Invalid value for NEUROGATE_ALLOWED_ORIGINS. Each entry must be an origin like "
            f"'https://portal.example.org' or 'http://localhost:8080', but got {origin[:80]!r} "
            "instead; separate several origins with commas."
        )
        raise ValueError(msg)
    default = {"http": 80, "https": 443}[parts.scheme]
    suffix = f":{port}" if port is not None and port != default else ""
    return f"{parts.scheme}://{parts.hostname}{suffix}"


@lru_cache
def get_settings() -> Settings:
    """The process's settings (cached; tests clear the cache or override the dependency)."""
    return Settings()


__all__ = ["Settings", "get_settings"]
