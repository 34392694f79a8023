"""The fairness check of an audience (four-fifths rule on sensitive attributes)."""

from __future__ import annotations


def fairness_check(member_ids, *, organization) -> list[dict]:
    return []
