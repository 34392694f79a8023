"""Reads for research pages, panels, erasure and exports (helper H2 writes it)."""

from __future__ import annotations


def customer_panel(*, request, customer) -> dict | None:
    return None


def segment_panel(*, request, segment) -> dict | None:
    return None


def erase_customers(*, organization, customer_ids) -> None:
    return None


def person_export(*, customer) -> dict:
    return {}


def org_export() -> list:
    return []
