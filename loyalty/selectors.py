"""Reads for pages, the API, erasure and the exports (skeleton)."""

from __future__ import annotations


def customer_panel(*, request, customer):
    return None


def erase_customers(*, organization, customer_ids) -> None:
    return None


def person_export(*, customer) -> dict:
    return {}


def org_export() -> list:
    return []


def loyalty_for_customers(customer_ids) -> dict:
    return {}
