"""Every page fits the screen, on a phone (390×844) and on a laptop (1366×900).

Pages are found from the URL resolver (as the tenant isolation sweep finds them),
so a new page is checked without being listed here. The shop is the demo shop
(its real orders, segments, personas and predictions) plus one of every other
object, so pages that take an id have something to show. A page fails if it is
wider than the window, or if a card (or a chart, a stat, the menu…) is wider
than its box: text cut off, a table spilling out; and a chart fails if it shows
plotly's toolbar or has no accessible name. Elements that scroll on
purpose (wide tables inside `overflow-x: auto`) may scroll inside their card.

Screenshots of every page at both widths go to var/shots/ (git-ignored), to look at.
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

import pytest
from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import get_resolver, reverse

from accounts.models import Organization, User
from accounts.tenancy import TenantModel, tenant_context, unscoped_context
from tests.test_tenant_isolation import TOKEN_ROUTES, WORLD_MODULES, _id_params, _walk

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = {"phone": (390, 844), "laptop": (1366, 900)}
SHOTS = Path(os.environ.get("SEGMENTA_SHOTS_DIR", settings.BASE_DIR / "var" / "shots"))
# Not pages of the site: the back office (Django's own), the API (JSON; its docs
# page is Swagger UI's), the health check.
SKIP_PREFIXES = ("/admin/", "/api/", "/healthz")

# Boxes that must hold their content. An element that scrolls on purpose
# (overflow-x: auto or scroll) is allowed to; the menu never may.
OVERFLOW_JS = """
() => {
  const problems = [];
  const doc = document.documentElement;
  if (doc.scrollWidth > window.innerWidth) {
    problems.push(`the page is ${doc.scrollWidth}px wide in a ${window.innerWidth}px window`);
  }
  const describe = (el) => {
    const text = (el.innerText || "").trim().replace(/\\s+/g, " ").slice(0, 60);
    const cls = el.className && typeof el.className === "string" ? "." + el.className.trim().split(/\\s+/).join(".") : "";
    return `${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}${cls} "${text}"`;
  };
  const boxes = "main, .card, .cards > *, .stat, .chart, .job-progress, .empty-state, .msg, "
    + ".fieldset, .page-head, .tabs, .toolbar, .facts, figure, section, .persona, .table-wrap";
  for (const el of document.querySelectorAll(boxes)) {
    if (el.closest(".js-plotly-plot") && !el.classList.contains("chart")) continue;
    const over = el.scrollWidth - el.clientWidth;
    if (over <= 1 || el.clientWidth === 0) continue;
    const style = getComputedStyle(el);
    if ((style.overflowX === "auto" || style.overflowX === "scroll") && el.matches(".table-wrap, .scroll-x")) continue;
    problems.push(`${describe(el)} overflows its box by ${over}px`);
  }
  for (const nav of document.querySelectorAll("nav, nav ul")) {
    if (nav.scrollWidth - nav.clientWidth > 1) {
      problems.push(`the menu is cut off: ${nav.scrollWidth}px of items in ${nav.clientWidth}px`);
    }
  }
  // Text cut off by a box that hides what does not fit.
  for (const el of document.querySelectorAll("main *")) {
    // (a form field scrolls its own text, as every browser's fields do)
    if (el.matches("input, textarea, select")) continue;
    if (el.closest(".js-plotly-plot, .visually-hidden, .progress")) continue;
    const style = getComputedStyle(el);
    if (style.overflowX !== "hidden" && style.overflowX !== "clip") continue;
    if (el.scrollWidth - el.clientWidth > 1 && el.clientWidth > 0) {
      problems.push(`${describe(el)} hides ${el.scrollWidth - el.clientWidth}px of its content`);
    }
  }
  // Text squeezed into a sliver: words broken letter by letter down a narrow column
  // (more lines than words).
  for (const el of document.querySelectorAll("main dd, main dt, main td, main th, main li")) {
    const text = (el.innerText || "").trim();
    const rect = el.getBoundingClientRect();
    if (!text || rect.width === 0) continue;
    const range = document.createRange();
    range.selectNodeContents(el);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    const words = text.split(/\s+/).length;
    if (lines > words + 1) {
      problems.push(`${describe(el)} is squeezed into ${Math.round(rect.width)}px: ${words} words on ${lines} lines`);
    }
  }
  // Charts: a picture with a name and no toolbar (its cloud buttons would offer the
  // customer data to Plotly; its buttons were ten tab stops per chart).
  for (const chart of document.querySelectorAll(".js-plotly-plot")) {
    const name = `chart #${chart.id}`;
    if (chart.getAttribute("role") !== "img") problems.push(`${name} has no role="img"`);
    if (!(chart.getAttribute("aria-label") || "").trim()) problems.push(`${name} has no aria-label`);
    if (chart.querySelector(".modebar, .modebar-btn")) problems.push(`${name} shows plotly's toolbar`);
    if (chart.querySelector('[data-title*="Chart Studio"], [data-title*="cloud"], [data-title^="Share"]')) {
      problems.push(`${name} offers to send the chart to Plotly's cloud`);
    }
    for (const el of chart.querySelectorAll("a[href], button, input, [tabindex]")) {
      if (el.tabIndex >= 0) { problems.push(`${name} has a tab stop: ${el.outerHTML.slice(0, 80)}`); break; }
    }
  }
  return problems;
}
"""


def _add_one_of_everything(org) -> None:
    """The isolation sweep's objects (imports, jobs, exports…) beside the demo's
    own; a builder whose objects the demo already has (its segmentation run) is
    left out."""
    for name in WORLD_MODULES:
        try:
            builder = getattr(importlib.import_module(name), "build_world", None)
        except ModuleNotFoundError:
            continue
        if builder is None:
            continue
        try:
            with transaction.atomic():
                builder(org)
        except IntegrityError:
            pass
    # an owner's rule segment, so its edit page is visited too
    from segmentation.models import Segment, SegmentKind

    with tenant_context(org):
        Segment.objects.get_or_create(
            kind=SegmentKind.RULE,
            key="rule-layout",
            defaults={
                "name": "Customers who bought at least twice in the last year from the shop",
                "rule": {
                    "op": "and",
                    "conditions": [{"field": "orders_count", "operator": "gte", "value": 2}],
                },
                "size": 1,
            },
        )


def _pages(client: Client, org) -> dict[str, str]:
    """name → path of every site page the owner can open (GET answers an HTML 200)."""
    with unscoped_context():
        # the first and the last few of every kind of object (the world's extras
        # come last)
        candidates: set[int] = set()
        for model in apps.get_models():
            if issubclass(model, TenantModel):
                pks = model._default_manager.filter(organization=org).values_list("pk", flat=True)
                candidates.update(pks.order_by("pk")[:3])
                candidates.update(pks.order_by("-pk")[:3])
    pages: dict[str, str] = {}
    for namespace, pattern in _walk(get_resolver().url_patterns):
        if (namespace or "").startswith("admin") or not pattern.name:
            continue
        name = f"{namespace}:{pattern.name}" if namespace else pattern.name
        ids, others = _id_params(pattern)
        if others or name in TOKEN_ROUTES:
            continue
        if ids:
            tries = [reverse(name, kwargs=dict.fromkeys(ids, pk)) for pk in sorted(candidates)]
        else:
            tries = [reverse(name)]
        for path in tries:
            if path.startswith(SKIP_PREFIXES):
                break
            response = client.get(path)
            if response.status_code == 200 and response["Content-Type"].startswith("text/html"):
                pages[name] = path
                break
    return pages


def _check(page, site: str, pages: dict[str, str], width_name: str) -> list[str]:
    failures = []
    for name, path in sorted(pages.items()):
        page.goto(site + path, wait_until="load")
        problems = page.evaluate(OVERFLOW_JS)
        shot = SHOTS / f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{width_name}.png"
        # the top of long pages (a customer with many orders runs to metres)
        height = min(page.evaluate("document.documentElement.scrollHeight"), 4000)
        page.screenshot(
            path=str(shot),
            full_page=True,
            clip={"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height},
        )
        failures += [f"{path} at {width_name} width: {p}" for p in problems]
    return failures


def test_every_page_fits_phone_and_laptop_screens(site, new_context):
    call_command("seed_demo", "--sync", stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    org = Organization.objects.get(slug="demo")
    _add_one_of_everything(org)
    owner = User.objects.get(email="demo@segmenta.local")
    client = Client()
    client.force_login(owner)
    pages = _pages(client, org)
    # the sweep must reach the pages owners complained about, or it proves nothing
    for must in (
        "core:dashboard",
        "customers:detail",
        "customers:product",
        "segmentation:personas",
    ):
        assert must in pages, f"{must} was not visited; found {sorted(pages)}"
    anonymous = {
        "accounts:login": reverse("accounts:login"),
        "accounts:signup": reverse("accounts:signup"),
    }

    SHOTS.mkdir(parents=True, exist_ok=True)
    session = client.cookies[settings.SESSION_COOKIE_NAME].value
    failures = []
    for width_name, (width, height) in WIDTHS.items():
        context = new_context()
        page = context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.set_default_timeout(20_000)
        failures += _check(page, site, anonymous, width_name)
        context.add_cookies([{"name": settings.SESSION_COOKIE_NAME, "value": session, "url": site}])
        failures += _check(page, site, pages, width_name)
        context.close()
    assert not failures, f"{len(failures)} layout problems:\n" + "\n".join(failures)
