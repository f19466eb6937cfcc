"""The gateway: FastAPI application, OAuth2 token endpoint, streams and the CLI."""

from neurogate.gateway.app import create_app
from neurogate.gateway.state import Gateway, build_gateway

__all__ = ["Gateway", "build_gateway", "create_app"]
