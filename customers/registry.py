"""Extension points other apps fill in, so customer pages and the API show their
results without this app importing theirs.

Capabilities declare these in their `core.capabilities.Capability`
(`customer_panels`, `product_panels`, `customer_enrichers`, `customer_filters`,
`erasure_handlers`); the getters below return those first. The `register_*`
functions remain for tests and for code not yet declared as a capability:

- `register_customer_enricher(func)`: `func(customer_ids: list[int]) -> dict[int, dict]`
  returns, per customer id, any of the keys `segment` (`{"id", "name"}` or None),
  `segments` (list) and `predictions` (dict or None). The API's customer
  representation merges them (`customers.selectors.customer_segment_info`).
- `register_customer_panel(slot, func, title=...)`: `func(*, request, customer) ->
  dict | None` returns `{"template": "app/_panel.html", "context": {...}}` for one of
  the customer page's reserved places (`segment`, `predictions`,
  `recommendations`) or a new one; None shows the place's empty text.
- `register_customer_filter(param, func, label=...)`: `func(queryset, value) ->
  queryset` narrows the customer list (site and API) by a query parameter such as
  `segment`.
- `register_erasure_handler(func)`: `func(*, organization, customer_ids: list[int])`
  removes what another app holds on erased people (memberships, predictions).

Each registration replaces an earlier one with the same name (module reloads in
tests and the dev server are harmless).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Enricher = Callable[[list[int]], dict[int, dict]]


@dataclass(frozen=True)
class Panel:
    slot: str
    title: str
    func: Callable[..., dict | None]
    order: int
    empty_text: str


@dataclass(frozen=True)
class CustomerFilter:
    param: str
    label: str
    func: Callable[[Any, str], Any]


_enrichers: dict[str, Enricher] = {}
_panels: dict[str, Panel] = {}
_filters: dict[str, CustomerFilter] = {}
_erasure_handlers: dict[str, Callable[..., None]] = {}

# The customer page's reserved places, shown with their empty text until filled.
RESERVED_PANELS = {
    "segment": ("Segment", 10, "Segments appear here after the first segmentation run."),
    "predictions": (
        "Predictions",
        20,
        "Lifetime value and churn risk appear here after the first prediction run.",
    ),
    "recommendations": (
        "Recommended products",
        30,
        "Recommended products appear here after the first recommendations run.",
    ),
}


def _name(func) -> str:
    return f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"


def register_customer_enricher(func: Enricher) -> Enricher:
    _enrichers[_name(func)] = func
    return func


def _declared():
    from core.capabilities import capabilities, resolve

    return capabilities(), resolve


def customer_enrichers() -> list[Enricher]:
    caps, resolve = _declared()
    found = {_name(f): f for f in (resolve(r) for c in caps for r in c.customer_enrichers)}
    found.update(_enrichers)
    return list(found.values())


def register_customer_panel(
    slot: str, func: Callable[..., dict | None], *, title: str = "", order: int = 100
) -> None:
    reserved = RESERVED_PANELS.get(slot)
    _panels[slot] = Panel(
        slot=slot,
        title=title or (reserved[0] if reserved else slot.replace("_", " ").capitalize()),
        func=func,
        order=reserved[1] if reserved and order == 100 else order,
        empty_text=reserved[2] if reserved else "",
    )


def customer_panels() -> list[Panel]:
    slots = {
        slot: Panel(slot=slot, title=t, func=lambda **kw: None, order=o, empty_text=e)
        for slot, (t, o, e) in RESERVED_PANELS.items()
    }
    caps, resolve = _declared()
    for capability in caps:
        for declared in capability.customer_panels:
            reserved = RESERVED_PANELS.get(declared.slot)
            slots[declared.slot] = Panel(
                slot=declared.slot,
                title=declared.title
                or (reserved[0] if reserved else declared.slot.replace("_", " ").capitalize()),
                func=resolve(declared.func),
                order=reserved[1] if reserved and declared.order == 100 else declared.order,
                empty_text=reserved[2] if reserved else "",
            )
    slots.update(_panels)
    return sorted(slots.values(), key=lambda p: p.order)


def product_panels() -> list[Panel]:
    """The product page's places, as capabilities declare them (no reserved ones)."""
    caps, resolve = _declared()
    panels = [
        Panel(
            slot=declared.slot,
            title=declared.title or declared.slot.replace("_", " ").capitalize(),
            func=resolve(declared.func),
            order=declared.order,
            empty_text="",
        )
        for capability in caps
        for declared in capability.product_panels
    ]
    return sorted(panels, key=lambda p: p.order)


def register_customer_filter(
    param: str, func: Callable[[Any, str], Any], *, label: str = ""
) -> None:
    _filters[param] = CustomerFilter(param=param, label=label or param.capitalize(), func=func)


def customer_filters() -> list[CustomerFilter]:
    caps, resolve = _declared()
    found = {
        f.param: CustomerFilter(
            param=f.param, label=f.label or f.param.capitalize(), func=resolve(f.func)
        )
        for c in caps
        for f in c.customer_filters
    }
    found.update(_filters)
    return list(found.values())


def person_exporters() -> list[Callable[..., dict]]:
    """Capabilities' `person_exports`: `func(*, customer) -> {key: data}`."""
    caps, resolve = _declared()
    return [resolve(r) for c in caps for r in c.person_exports]


def org_exporters() -> list[Callable[[], list]]:
    """Capabilities' `org_exports`: `func() -> [(file name, headers, rows)]`."""
    caps, resolve = _declared()
    return [resolve(r) for c in caps for r in c.org_exports]


def register_erasure_handler(func: Callable[..., None]) -> None:
    _erasure_handlers[_name(func)] = func


def erasure_handlers() -> list[Callable[..., None]]:
    caps, resolve = _declared()
    found = {_name(f): f for f in (resolve(r) for c in caps for r in c.erasure_handlers)}
    found.update(_erasure_handlers)
    return list(found.values())
