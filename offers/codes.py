"""Offer codes: unguessable, easy to read aloud, unique within the organisation.

A code is three groups of four symbols, `ABCD-EFGH-JKLM`, drawn with the `secrets`
module from 32 symbols that cannot be mistaken for one another (no 0/O, no 1/I):
12 × log2(32) = 60 bits of entropy, so guessing one code of an offer with a million
recipients takes about 2^40 tries. Codes are stored upper-case. A code is unique
within the organisation across every offer's recipient codes (a partial unique
constraint on `OfferRecipient.code`) and the shared codes (`Offer.shared_code`,
checked here before a code is handed out).

Matching (`code_key`) ignores case, surrounding spaces, and spaces or dashes inside
the code: `" abcd efgh-jklm "` is `ABCD-EFGH-JKLM`, since tills and web shops often
drop the dashes.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterable

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols: no 0, O, 1 or I
GROUPS = 3
GROUP_LENGTH = 4
ENTROPY_BITS = GROUPS * GROUP_LENGTH * math.log2(len(ALPHABET))
_CHECK_CHUNK = 2_000

__all__ = [
    "ALPHABET",
    "ENTROPY_BITS",
    "code_key",
    "code_new",
    "codes_fresh",
    "codes_taken",
]


def code_new() -> str:
    """One random code, `XXXX-XXXX-XXXX`."""
    symbols = "".join(secrets.choice(ALPHABET) for _ in range(GROUPS * GROUP_LENGTH))
    return "-".join(symbols[i : i + GROUP_LENGTH] for i in range(0, len(symbols), GROUP_LENGTH))


def code_key(text: object) -> str:
    """What two spellings of one code have in common: upper-case, without spaces or
    dashes ("" for nothing)."""
    if text is None:
        return ""
    return "".join(str(text).split()).replace("-", "").upper()


def codes_taken(codes: Iterable[str]) -> set[str]:
    """Which of these codes the current organisation already uses (a recipient's
    code or an offer's shared code)."""
    from .models import Offer, OfferRecipient

    wanted = list(dict.fromkeys(codes))
    taken: set[str] = set()
    for start in range(0, len(wanted), _CHECK_CHUNK):
        chunk = wanted[start : start + _CHECK_CHUNK]
        taken.update(OfferRecipient.objects.filter(code__in=chunk).values_list("code", flat=True))
        taken.update(
            Offer.objects.filter(shared_code__in=chunk).values_list("shared_code", flat=True)
        )
    return taken


def codes_fresh(n: int) -> list[str]:
    """`n` new codes, distinct from each other and from every code the current
    organisation uses. A collision is astronomically rare with 60 bits; it is still
    checked, and the colliding code drawn again."""
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        batch: list[str] = []
        while len(batch) < n - len(out):
            code = code_new()
            if code not in seen:
                seen.add(code)
                batch.append(code)
        taken = codes_taken(batch)
        out.extend(c for c in batch if c not in taken)
    return out
