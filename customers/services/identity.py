"""How an erased customer's id is remembered without keeping it."""

from __future__ import annotations

import hashlib

ERASED_PREFIX = "erased:"


def erased_external_id(organization_id: int, external_id: str) -> str:
    """The tombstone id that replaces an erased customer's own id: a one-way hash,
    salted with the organisation, so a later import naming the id is recognised
    while the id itself is no longer stored."""
    digest = hashlib.sha256(f"{organization_id}:{external_id}".encode()).hexdigest()
    return ERASED_PREFIX + digest[:48]
