"""The console: clinicians' patients, consents, devices, live streams, decisions and
concerns; administrators' app reviews and subjects' requests with their deadlines; app
owners' consent counts.

Every page calls the same domain functions as the REST API (``neurogate.consent``); what
a role may see and change is decided there, not here.
"""

from __future__ import annotations

from fastapi import APIRouter

from neurogate.gateway.portal.console import apps, concerns, consents, live, patients, requests

PREFIX = "/portal/console"

router = APIRouter(tags=["console"])
for _module in (patients, consents, live, concerns, apps, requests):
    router.include_router(_module.router, prefix=PREFIX)

__all__ = ["PREFIX", "router"]
