"""Short-lived JWT access tokens for apps and devices, signed with Ed25519."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey
from joserfc.jwt import JWTClaimsRegistry

from neurogate.errors import AuthenticationError

_ALG = "Ed25519"


def load_or_create_key(path: Path) -> OKPKey:
    """The token-signing key at ``path``, created (mode 0600) on first use."""
    if path.exists():
        return OKPKey.import_key(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    key = OKPKey.generate_key("Ed25519")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.as_pem(private=True))
    return key


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says: who (app or device), and the scopes."""

    kind: str
    subject: str
    client_id: str
    scopes: frozenset[str]


class TokenIssuer:
    """Issues and verifies access tokens with one key."""

    def __init__(self, *, key: OKPKey, issuer: str, ttl_seconds: int) -> None:
        self.key = key
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self._registry = JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            exp={"essential": True},
            sub={"essential": True},
        )

    def issue(self, *, kind: str, subject: str, client_id: str, scope: str) -> str:
        """A signed access token for an app or device."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "client_id": client_id,
            "kind": kind,
            "scope": scope,
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode({"alg": _ALG, "typ": "at+jwt"}, claims, self.key, algorithms=[_ALG])

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid, unexpired token issued here."""
        try:
            decoded = jwt.decode(token, self.key, algorithms=[_ALG])
            self._registry.validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            msg = "The access token is invalid or expired; request a new one at /oauth/token."
            raise AuthenticationError(msg) from exc
        claims = decoded.claims
        kind = claims.get("kind")
        if kind not in ("app", "device"):
            msg = "The access token is invalid or expired; request a new one at /oauth/token."
            raise AuthenticationError(msg)
        return AccessClaims(
            kind=kind,
            subject=str(claims["sub"]),
            client_id=str(claims.get("client_id", "")),
            scopes=frozenset(str(claims.get("scope", "")).split()),
        )


__all__ = ["AccessClaims", "TokenIssuer", "load_or_create_key"]
