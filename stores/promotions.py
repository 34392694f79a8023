"""Local promotions (issue 12): which store is each customer's, and how many
customers each store can reach.

Customers are placed as location audiences place them (`stores.geo`: their own
coordinates, else the centre of their postcode area, else of their city, all from
the organisation's own data; no outside service).

- `nearest_stores`: a placed customer's store is the nearest one that has
  coordinates; a customer who cannot be placed, or any customer when no store has
  coordinates, gets the store whose postcode beginnings start their postcode (the
  longest beginning wins, then the stores' order), else None.
- `store_reach`: the customers within each radius of a store counted as a
  location audience `{"kind": "location", "store": id, "km": r}` counts them
  (within the distance, or with a postcode the store serves), those who could not
  be placed and why, and how many within the default radius may get email or SMS.
- `stores_overview`: the same for every store at once (the stores page), with the
  organisation's placement summary and each store's "closest to" count.

Figures are cached per organisation, data version and stores' version.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.core.cache import cache

from accounts.tenancy import require_organization_id, scope_check

from . import geo

log = logging.getLogger("segmenta.stores")

DEFAULT_KM = 10.0
OVERVIEW_RADII = (5, 10, 25)
CACHE_SECONDS = 600
# cells of the customers x stores block worked out at once (about 16 MB of floats)
_BLOCK_CELLS = 2_000_000
# asked about this few customers, load them alone first: when all have coordinates,
# nobody else's rows are needed
_FEW = 2_000
DISTANCE_CAUSE = "coordinates, postcode or city we could locate"


# --- the customers, placed --------------------------------------------------------------------
@dataclass
class Population:
    """The organisation's customers (not erased), sorted by id, placed."""

    ids: np.ndarray
    latitude: np.ndarray  # NaN where unplaced
    longitude: np.ndarray
    how: np.ndarray  # geo.HOW_*
    codes: np.ndarray  # normalised postcodes ('' when blank)
    has_city: np.ndarray
    email_ok: np.ndarray  # agreed to email and has an address
    sms_ok: np.ndarray

    @property
    def placed(self) -> np.ndarray:
        return self.how != geo.HOW_UNPLACED

    @property
    def has_code(self) -> np.ndarray:
        return np.strings.str_len(self.codes) > 0

    def positions(self, customer_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Where each id is (index) and whether it is one of these customers."""
        at = np.searchsorted(self.ids, customer_ids)
        inside = at < self.ids.size
        found = np.zeros(customer_ids.size, dtype=bool)
        found[inside] = self.ids[at[inside]] == customer_ids[inside]
        return np.where(found, at, 0), found


def _fetch(query) -> list[tuple]:
    """The scoped queryset's own SQL fetched in one go (as `geo.customers_load`)."""
    from django.db import connections

    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def population_load(
    *, customer_ids: Sequence[int] | None = None, consent: bool = False
) -> Population:
    """Load and place the current organisation's customers (only `customer_ids`
    when given: then the postcode and city centres are left out, so use it only for
    customers with their own coordinates)."""
    from django.db.models import BooleanField, ExpressionWrapper, Q

    from customers.models import Customer

    query = Customer.objects.filter(erased_at__isnull=True)
    if customer_ids is not None:
        query = query.filter(pk__in=list(customer_ids))
    columns = ["pk", "latitude", "longitude", "postal_code", "city", "country"]
    if consent:
        query = query.annotate(
            _email_ok=ExpressionWrapper(
                Q(accepts_email=True) & ~Q(email=""), output_field=BooleanField()
            ),
            _sms_ok=ExpressionWrapper(
                Q(accepts_sms=True) & ~Q(phone=""), output_field=BooleanField()
            ),
        )
        columns += ["_email_ok", "_sms_ok"]
    rows = _fetch(query.order_by("pk").values_list(*columns))
    n = len(rows)
    col = [[row[i] for row in rows] for i in range(len(columns))]
    # numpy reads None as NaN for floats; one C call per column
    ids = np.array(col[0], dtype=np.int64).reshape(n)
    postal_codes = geo.text_array(col[3])
    cities = [v or "" for v in col[4]]
    countries = [v or "" for v in col[5]]
    keys_of = {text: geo.country_key(text) for text in set(countries)}
    place = geo.placements(
        np.array(col[1], dtype=float).reshape(n),
        np.array(col[2], dtype=float).reshape(n),
        postal_codes,
        cities,
        [keys_of[t] for t in countries],
    )
    no_flags = np.zeros(n, dtype=bool)
    return Population(
        ids=ids,
        latitude=place.latitude,
        longitude=place.longitude,
        how=place.how,
        codes=geo.postcodes_normalise(postal_codes),
        has_city=np.strings.str_len(np.strings.strip(geo.text_array(cities))) > 0,
        email_ok=np.array(col[6], dtype=bool).reshape(n) if consent else no_flags,
        sms_ok=np.array(col[7], dtype=bool).reshape(n) if consent else no_flags,
    )


# --- stores ---------------------------------------------------------------------------------------
def _store_row(store) -> dict[str, Any]:
    return {
        "id": store.pk,
        "name": store.name,
        "latitude": store.latitude,
        "longitude": store.longitude,
        "postal_prefixes": list(store.postal_prefixes or []),
    }


def _stores_rows() -> list[dict[str, Any]]:
    from .models import Store

    return [_store_row(s) for s in Store.objects.order_by("name", "id")]


def _located(store: dict[str, Any]) -> bool:
    return store["latitude"] is not None and store["longitude"] is not None


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
    (0 where none): one pass per prefix length, a look-up per distinct head."""
    out = np.zeros(len(codes), dtype=np.int64)
    if not len(codes) or not table:
        return out
    lengths = np.strings.str_len(codes)
    for length in sorted(table, reverse=True):
        todo = np.flatnonzero((out == 0) & (lengths >= length))
        if not todo.size:
            continue
        heads = np.strings.slice(codes[todo], 0, length)
        unique, inverse = np.unique(heads, return_inverse=True)
        found = np.array([table[length].get(str(u), 0) for u in unique.tolist()], dtype=np.int64)
        out[todo] = found[inverse.reshape(-1)]
    return out


def _nearest_by_distance(
    lat: np.ndarray, lon: np.ndarray, store_lat: np.ndarray, store_lon: np.ndarray
) -> np.ndarray:
    """The index of the nearest store for each point: the largest dot product of
    unit vectors is the smallest great-circle angle. Worked out in blocks, so memory
    stays bounded however many customers and stores there are."""
    points = geo._unit_vectors(lat, lon)  # noqa: SLF001
    shops = geo._unit_vectors(store_lat, store_lon).T  # noqa: SLF001
    rows = max(1, _BLOCK_CELLS // max(1, shops.shape[1]))
    out = np.empty(len(lat), dtype=np.int64)
    for start in range(0, len(lat), rows):
        out[start : start + rows] = np.argmax(points[start : start + rows] @ shops, axis=1)
    return out


def _assign(pop: Population, at: np.ndarray, stores: list[dict[str, Any]]) -> np.ndarray:
    """The store id (0 for none) of the customers at positions `at`."""
    result = np.zeros(at.size, dtype=np.int64)
    located = [s for s in stores if _located(s)]
    needs_code = np.ones(at.size, dtype=bool)
    if located and at.size:
        placed = pop.placed[at]
        if placed.any():
            ids = np.array([s["id"] for s in located], dtype=np.int64)
            nearest = _nearest_by_distance(
                pop.latitude[at[placed]],
                pop.longitude[at[placed]],
                np.array([s["latitude"] for s in located], dtype=float),
                np.array([s["longitude"] for s in located], dtype=float),
            )
            result[placed] = ids[nearest]
        needs_code = ~placed
    table = _prefix_table(stores)
    if table and needs_code.any():
        result[needs_code] = _by_postcode(pop.codes[at[needs_code]], table)
    return result


def nearest_stores(*, organization, customer_ids: Iterable[int]) -> dict[int, int | None]:
    """For each of `customer_ids`, the id of their store: the nearest one (by
    great-circle distance) when the customer can be placed, else one whose postcode
    beginnings start the customer's postcode, else None. Ids that are not the
    organisation's customers, or are erased, get None."""
    scope_check(organization=organization)
    started = time.monotonic()
    wanted = np.fromiter((int(i) for i in customer_ids), dtype=np.int64)
    answer: dict[int, int | None] = dict.fromkeys(wanted.tolist())
    stores = _stores_rows()
    if not wanted.size or not stores:
        return answer
    pop = None
    if np.unique(wanted).size <= _FEW:
        few = population_load(customer_ids=np.unique(wanted).tolist())
        # their own coordinates need nobody else's rows; a postcode or city centre does
        if (few.how == geo.HOW_OWN).sum() == few.ids.size:
            pop = few
    if pop is None:
        pop = population_load()
    at, found = pop.positions(wanted)
    result = np.zeros(wanted.size, dtype=np.int64)
    result[found] = _assign(pop, at[found], stores)
    answer.update(zip(wanted.tolist(), (s or None for s in result.tolist()), strict=True))
    log.info(
        "nearest_stores",
        extra={
            "organization_id": getattr(organization, "pk", organization),
            "customers": int(wanted.size),
            "loaded": int(pop.ids.size),
            "stores": len(stores),
            "ms": round(1000 * (time.monotonic() - started)),
        },
    )
    return answer


# --- reach ------------------------------------------------------------------------------------------
def _reach_of(pop: Population, store: dict[str, Any], radii: Sequence[float], default_km: float):
    """A store's figures; matches the location audience {"store", "km"} for each
    radius (`stores.geo.location_select`)."""
    prefixes = store["postal_prefixes"]
    by_code = geo.starts_with_any(pop.codes, prefixes) if prefixes else np.zeros(pop.ids.size, bool)
    if _located(store):
        placed = pop.placed
        distance = np.full(pop.ids.size, np.inf)
        distance[placed] = geo.haversine_km(
            pop.latitude[placed], pop.longitude[placed], store["latitude"], store["longitude"]
        )
        undecided = ~placed & ~by_code
        cause = DISTANCE_CAUSE
    else:
        distance = np.full(pop.ids.size, np.inf)
        undecided = ~pop.has_code
        cause = "postcode"

    def within(km: float) -> np.ndarray:
        return (distance <= km) | by_code

    inside = within(default_km)
    unplaced = int(undecided.sum())
    return {
        "store": store["id"],
        "located": _located(store),
        "customers": int(pop.ids.size),
        "radii": [{"km": km, "customers": int(within(km).sum())} for km in radii],
        "km": default_km,
        "within": int(inside.sum()),
        "by_postcode_only": int((by_code & ~(distance <= default_km)).sum()),
        "reachable": {
            "email": int((inside & pop.email_ok).sum()),
            "sms": int((inside & pop.sms_ok).sum()),
        },
        "unplaced": unplaced,
        "unplaced_causes": [cause] if unplaced else [],
        "unplaced_note": geo.unplaced_note(unplaced, [cause]),
    }


def _version(stores: list[dict[str, Any]] | None = None) -> str:
    """Changes when customers, orders or events are written (the audiences' data
    version) and, given `stores`, when a store is added, changed or removed."""
    from audiences.channels import data_version

    from .models import Store

    version = data_version()
    if stores is None:
        return version
    latest = Store.objects.order_by("-updated_at").values_list("updated_at", flat=True).first()
    ids = ",".join(str(s["id"]) for s in stores)
    stamp = f"{latest:%Y%m%d%H%M%S%f}" if latest else "-"
    return f"{version}:{stamp}:{hashlib.sha256(ids.encode()).hexdigest()[:16]}"


def _radii(radii: Iterable[Any]) -> tuple[float, ...]:
    out = sorted({float(r) for r in radii if float(r) > 0})
    return tuple(out)


def _radii_key(radii: tuple[float, ...]) -> str:
    return "-".join(f"{r:g}" for r in radii)


def store_reach(
    *, organization, store, radii: Iterable[float] = (2, 5, 10, 25), km: float = DEFAULT_KM
) -> dict[str, Any]:
    """How many customers a store reaches within each radius (with those its postcode
    beginnings serve), how many could not be placed and why, and how many of those
    within `km` (the default radius) may get email or SMS. Cached per organisation
    and data version."""
    scope_check(organization=organization)
    radii = _radii(radii)
    row = _store_row(store)
    stamp = f"{store.updated_at:%Y%m%d%H%M%S%f}" if store.updated_at else "-"
    key = (
        f"stores:reach:org{require_organization_id()}:store{store.pk}:{stamp}:{_version()}:"
        f"{_radii_key(radii)}:{float(km):g}"
    )
    found = cache.get(key)
    if found is not None:
        return found
    started = time.monotonic()
    pop = population_load(consent=True)
    figures = _reach_of(pop, row, radii, float(km))
    cache.set(key, figures, CACHE_SECONDS)
    log.info(
        "store_reach",
        extra={
            "organization_id": organization.pk,
            "customers": int(pop.ids.size),
            "ms": round(1000 * (time.monotonic() - started)),
        },
    )
    return figures


def placement_summary(pop: Population) -> dict[str, int]:
    """How the customers were placed; those unplaced split by what they lack."""
    unplaced = ~pop.placed
    nothing = unplaced & ~pop.has_code & ~pop.has_city
    return {
        "customers": int(pop.ids.size),
        "own": int((pop.how == geo.HOW_OWN).sum()),
        "postcode": int((pop.how == geo.HOW_POSTCODE).sum()),
        "city": int((pop.how == geo.HOW_CITY).sum()),
        "unplaced": int(unplaced.sum()),
        # no coordinates, no postcode and no city on record
        "unplaced_nothing": int(nothing.sum()),
        # a postcode or city, but no customer with coordinates shares its area or city
        "unplaced_unknown_area": int((unplaced & ~nothing).sum()),
    }


def placement_sentence(summary: dict[str, int]) -> str:
    """The stores page's line about customers who could not be placed."""
    count = summary["unplaced"]
    if not summary["customers"]:
        return ""
    if not count:
        return "Every customer could be placed on the map."
    who = "1 customer" if count == 1 else f"{count:,} customers"
    reasons = []
    if summary["unplaced_nothing"]:
        n = summary["unplaced_nothing"]
        reasons.append(f"{n:,} {'has' if n == 1 else 'have'} no coordinates, postcode or city")
    if summary["unplaced_unknown_area"]:
        n = summary["unplaced_unknown_area"]
        reasons.append(
            f"{n:,} {'has' if n == 1 else 'have'} a postcode or city we cannot place (no "
            "customer with coordinates shares it)"
        )
    return f"{who} could not be placed on the map: {' and '.join(reasons)}."


def stores_overview(*, organization, radii: Iterable[float] = OVERVIEW_RADII) -> dict[str, Any]:
    """Every store's reach (as `store_reach`, with `closest`: how many customers have
    it as their nearest store) and the organisation's placement summary."""
    scope_check(organization=organization)
    radii = _radii(radii)
    stores = _stores_rows()
    key = f"stores:overview:org{require_organization_id()}:{_version(stores)}:{_radii_key(radii)}"
    found = cache.get(key)
    if found is not None:
        return found
    started = time.monotonic()
    pop = population_load(consent=True)
    assigned = _assign(pop, np.arange(pop.ids.size), stores) if stores else np.zeros(0)
    closest = dict(zip(*np.unique(assigned[assigned > 0], return_counts=True), strict=True))
    figures: dict[str, Any] = {"stores": {}}
    for store in stores:
        reach = _reach_of(pop, store, radii, DEFAULT_KM)
        reach["closest"] = int(closest.get(store["id"], 0))
        figures["stores"][store["id"]] = reach
    summary = placement_summary(pop)
    figures["placement"] = summary
    figures["placement_sentence"] = placement_sentence(summary)
    figures["no_store"] = int((assigned == 0).sum()) if stores else summary["customers"]
    cache.set(key, figures, CACHE_SECONDS)
    log.info(
        "stores_overview",
        extra={
            "organization_id": organization.pk,
            "customers": int(pop.ids.size),
            "stores": len(stores),
            "ms": round(1000 * (time.monotonic() - started)),
        },
    )
    return figures


# --- promotions: the audiences they go to -----------------------------------------------------------
def _km_words(km: float) -> str:
    return f"{km:g}"


def local_audience_create(
    *, organization, store, km: float, name: str = "", user=None, request=None
):
    """The audience of customers within `km` of `store` (a location audience; the
    same one again when it exists and no name is given). Returns (audience, created)."""
    scope_check(organization=organization)
    km = float(km)
    from audiences.services import audience_for_definition

    return audience_for_definition(
        organization=organization,
        definition={"kind": "location", "store": store.pk, "km": km},
        name=(name or "").strip(),
        base_name=f"Within {_km_words(km)} km of {store.name}",
        user=user,
        request=request,
    )


def region_audience_create(
    *,
    organization,
    regions: Sequence[str] = (),
    postal_prefixes: Sequence[str] = (),
    countries: Sequence[str] = (),
    name: str = "",
    user=None,
    request=None,
):
    """The audience of customers in these regions, with these postcode beginnings
    and in these countries (each list given must match). Returns (audience, created)."""
    scope_check(organization=organization)
    definition: dict[str, Any] = {"kind": "location"}
    parts = []
    if regions:
        definition["regions"] = list(regions)
        parts.append(", ".join(regions))
    if postal_prefixes:
        definition["postal_prefixes"] = list(postal_prefixes)
        parts.append("postcodes " + ", ".join(postal_prefixes))
    if countries:
        definition["countries"] = list(countries)
        parts.append(", ".join(countries))
    from audiences.services import audience_for_definition

    return audience_for_definition(
        organization=organization,
        definition=definition,
        name=(name or "").strip(),
        base_name="Customers in " + " · ".join(parts),
        user=user,
        request=request,
    )


def store_audiences(store) -> list:
    """The location audiences around `store`, newest first."""
    from audiences.models import Audience

    return list(
        Audience.objects.filter(definition__kind="location", definition__store=store.pk).order_by(
            "-pk"
        )
    )


__all__ = [
    "DEFAULT_KM",
    "local_audience_create",
    "nearest_stores",
    "placement_summary",
    "population_load",
    "region_audience_create",
    "store_audiences",
    "store_reach",
    "stores_overview",
]
