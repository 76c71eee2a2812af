"""The one spelling of a cached profile, shared by the request path and the `cache` projection.

Both write the same Redis entries (a cache fill after a miss, the projection after a change), so
both must serialise a profile identically, whichever path the row came by.
"""

from __future__ import annotations

from typing import Any

from campus_gateway.cache import Kind
from campus_gateway.schemas import GroupProfile, UserProfile

MODELS: dict[Kind, type[UserProfile] | type[GroupProfile]] = {
    "user": UserProfile,
    "group": GroupProfile,
}


def normalize(kind: Kind, raw: bytes | dict[str, Any]) -> bytes:
    """A profile as the cache stores it, whichever path it came by."""
    model = MODELS[kind]
    obj = model.model_validate_json(raw) if isinstance(raw, bytes) else model.model_validate(raw)
    return obj.model_dump_json().encode()
