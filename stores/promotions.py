"""Local promotions (issue 12): which store is each customer's, and how many
customers each store can reach.

Customers are placed as location audiences place them (`stores.geo`: their own
coordinates, else the centre of their postcode area, else of their city, all from
the organisation's own data). A placed customer's store is the nearest one that has
coordinates; a customer who cannot be placed, or an organisation whose stores have
no coordinates, falls back to the store whose postcode beginnings match the
customer's postcode (the longest beginning wins).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from accounts.tenancy import scope_check

from . import geo

log = logging.getLogger("segmenta.stores")

# rows of the customers x stores block worked out at once: about 16 MB of floats
_BLOCK_CELLS = 2_000_000
PLACEMENT_FIELDS = {"latitude", "longitude", "postal_code", "city", "country"}


def _stores_rows() -> list[dict[str, Any]]:
    from .models import Store

    return list(
        Store.objects.order_by("name", "id").values(
            "id", "latitude", "longitude", "postal_prefixes"
        )
    )


def _nearest_by_distance(
    lat: np.ndarray,
    lon: np.ndarray,
    store_ids: np.ndarray,
    store_lat: np.ndarray,
    store_lon: np.ndarray,
) -> np.ndarray:
    """The index (into the stores) of the nearest store for each point, by the
    largest dot product of unit vectors (the smallest great-circle angle), in
    blocks so memory stays bounded however many stores there are."""
    points = geo._unit_vectors(lat, lon)  # noqa: SLF001
    shops = geo._unit_vectors(store_lat, store_lon).T  # noqa: SLF001
    rows = max(1, _BLOCK_CELLS // max(1, len(store_ids)))
    out = np.empty(len(lat), dtype=np.int64)
    for start in range(0, len(lat), rows):
        out[start : start + rows] = np.argmax(points[start : start + rows] @ shops, axis=1)
    return out


def _prefix_key(prefix: Any) -> str:
    """'sw1 ' -> 'SW1', compared as `geo.postcodes_normalise` compares postcodes."""
    return "".join(str(prefix or "").split()).upper()


def _prefix_table(stores: list[dict[str, Any]]) -> dict[int, dict[str, int]]:
    """{prefix length: {prefix: store id}}; a prefix two stores share goes to the
    first in the list's order (name, then id)."""
    table: dict[int, dict[str, int]] = {}
    for store in stores:
        for prefix in store["postal_prefixes"] or []:
            key = _prefix_key(prefix)
            if key:
                table.setdefault(len(key), {}).setdefault(key, store["id"])
    return table


def _by_postcode(codes: np.ndarray, table: dict[int, dict[str, int]]) -> np.ndarray:
    """The store id whose longest postcode beginning starts each normalised code
    (0 where none)."""
    out = np.zeros(len(codes), dtype=np.int64)
    if not len(codes) or not table:
        return out
    lengths = np.strings.str_len(codes)
    for length in sorted(table, reverse=True):
        wanted = table[length]
        todo = (out == 0) & (lengths >= length)
        if not todo.any():
            continue
        heads = np.strings.slice(codes[todo], 0, length)
        unique, inverse = np.unique(heads, return_inverse=True)
        found = np.array([wanted.get(str(u), 0) for u in unique.tolist()], dtype=np.int64)
        out[np.flatnonzero(todo)] = found[inverse]
    return out


def nearest_stores(*, organization, customer_ids: Iterable[int]) -> dict[int, int | None]:
    """For each of `customer_ids`, the id of their store: the nearest one (by
    great-circle distance) when the customer can be placed, else one whose postcode
    beginnings start the customer's postcode, else None. Ids that are not the
    organisation's customers (or are erased) get None."""
    scope_check(organization=organization)
    started = time.monotonic()
    wanted = np.fromiter((int(i) for i in customer_ids), dtype=np.int64)
    answer: dict[int, int | None] = dict.fromkeys(wanted.tolist())
    stores = _stores_rows()
    if not wanted.size or not stores:
        return answer
    customers = geo.customers_load(PLACEMENT_FIELDS)
    positions = np.full(wanted.size, -1, dtype=np.int64)
    order = np.argsort(customers.ids)
    sorted_ids = customers.ids[order]
    at = np.searchsorted(sorted_ids, wanted)
    at_ok = at < sorted_ids.size
    hit = np.zeros(wanted.size, dtype=bool)
    hit[at_ok] = sorted_ids[at[at_ok]] == wanted[at_ok]
    positions[hit] = order[at[hit]]
    known = positions[hit]
    result = np.zeros(wanted.size, dtype=np.int64)

    located = [s for s in stores if s["latitude"] is not None and s["longitude"] is not None]
    needs_postcode = np.ones(known.size, dtype=bool)
    if located and known.size:
        keys_of = {text: geo.country_key(text) for text in set(customers.countries)}
        place = geo.placements(
            customers.latitude,
            customers.longitude,
            customers.postal_codes,
            customers.cities,
            [keys_of[text] for text in customers.countries],
        )
        placed = place.placed[known]
        if placed.any():
            ids = np.array([s["id"] for s in located], dtype=np.int64)
            nearest = _nearest_by_distance(
                place.latitude[known][placed],
                place.longitude[known][placed],
                ids,
                np.array([s["latitude"] for s in located], dtype=float),
                np.array([s["longitude"] for s in located], dtype=float),
            )
            sub = np.zeros(known.size, dtype=np.int64)
            sub[placed] = ids[nearest]
            needs_postcode = ~placed
            hit_result = np.zeros(known.size, dtype=np.int64)
            hit_result[placed] = sub[placed]
            result[np.flatnonzero(hit)] = hit_result
    table = _prefix_table(stores)
    if table and needs_postcode.any():
        codes = geo.postcodes_normalise(
            geo.text_array([customers.postal_codes[i] for i in known[needs_postcode]])
        )
        by_code = _by_postcode(codes, table)
        targets = np.flatnonzero(hit)[needs_postcode]
        result[targets] = by_code
    for pk, store_id in zip(wanted.tolist(), result.tolist(), strict=True):
        answer[pk] = store_id or None
    log.info(
        "nearest_stores",
        extra={
            "organization_id": getattr(organization, "pk", organization),
            "customers": int(wanted.size),
            "stores": len(stores),
            "ms": round(1000 * (time.monotonic() - started)),
        },
    )
    return answer


__all__ = ["nearest_stores"]
