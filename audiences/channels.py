"""Which channel works best for a group of customers, from past engagement."""

from __future__ import annotations


def best_channel(customer_ids, *, organization) -> dict | None:
    return None
