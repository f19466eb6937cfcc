"""Hospital sign-in: OpenID Connect for clinicians and administrators.

``client`` talks to the provider (authlib), ``mappings`` decides which staff account an
identity signs in as, ``routes`` serves the portal's redirect and callback and the
administrators' API, ``console`` the administrators' page. :func:`install` adds them to
the application; without the ``NEUROGATE_OIDC_*`` settings the API and the console page
still answer (with nothing to sign in through) and the sign-in page shows no button.
"""

from __future__ import annotations

from fastapi import FastAPI

from neurogate.gateway.oidc import console, routes
from neurogate.gateway.oidc.client import HospitalSignIn, SignInFailed
from neurogate.gateway.oidc.mappings import Identity, NoMappingError
from neurogate.gateway.state import Gateway


def install(app: FastAPI, gateway: Gateway) -> None:
    """Serve hospital sign-in on ``app`` (the client only when it is configured)."""
    app.state.hospital_sign_in = (HospitalSignIn(gateway) if gateway.settings.oidc_enabled
                                  else None)
    app.include_router(routes.portal)
    app.include_router(routes.api)
    app.include_router(console.router)


__all__ = ["HospitalSignIn", "Identity", "NoMappingError", "SignInFailed", "install"]
