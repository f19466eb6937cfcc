"""The purposes catalog and its notices (public: anyone may read what they consent to)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter

from neurogate.consent.purposes import LANGUAGES, VARIANTS, Purpose, load_catalog
from neurogate.gateway.routes._params import STRICT_QUERY

router = APIRouter(prefix="/v1/purposes", tags=["purposes"], dependencies=[STRICT_QUERY])


def purpose_public(purpose: Purpose) -> dict[str, Any]:
    """A purpose with its flags, products, resolutions and every notice."""
    return {
        "id": purpose.id,
        "title": purpose.title,
        "flags": dataclasses.asdict(purpose.flags),
        "duo": list(purpose.duo),
        "dpv": list(purpose.dpv),
        "retention_days": purpose.retention_days,
        "products": {
            name: {
                "window_s": res.window_s,
                "output_rate_hz": res.output_rate_hz,
                "channels": res.channels,
            }
            for name, res in purpose.products.items()
        },
        "notices": [
            {
                "version": n.version,
                "language": n.language,
                "variant": n.variant,
                "text": n.text,
                "sha256": n.sha256,
            }
            for n in (purpose.notice(lang, var) for lang in LANGUAGES for var in VARIANTS)
        ],
    }


@router.get("")
def read_purposes() -> dict[str, Any]:
    """List every purpose of the catalog."""
    catalog = load_catalog()
    return {
        "catalog_version": catalog.version,
        "purposes": [purpose_public(p) for p in catalog.all()],
    }


@router.get("/{purpose_id}")
def read_purpose(purpose_id: str) -> dict[str, Any]:
    """Read one purpose and its notices."""
    return purpose_public(load_catalog().get(purpose_id))
