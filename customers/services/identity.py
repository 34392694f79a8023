"""How an erased person is remembered without keeping anything that names them.

Everything here is a keyed hash (HMAC-SHA256 with a key derived from SECRET_KEY
through `salted_hmac` and a fixed salt): without the server's secret, a stored
digest cannot be matched against guessed ids, emails or phone numbers. Digests
made with a key in SECRET_KEY_FALLBACKS are still recognised, so rotating the
secret the way Django documents it does not let erased people back in.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.utils.crypto import salted_hmac

ERASED_PREFIX = "erased:"
_SALT = "segmenta.customers.erasure"
KINDS = ("id", "email", "phone")
_MIN_PHONE_DIGITS = 5  # fewer digits than this identifies nobody ("0", "n/a")


def _secrets() -> list[str]:
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _hmac(message: str, secret: str) -> str:
    return salted_hmac(_SALT, message, secret=secret, algorithm="sha256").hexdigest()


def erased_external_id(organization_id: int, external_id: str) -> str:
    """The tombstone id that replaces an erased customer's own id (the row keeps its
    unique key). Keyed, so it cannot be reversed by hashing guesses."""
    return ERASED_PREFIX + _hmac(f"tombstone:{organization_id}:{external_id}", _secrets()[0])[:48]


def erased_external_ids(organization_id: int, external_id: str) -> list[str]:
    """Every tombstone the id may have been given: the current key, older keys, and
    the unkeyed form of erasures made before keyed hashes (those rows cannot be
    re-hashed: the raw id is gone, which is the point)."""
    keyed = [
        ERASED_PREFIX + _hmac(f"tombstone:{organization_id}:{external_id}", s)[:48]
        for s in _secrets()
    ]
    return [*keyed, legacy_erased_external_id(organization_id, external_id)]


def legacy_erased_external_id(organization_id: int, external_id: str) -> str:
    """The unkeyed tombstone of erasures made before keyed hashes (read only)."""
    digest = hashlib.sha256(f"{organization_id}:{external_id}".encode()).hexdigest()
    return ERASED_PREFIX + digest[:48]


def normalize(kind: str, value: str | None) -> str:
    """The form an identifier is compared in: ids ignore letter case and surrounding
    spaces, emails case (and a mailto: prefix), phone numbers everything but digits."""
    text = (value or "").strip()
    if not text:
        return ""
    if kind == "id":
        return text.casefold()
    if kind == "email":
        text = text.lower()
        if text.startswith("mailto:"):
            text = text[7:]
        return text if "@" in text else ""
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        return digits if len(digits) >= _MIN_PHONE_DIGITS else ""
    raise ValueError(f"unknown identifier kind {kind!r}")


def identifier_digest(organization_id: int, kind: str, value: str | None) -> str:
    """The keyed hash erasure stores for one identifier ("" when there is none)."""
    text = normalize(kind, value)
    if not text:
        return ""
    return _hmac(f"{kind}:{organization_id}:{text}", _secrets()[0])


def identifier_digests(organization_id: int, kind: str, value: str | None) -> list[str]:
    """The digests to look for: one per secret (current and fallbacks)."""
    text = normalize(kind, value)
    if not text:
        return []
    return [_hmac(f"{kind}:{organization_id}:{text}", s) for s in _secrets()]
