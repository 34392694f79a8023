"""Stores: adding, changing and removing the business's shops, with their rules checked.

The API and the site pages both call these, so a store is checked the same way
wherever it comes from: a name; coordinates in range, both or neither; postcode
beginnings as short codes (upper-case, spaces removed); and something that says
where the store is (coordinates or at least one postcode beginning), since a
location audience needs one of them to find the customers near it.

Stores hold no personal data, so their changes are not written to the audit log.
"""

from __future__ import annotations

import math
import re
from typing import Any

from accounts.actor import Actor
from accounts.models import Role
from accounts.tenancy import scope_check
from core.exceptions import ApplicationError

from .models import Store

MAX_STORES = 1_000
MAX_PREFIXES = 200
MAX_PREFIX_LENGTH = 10
_PREFIX = re.compile(r"^[A-Z0-9-]+$")
FIELDS = ("name", "address", "latitude", "longitude", "postal_prefixes")


def _fail(field: str, message: str) -> ApplicationError:
    return ApplicationError(message, {"fields": {field: message}})


def _require(actor, organization) -> None:
    if actor is not None:
        Actor.of(actor, organization=organization).require(Role.MARKETER)


def name_clean(raw: Any) -> str:
    name = "" if raw is None else str(raw).strip()
    if not name:
        raise _fail("name", "Give the store a name.")
    if len(name) > 200:
        raise _fail("name", "The name must be at most 200 characters.")
    return name


def address_clean(raw: Any) -> str:
    address = "" if raw is None else str(raw).strip()
    if len(address) > 500:
        raise _fail("address", "The address must be at most 500 characters.")
    return address


def coordinate_clean(raw: Any, field: str) -> float | None:
    """A latitude (-90..90) or longitude (-180..180), or None when left blank."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    low, high = (-90.0, 90.0) if field == "latitude" else (-180.0, 180.0)
    if isinstance(raw, bool):
        raise _fail(field, f"The {field} must be a number between {low:g} and {high:g}.")
    try:
        value = float(str(raw).strip().replace(",", "."))
    except (TypeError, ValueError):
        raise _fail(field, f"The {field} must be a number between {low:g} and {high:g}.") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise _fail(field, f"The {field} must be between {low:g} and {high:g}.")
    return value


def prefix_normalise(raw: str | int) -> str:
    """'sw1a 1' -> 'SW1A1': how prefixes and customers' postcodes are compared."""
    return "".join(str(raw).split()).upper()


def postal_prefixes_clean(raw: Any) -> list[str]:
    """A list of short postcode beginnings, upper-case with spaces removed, no repeats.
    A text is read as values separated by commas or new lines (the site's form)."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        raw = raw.replace("\n", ",").split(",")
    if not isinstance(raw, list | tuple):
        raise _fail("postal_prefixes", "Postcode beginnings must be a list of short codes.")
    out: list[str] = []
    for item in raw:
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise _fail(
                "postal_prefixes", f"{str(item)[:20]!r} is not a postcode beginning (use text)."
            )
        value = prefix_normalise(item)
        if not value:
            continue
        if len(value) > MAX_PREFIX_LENGTH:
            raise _fail(
                "postal_prefixes",
                f"{value[:20]!r} is too long: a postcode beginning has at most "
                f"{MAX_PREFIX_LENGTH} characters.",
            )
        if not _PREFIX.match(value):
            raise _fail(
                "postal_prefixes",
                f"{value!r} is not a postcode beginning: use letters, digits and dashes.",
            )
        if value not in out:
            out.append(value)
    if len(out) > MAX_PREFIXES:
        raise _fail(
            "postal_prefixes", f"A store may have at most {MAX_PREFIXES} postcode beginnings."
        )
    return out


def _where_check(latitude: float | None, longitude: float | None, prefixes: list[str]) -> None:
    if (latitude is None) != (longitude is None):
        missing = "longitude" if longitude is None else "latitude"
        raise _fail(missing, "Give both the latitude and the longitude, or neither.")
    if latitude is None and not prefixes:
        message = (
            "Say where the store is: its latitude and longitude, or at least one postcode "
            "beginning it serves."
        )
        raise ApplicationError(
            message,
            {"fields": {"latitude": message, "postal_prefixes": message}},
        )


def store_create(
    *,
    organization,
    name: Any,
    address: Any = "",
    latitude: Any = None,
    longitude: Any = None,
    postal_prefixes: Any = None,
    actor=None,
    request=None,
) -> Store:
    scope_check(organization=organization)
    _require(actor, organization)
    name = name_clean(name)
    address = address_clean(address)
    lat = coordinate_clean(latitude, "latitude")
    lon = coordinate_clean(longitude, "longitude")
    prefixes = postal_prefixes_clean(postal_prefixes)
    _where_check(lat, lon, prefixes)
    if Store.objects.count() >= MAX_STORES:
        raise ApplicationError(f"An organisation may have at most {MAX_STORES:,} stores.")
    store = Store.objects.create(
        organization=organization,
        name=name,
        address=address,
        latitude=lat,
        longitude=lon,
        postal_prefixes=prefixes,
    )
    return store


def store_update(*, store: Store, actor=None, request=None, **changes: Any) -> Store:
    """Change the fields given (the others keep their values); the result is checked
    as a whole, so clearing the coordinates of a store without postcodes is refused."""
    unknown = set(changes) - set(FIELDS)
    if unknown:
        field = sorted(unknown)[0]
        raise _fail(field, f"A store has no field {field!r}.")
    _require(actor, store.organization)
    name = name_clean(changes["name"]) if "name" in changes else store.name
    address = address_clean(changes["address"]) if "address" in changes else store.address
    lat = (
        coordinate_clean(changes["latitude"], "latitude")
        if "latitude" in changes
        else store.latitude
    )
    lon = (
        coordinate_clean(changes["longitude"], "longitude")
        if "longitude" in changes
        else store.longitude
    )
    prefixes = (
        postal_prefixes_clean(changes["postal_prefixes"])
        if "postal_prefixes" in changes
        else list(store.postal_prefixes or [])
    )
    _where_check(lat, lon, prefixes)
    store.name, store.address = name, address
    store.latitude, store.longitude, store.postal_prefixes = lat, lon, prefixes
    store.save()
    return store


def store_delete(*, store: Store, actor=None, request=None) -> None:
    _require(actor, store.organization)
    store.delete()
