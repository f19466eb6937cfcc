"""Parameters shared by the REST routes: ids in paths, and no unknown query parameters.

A query parameter that a route does not declare is refused (422 naming it) rather than
ignored: a caller who sends ``?subject_id=...`` to a list that cannot filter by it must
not believe the answer was filtered. Every router of the API installs
:data:`STRICT_QUERY` as a router-wide dependency.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from neurogate.consent.schemas import MAX_ID
from neurogate.errors import ValidationError

# An object id in a path: a longer one cannot exist, and is not echoed back in full.
IdPath = Annotated[str, Path(max_length=MAX_ID)]


def _query_names(dependant: Dependant) -> set[str]:
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names



async def reject_unknown_query(request: Request) -> None:
    """Refuse a query parameter the route does not declare (async: no thread-pool trip)."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _query_names(route.dependant)  # a few fields: cheap to walk
    unknown = sorted(set(request.query_params) - declared)
    if unknown:
        name = unknown[0][:40]
        allowed = ", ".join(f"'{p}'" for p in sorted(declared)) or "none"
        msg = (
            f"The '{name}' query parameter is not known on {request.method} "
            f"{route.path}; the parameters allowed here are: {allowed}. Remove it."
        )
        raise ValidationError(msg, field=name)


STRICT_QUERY = Depends(reject_unknown_query)

__all__ = ["STRICT_QUERY", "IdPath", "reject_unknown_query"]
