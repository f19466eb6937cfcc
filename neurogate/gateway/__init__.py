"""The gateway: FastAPI application, OAuth2 token endpoint, streams and the CLI."""

from __future__ import annotations

from typing import Any

__all__ = ["Gateway", "build_gateway", "create_app"]


def __getattr__(name: str) -> Any:
    # Imported on first use, so that `neurogate devices ...` starts without FastAPI.
    if name == "create_app":
        from neurogate.gateway.app import create_app

        return create_app
    if name in ("Gateway", "build_gateway"):
        from neurogate.gateway import state

        return getattr(state, name)
    msg = f"module 'neurogate.gateway' has no attribute {name!r}"
    raise AttributeError(msg)
