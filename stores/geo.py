"""Placing customers and choosing those near a store or in a place (audience kind
`location`; docs/contract.md, the stores row of the REST API).

A customer qualifies when they meet every criterion the definition gives:
- `near` {latitude, longitude, km}: placed within `km` of the point;
- `store` with `km`: placed within `km` of the store, or with a postcode that starts
  with one of the store's postcode beginnings (a store without coordinates decides
  by postcode alone);
- `countries`, `regions`, `postal_prefixes`: their country (ISO code or name, any
  case), region (same text, any case) or postcode (start, spaces ignored) is one of
  the list's.

Placement uses no outside service, only the organisation's own data, in this order:
1. the customer's own latitude and longitude;
2. the centre of the other customers of the same country and postcode area (the
   part of the postcode before the space, else its first three characters) who
   have coordinates;
3. the centre of those of the same city and country.
A customer none of these places is "unplaced" for distance criteria; one whose
country, region or postcode is blank is unplaced for that list. `unplaced` counts
the customers no criterion ruled out but at least one could not decide: those who
might belong, had we known where they are.

The numerical part (`placements`, `haversine_km`, `location_select`) takes arrays
and has no ORM in it; `location_evaluation` loads the rows and wraps the answer.
"""

from __future__ import annotations

import logging
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.dtypes import StringDType

from core.exceptions import ApplicationError

log = logging.getLogger("segmenta.stores")

EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)

# --- countries ------------------------------------------------------------------------------
# Codes and English names come from the IANA time zone database's iso3166.tab, which
# the installed tzdata package ships (and most systems keep in /usr/share/zoneinfo).
# Below, only the other spellings shop exports commonly hold.
_ALIASES = {
    "GB": (
        "uk", "united kingdom", "great britain", "england", "scotland", "wales",
        "northern ireland", "gbr", "united kingdom of great britain and northern ireland",
    ),
    "US": ("usa", "united states of america", "america", "u s", "u s a"),
    "AE": ("uae", "are"),
    "CZ": ("czechia", "cze"),
    "RU": ("russian federation", "rus"),
    "NL": ("holland", "nederland", "nld"),
    "KR": ("south korea", "republic of korea", "kor"),
    "KP": ("north korea",),
    "CI": ("ivory coast", "cote divoire"),
    "TR": ("turkiye", "tur"),
    "DE": ("deutschland", "deu"),
    "FR": ("fra",),
    "ES": ("espana", "esp"),
    "IT": ("italia", "ita"),
    "AT": ("osterreich", "aut"),
    "CH": ("schweiz", "suisse", "svizzera", "che"),
    "BE": ("belgique", "belgie", "bel"),
    "SE": ("sverige", "swe"),
    "NO": ("norge", "nor"),
    "DK": ("danmark", "dnk"),
    "FI": ("suomi", "fin"),
    "PL": ("polska", "pol"),
    "PT": ("prt",),
    "IE": ("eire", "irl", "republic of ireland"),
    "BR": ("brasil", "bra"),
    "MX": ("mex",),
    "CA": ("can",),
    "AU": ("aus",),
    "NZ": ("nzl",),
    "JP": ("jpn",),
    "CN": ("chn",),
    "IN": ("ind",),
    "VA": ("vatican", "holy see"),
    "MO": ("macao",),
}  # fmt: skip


def _norm(text: Any) -> str:
    """Case, accents, dots and spacing ignored: ' Côte d’Ivoire ' -> 'cote divoire'."""
    text = unicodedata.normalize("NFKD", str(text or "")).casefold()
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = text.replace("&", " and ")
    for ch in ".,'’`()-_/":
        text = text.replace(ch, " " if ch in "()-_/" else "")
    text = " ".join(text.split())
    return text[4:] if text.startswith("the ") else text


def _iso3166_lines() -> list[str]:
    try:
        from importlib.resources import files

        return files("tzdata").joinpath("zoneinfo/iso3166.tab").read_text("utf-8").splitlines()
    except (ImportError, ModuleNotFoundError, FileNotFoundError, OSError):
        pass
    system = Path("/usr/share/zoneinfo/iso3166.tab")
    return system.read_text("utf-8").splitlines() if system.exists() else []


@cache
def country_index() -> dict[str, str]:
    """Normalised spelling -> ISO 3166 alpha-2 code."""
    index: dict[str, str] = {}
    bases: dict[str, set[str]] = {}
    for line in _iso3166_lines():
        if not line or line.startswith("#") or "\t" not in line:
            continue
        code, name = line.split("\t", 1)
        code = code.strip().upper()
        index[code.lower()] = code
        index[_norm(name)] = code
        if name.startswith("St "):
            index[_norm("Saint " + name[3:])] = code
        if "(" in name:  # "Britain (UK)": "Britain" too, unless shared ("Korea (South)")
            bases.setdefault(_norm(name.split("(")[0]), set()).add(code)
    for base, codes in bases.items():
        if len(codes) == 1 and base not in index:
            index[base] = next(iter(codes))
    for code, spellings in _ALIASES.items():
        for spelling in spellings:
            index[_norm(spelling)] = code
    return index


def country_key(text: Any) -> str:
    """The ISO code for a country given by code or name, else the normalised text
    (so unknown spellings still match themselves); '' when blank."""
    normalised = _norm(text)
    if not normalised:
        return ""
    return country_index().get(normalised, normalised)


# --- postcodes ------------------------------------------------------------------------------
# Postcodes are mostly distinct (100,000 customers, nearly as many postcodes), so they
# are cleaned with numpy's string functions, a C loop, rather than one call each.
TEXT = StringDType()


def text_array(values: Sequence[str] | np.ndarray) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype == TEXT:
        return values
    return np.array([v or "" for v in values], dtype=TEXT)


def postcodes_normalise(codes: np.ndarray) -> np.ndarray:
    """'sw1a 1aa' -> 'SW1A1AA': postcodes and prefixes are compared this way."""
    codes = np.strings.upper(np.strings.strip(codes))
    return np.strings.replace(np.strings.replace(codes, "\t", ""), " ", "")


def postcode_areas(codes: np.ndarray) -> np.ndarray:
    """The postcode's area: the part before the space ('SW1A 1AA' -> 'SW1A'), else its
    first three characters ('75001' -> '750', '90210' -> '902')."""
    codes = np.strings.upper(np.strings.strip(codes))
    space = np.strings.find(codes, " ")
    return np.strings.slice(codes, 0, np.where(space > 0, space, 3))


def postcode_area(text: str) -> str:
    return str(postcode_areas(text_array([text]))[0])


def starts_with_any(codes: np.ndarray, prefixes: Sequence[str]) -> np.ndarray:
    """Whether each normalised postcode starts with one of `prefixes` (normalised
    here): one pass per prefix length, however many prefixes there are."""
    wanted = postcodes_normalise(text_array(list(prefixes)))
    out = np.zeros(len(codes), dtype=bool)
    by_length: dict[int, list[str]] = {}
    for prefix in wanted.tolist():
        if prefix:
            by_length.setdefault(len(prefix), []).append(prefix)
    lengths = np.strings.str_len(codes)
    for length, group in by_length.items():
        heads = np.strings.slice(codes, 0, length)
        out |= (lengths >= length) & np.isin(heads, text_array(group))
    return out


# --- placement and distance (no ORM) ----------------------------------------------------------
def _by_distinct(values: Sequence[str], func) -> dict[str, Any]:
    """func of each distinct value: customers share a few hundred countries, regions and
    cities, so the text is cleaned once per spelling, not once per customer."""
    return {value: func(value) for value in set(values)}


HOW_UNPLACED, HOW_OWN, HOW_POSTCODE, HOW_CITY = 0, 1, 2, 3


@dataclass
class Placements:
    latitude: np.ndarray  # NaN where unplaced
    longitude: np.ndarray
    how: np.ndarray  # HOW_* per customer

    @property
    def placed(self) -> np.ndarray:
        return self.how != HOW_UNPLACED


def _unit_vectors(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    phi, lam = np.radians(lat), np.radians(lon)
    return np.column_stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)])


def _group_centres(keys: np.ndarray, own: np.ndarray, xyz: np.ndarray):
    """Per customer, the centre (lat, lon) of the customers with coordinates sharing
    their key ('' is no key), and whether there is one. Centres are means of unit
    vectors, so an area across the 180th meridian is not put on the other side of
    the world."""
    n = len(keys)
    codes: dict[str, int] = {"": 0}
    inverse = np.fromiter(
        (codes.setdefault(k, len(codes)) for k in keys.tolist()), dtype=np.int64, count=n
    )
    has_key = inverse > 0
    weights = (own & has_key).astype(float)
    groups = len(codes)
    sums = np.column_stack(
        [np.bincount(inverse, weights=xyz[:, i] * weights, minlength=groups) for i in range(3)]
    )
    counts = np.bincount(inverse, weights=weights, minlength=groups)
    found = (counts > 0)[inverse] & has_key
    vec = sums[inverse]
    lat = np.degrees(np.arctan2(vec[:, 2], np.hypot(vec[:, 0], vec[:, 1])))
    lon = np.degrees(np.arctan2(vec[:, 1], vec[:, 0]))
    return lat, lon, found


def _keys(country_keys: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """'GB|SW1A' per customer, '' where the part is blank."""
    joined = np.strings.add(np.strings.add(country_keys, "|"), parts)
    return np.where(np.strings.str_len(parts) > 0, joined, text_array([""]))


def placements(
    latitude: np.ndarray,
    longitude: np.ndarray,
    postal_codes: Sequence[str] | np.ndarray,
    cities: Sequence[str],
    country_keys: Sequence[str],
) -> Placements:
    """Where each customer is, from their own coordinates, else their postcode
    area's, else their city's (see the module's docstring). `country_keys` are
    `country_key` of each customer's country."""
    lat = np.asarray(latitude, dtype=float)
    lon = np.asarray(longitude, dtype=float)
    with np.errstate(invalid="ignore"):
        own = (
            np.isfinite(lat)
            & np.isfinite(lon)
            & (np.abs(lat) <= 90)
            & (np.abs(lon) <= 180)
            # 0, 0 is in the Gulf of Guinea: a default written by systems that had no
            # position, not where a customer lives
            & ~((lat == 0) & (lon == 0))
        )
    n = len(lat)
    out_lat = np.where(own, lat, np.nan)
    out_lon = np.where(own, lon, np.nan)
    how = np.where(own, HOW_OWN, HOW_UNPLACED).astype(np.int8)
    if n == 0 or own.all():
        return Placements(out_lat, out_lon, how)
    xyz = _unit_vectors(np.where(own, lat, 0.0), np.where(own, lon, 0.0))
    countries = text_array(country_keys)
    city_of = _by_distinct(cities, _norm)
    levels = (
        (lambda: _keys(countries, postcode_areas(text_array(postal_codes))), HOW_POSTCODE),
        (lambda: _keys(countries, text_array([city_of[c] for c in cities])), HOW_CITY),
    )
    for keys_of, level in levels:
        if not (how == HOW_UNPLACED).any():
            break
        c_lat, c_lon, found = _group_centres(keys_of(), own, xyz)
        take = found & (how == HOW_UNPLACED)
        out_lat[take], out_lon[take], how[take] = c_lat[take], c_lon[take], level
    return Placements(out_lat, out_lon, how)


def haversine_km(lat: np.ndarray, lon: np.ndarray, to_lat: float, to_lon: float) -> np.ndarray:
    """Great-circle distance in km from each (lat, lon) to one point; NaN stays NaN."""
    phi1, phi2 = np.radians(lat), np.radians(to_lat)
    dphi = phi2 - phi1
    dlam = np.radians(to_lon) - np.radians(lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(dlam / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


@dataclass
class Selection:
    chosen: np.ndarray  # bool per customer
    undecided: np.ndarray  # bool: ruled out by nothing, but some criterion could not decide
    distance_km: np.ndarray | None  # for distance criteria (NaN where not known)
    causes: list[str]  # what the undecided lack, for the owner's note


@dataclass
class Customers:
    """The columns placement needs, one entry per customer (erased ones left out)."""

    ids: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    postal_codes: list[str]
    cities: list[str]
    regions: list[str]
    countries: list[str]


def location_select(
    definition: dict[str, Any],
    customers: Customers,
    *,
    store: dict[str, Any] | None = None,
) -> Selection:
    """Apply every criterion of a cleaned `location` definition; `store` holds the
    store's latitude, longitude and postal_prefixes when the definition names one."""
    n = len(customers.ids)
    chosen = np.ones(n, dtype=bool)
    ruled_out = np.zeros(n, dtype=bool)
    distance = None
    # one key per distinct spelling: a few hundred countries, not 100,000 look-ups
    keys_of = _by_distinct(customers.countries, country_key)
    country_keys = [keys_of[text] for text in customers.countries]
    postal_codes = text_array(customers.postal_codes)
    normalised_codes = postcodes_normalise(postal_codes)
    has_code = np.strings.str_len(normalised_codes) > 0

    undecided_by: list[tuple[str, np.ndarray]] = []

    def apply(match: np.ndarray, decided: np.ndarray, cause: str) -> None:
        nonlocal chosen, ruled_out
        chosen &= match & decided
        ruled_out |= decided & ~match
        undecided_by.append((cause, ~decided))

    if "near" in definition or "store" in definition:
        place = placements(
            customers.latitude,
            customers.longitude,
            postal_codes,
            customers.cities,
            country_keys,
        )
        point: tuple[float, float] | None
        if "near" in definition:
            near = definition["near"]
            point, km, prefixes = (near["latitude"], near["longitude"]), near["km"], []
        else:
            store = store or {}
            point = (
                (store["latitude"], store["longitude"])
                if store.get("latitude") is not None and store.get("longitude") is not None
                else None
            )
            km, prefixes = definition["km"], list(store.get("postal_prefixes") or [])
        distance = np.full(n, np.nan)
        decided = np.zeros(n, dtype=bool)
        match = np.zeros(n, dtype=bool)
        if point is not None:
            placed = place.placed
            distance[placed] = haversine_km(
                place.latitude[placed], place.longitude[placed], point[0], point[1]
            )
            decided |= placed
            with np.errstate(invalid="ignore"):
                match |= placed & (distance <= km)
        if prefixes:
            by_code = starts_with_any(normalised_codes, prefixes)
            match |= by_code
            # without the store's coordinates a postcode decides on its own
            decided |= by_code if point is not None else has_code
        apply(
            match,
            decided,
            "coordinates, postcode or city we could locate" if point is not None else "postcode",
        )
    if definition.get("countries"):
        wanted = {country_key(c) for c in definition["countries"]} - {""}
        match = np.fromiter((k in wanted for k in country_keys), dtype=bool, count=n)
        decided = np.fromiter((bool(k) for k in country_keys), dtype=bool, count=n)
        apply(match, decided, "country")
    if definition.get("regions"):
        wanted = {_norm(r) for r in definition["regions"]} - {""}
        region_of = _by_distinct(customers.regions, _norm)
        region_keys = [region_of[r] for r in customers.regions]
        match = np.fromiter((k in wanted for k in region_keys), dtype=bool, count=n)
        decided = np.fromiter((bool(k) for k in region_keys), dtype=bool, count=n)
        apply(match, decided, "region")
    if definition.get("postal_prefixes"):
        match = starts_with_any(normalised_codes, definition["postal_prefixes"])
        apply(match, has_code, "postcode")
    undecided = ~chosen & ~ruled_out
    # the note names only what the customers counted as unplaced lack
    causes = [cause for cause, lacking in undecided_by if (lacking & undecided).any()]
    return Selection(chosen=chosen, undecided=undecided, distance_km=distance, causes=causes)


def unplaced_note(count: int, causes: list[str]) -> str:
    if count <= 0:
        return ""
    who = "1 customer" if count == 1 else f"{count:,} customers"
    if causes and causes[0].startswith("coordinates"):
        what = causes[0]
        rest = causes[1:]
        if rest:
            what = f"{what}, or no {' or '.join(rest)} on record"
        return f"{who} could not be placed: they have no {what}."
    return f"{who} could not be placed: they have no {' or '.join(causes)} on record."


# --- loading and the audience's answer --------------------------------------------------------
def _store_of(store_id: int) -> dict[str, Any]:
    from .models import Store

    store = Store.objects.filter(pk=store_id).first()
    if store is None:
        message = f"There is no store {store_id}."
        raise ApplicationError(message, {"fields": {"store": message}}, code="invalid_definition")
    return {
        "latitude": store.latitude,
        "longitude": store.longitude,
        "postal_prefixes": list(store.postal_prefixes or []),
    }


def fields_needed(definition: dict[str, Any]) -> set[str]:
    """The customer columns a definition reads: fewer columns, faster loading."""
    fields: set[str] = set()
    if "near" in definition or "store" in definition:
        fields |= {"latitude", "longitude", "postal_code", "city", "country"}
    for criterion, field in (
        ("countries", "country"),
        ("regions", "region"),
        ("postal_prefixes", "postal_code"),
    ):
        if definition.get(criterion):
            fields.add(field)
    return fields


def customers_load(fields: set[str] | None = None, *, sample=None) -> Customers:
    """The current organisation's customers that are not erased (in no particular
    order), with `fields` filled in (all when None) and the others left blank; with
    a `customers.sampling.CustomerSample`, only the customers in it."""
    from django.db import connections

    from customers.models import Customer

    order = ("latitude", "longitude", "postal_code", "city", "region", "country")
    wanted = [f for f in order if fields is None or f in fields]
    query = Customer.objects.filter(erased_at__isnull=True)
    if sample is not None:
        query = query.filter(sample.lookup("pk"))
    query = query.values_list("pk", *wanted)
    # The scoped queryset's own SQL (its organisation filter included), fetched in one
    # go: Django's row iterator reads 100 rows a round and costs more than the maths
    # for 100,000 customers. These columns need no converters on any backend.
    sql, params = query.query.sql_with_params()
    with connections[query.db].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    n = len(rows)
    columns = {name: [row[i] for row in rows] for i, name in enumerate(["pk", *wanted])}

    def numbers(field: str) -> np.ndarray:
        if field not in columns:
            return np.full(n, np.nan)
        return np.array([np.nan if v is None else v for v in columns[field]], dtype=float)

    def texts(field: str) -> list[str]:
        return [v or "" for v in columns[field]] if field in columns else [""] * n

    return Customers(
        ids=np.fromiter(columns.get("pk", ()), dtype=np.int64, count=n),
        latitude=numbers("latitude"),
        longitude=numbers("longitude"),
        postal_codes=texts("postal_code"),
        cities=texts("city"),
        regions=texts("region"),
        countries=texts("country"),
    )


def location_evaluation(definition: dict[str, Any], *, organization, sample=None):
    """The customers a cleaned `location` definition selects: nearest first for
    `near`/`store`, by id otherwise; scores are None (location only selects). With a
    `customers.sampling.CustomerSample` (the audience preview's estimate), among the
    customers of the sample only; the note then counts everyone, as an estimate."""
    from audiences.evaluation import Evaluation

    started = time.monotonic()
    store = _store_of(definition["store"]) if "store" in definition else None
    customers = customers_load(fields_needed(definition), sample=sample)
    selection = location_select(definition, customers, store=store)
    chosen = np.flatnonzero(selection.chosen)
    if selection.distance_km is not None and chosen.size:
        # nearest first; those counted near through the store's postcodes alone (no
        # distance known) after the others, then by id
        dist = np.nan_to_num(selection.distance_km[chosen], nan=np.inf)
        chosen = chosen[np.lexsort((customers.ids[chosen], dist))]
    else:
        chosen = chosen[np.argsort(customers.ids[chosen], kind="stable")]
    unplaced = int(selection.undecided.sum())
    if sample is None:
        notes = [note] if (note := unplaced_note(unplaced, selection.causes)) else []
    else:
        estimate = round(unplaced * sample.scale)
        notes = [f"About {n}"] if (n := unplaced_note(estimate, selection.causes)) else []
    log.info(
        "location_evaluated",
        extra={
            "organization_id": getattr(organization, "pk", None),
            "customers": len(customers.ids),
            "chosen": int(chosen.size),
            "unplaced": unplaced,
            "ms": round(1000 * (time.monotonic() - started)),
        },
    )
    return Evaluation(
        scores={int(pk): None for pk in customers.ids[chosen]},
        unplaced=unplaced,
        notes=notes,
    )


__all__ = [
    "country_key",
    "haversine_km",
    "location_evaluation",
    "location_select",
    "placements",
    "postcode_area",
]
