"""Capabilities: how an app plugs into Segmenta, declared in one place.

A capability (segments, predictions, and the ones that come next) declares
everything the rest of the application needs to find it in one `Capability`,
registered from its app's `AppConfig.ready()`:

    class PredictionsConfig(AppConfig):
        name = "predictions"

        def ready(self):
            from core.capabilities import Capability, NavEntry, Panel, Step, register_capability

            register_capability(
                Capability(
                    name="predictions",
                    steps=(Step("predictions", "predictions.tasks.predictions_run", 30, "Predictions"),),
                    rule_fields="predictions.services:rule_fields",
                    customer_panels=(Panel("predictions", "predictions.selectors:customer_panel"),),
                    nav=(NavEntry("segmentation:predictions", "Predictions", 50),),
                    site_urls="predictions.urls",
                    site_prefix="segments/",
                    site_namespace="segmentation",
                    api_urls="predictions.api.urls",
                    world="predictions.tests.factories",
                )
            )

Who discovers what (nothing else lists capabilities):
- the pipeline (`core.pipeline`): `steps`, each also registered as a job kind
  (role "marketer", cancellable) unless the app registers the kind itself;
- rule fields (`segmentation.services.rules.rule_fields`): `rule_fields`, a callable
  returning `RuleField`s;
- the customer page, the customers API and list, and erasure
  (`customers.registry`): `customer_panels`, `customer_enrichers`,
  `customer_filters`, `erasure_handlers`; the product page: `product_panels`;
- the segment page (`segmentation.views_segments.segment_detail`): `segment_panels`,
  each `func(*, request, segment)`; the dashboard (`core.views.dashboard`):
  `dashboard_panels`, each `func(*, request)`; persona cards (`segmentation.views_segments`):
  `persona_notes`, each `func(segment_ids) -> {segment id: [{"term", "text", "url"}]}`;
- the navigation (`accounts.context_processors.tenant`): `nav`;
- the site and API routers (`config/urls.py`): `site_urls` mounted at
  `site_prefix` in namespace `site_namespace` (capabilities sharing a prefix and
  namespace are joined into one include, in registration order) and `api_urls`
  under /api/v1/;
- the tenant isolation sweep (tests/test_tenant_isolation.py): `world`, a module
  whose `build_world(organization)` makes one of each of the capability's tenant
  objects.

Callables are given as "module:attribute" strings and imported on first use, so
declaring a capability imports nothing and no app imports another's internals.
Registering a capability again under the same name replaces it (module reloads in
tests and the dev server are harmless).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class Step:
    """A pipeline step: a Celery task on core.jobs.TenantTask taking as_of="YYYY-MM-DD"|None."""

    name: str
    task: str  # the Celery task's registered name
    order: int
    title: str


@dataclass(frozen=True)
class Panel:
    """A place on the customer, product or segment page. `func(*, request,
    customer|product|segment)`
    returns {"template": ..., "context": {...}} or None for the place's empty text;
    the page draws the card and its heading (`title`), the template only the body."""

    slot: str
    func: str  # "module:attribute"
    title: str = ""
    order: int = 100


@dataclass(frozen=True)
class CustomerFilter:
    """Narrows the customer list (site and API) by query parameter `param`."""

    param: str
    func: str  # "module:attribute": func(queryset, value) -> queryset
    label: str = ""


@dataclass(frozen=True)
class NavEntry:
    url_name: str
    label: str
    order: int = 100


@dataclass(frozen=True)
class Capability:
    name: str
    steps: tuple[Step, ...] = ()
    rule_fields: str = ""  # "module:attribute": () -> Iterable[RuleField]
    customer_panels: tuple[Panel, ...] = ()
    product_panels: tuple[Panel, ...] = ()
    segment_panels: tuple[Panel, ...] = ()
    dashboard_panels: tuple[Panel, ...] = ()  # func(*, request)
    # extra lines on persona cards: (segment_ids) -> {segment_id: [{"term", "text", "url"}]}
    persona_notes: tuple[str, ...] = ()
    customer_enrichers: tuple[str, ...] = ()  # (customer_ids) -> {id: {...}}
    customer_filters: tuple[CustomerFilter, ...] = ()
    erasure_handlers: tuple[str, ...] = ()  # (*, organization, customer_ids) -> None
    # what the capability holds on people, for the exports: (*, customer) -> {key: data}
    # merged into one person's JSON; () -> [(file name, headers, rows)] added to the
    # organisation's zip
    person_exports: tuple[str, ...] = ()
    org_exports: tuple[str, ...] = ()
    nav: tuple[NavEntry, ...] = ()
    site_urls: str = ""  # a module with `urlpatterns`
    site_prefix: str = ""
    site_namespace: str = ""
    api_urls: str = ""  # a module with `urlpatterns`, mounted under /api/v1/
    world: str = ""  # a module with build_world(organization), for the isolation sweep


_CAPABILITIES: dict[str, Capability] = {}


def register_capability(capability: Capability) -> Capability:
    """Register (or replace) a capability. Call from the app's `AppConfig.ready()`."""
    from core.jobs import job_kind_registered, register_job_kind

    for step in capability.steps:
        # Each step runs as a job of its own kind: any member who may edit starts
        # (and re-runs) it, as the site's and the API's run buttons allow. A kind the
        # app registered itself (another role, not cancellable) is kept as it is.
        # Steps are heavy: they count against the organisation's heavy-jobs limit.
        if not job_kind_registered(step.name):
            register_job_kind(name=step.name, task=step.task, role="marketer", heavy=True)
    _CAPABILITIES[capability.name] = capability
    return capability


def capabilities() -> list[Capability]:
    """Every registered capability, in registration order (INSTALLED_APPS order)."""
    return list(_CAPABILITIES.values())


@cache
def resolve(ref: str) -> Any:
    """The object a "module:attribute" reference names."""
    module, _, attribute = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split(".") if attribute else ():
        target = getattr(target, part)
    return target


def steps() -> list[Step]:
    found = {s.name: s for c in capabilities() for s in c.steps}
    return sorted(found.values(), key=lambda s: s.order)


def nav_entries() -> list[NavEntry]:
    return sorted((e for c in capabilities() for e in c.nav), key=lambda e: e.order)


def world_modules() -> list[str]:
    return [c.world for c in capabilities() if c.world]


def site_urlpatterns() -> list:
    """One include per (prefix, namespace), capabilities that share one joined in order."""
    from django.urls import include, path

    mounts: dict[tuple[str, str], list] = {}
    for capability in capabilities():
        if capability.site_urls:
            key = (capability.site_prefix, capability.site_namespace)
            mounts.setdefault(key, []).extend(resolve(capability.site_urls).urlpatterns)
    return [
        path(prefix, include((patterns, namespace) if namespace else patterns))
        for (prefix, namespace), patterns in mounts.items()
    ]


def api_urlpatterns() -> list:
    from django.urls import include, path

    return [path("", include(c.api_urls)) for c in capabilities() if c.api_urls]


def call_all(refs: tuple[str, ...] | list[str]) -> list[Callable[..., Any]]:
    return [resolve(ref) for ref in refs]


def panel_contents(declared, **kwargs: Any) -> list[dict[str, Any]]:
    """The panels of a page place (segment, dashboard) in order, each `func(**kwargs)`
    answering {"template", "context"} or None (then it is not drawn): a list of
    {"slot", "title", "template", "context"} for the page to draw."""
    panels = []
    for panel in sorted(declared, key=lambda p: p.order):
        content = resolve(panel.func)(**kwargs)
        if content:
            panels.append(
                {
                    "slot": panel.slot,
                    "title": panel.title or panel.slot.replace("_", " ").capitalize(),
                    "template": content["template"],
                    "context": content.get("context", {}),
                }
            )
    return panels
