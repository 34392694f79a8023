"""A big organisation's dashboard never works its figures out in the request (issue 15):
after a data change it shows the figures it had, says how fresh they are, and one
background refresh works out the new ones. A small one works them out as before."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from unittest import mock

import pytest
from django.core.cache import cache

import core.tasks
import customers.selectors
from accounts.tenancy import tenant_context
from core import kept
from core.views import FIGURES_POLL_MAX_SECONDS
from customers.selectors import dashboard_summary

from .factories import CustomerFactory, OrderFactory

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def big(settings, org):
    """`org` counts as big (more than two customers), with one paid order of 10."""
    settings.KEPT_FIGURES_BACKGROUND_ABOVE = 2
    with tenant_context(org):
        customers = CustomerFactory.create_batch(3)
        OrderFactory(customer=customers[0], total=Decimal("10.00"), status="paid")
    return org


@pytest.fixture
def queued():
    """Refreshes sent to the queue (not run)."""
    with mock.patch.object(core.tasks.kept_refresh, "apply_async") as sent:
        yield sent


def _summary(org) -> dict:
    with tenant_context(org):
        return dashboard_summary(organization=org)


def _order(org, total: str) -> None:
    with tenant_context(org):
        OrderFactory(
            customer=CustomerFactory(), total=Decimal(total), status="paid"
        )  # a sync: the data version moves


def _run(sent) -> None:
    """The queued refresh, run by a worker."""
    core.tasks.kept_refresh.apply(kwargs=sent.call_args.kwargs["kwargs"])


def _prime(org, sent) -> dict:
    """The first view (figures being worked out), then the worker working them out."""
    assert _summary(org)["figures_state"] == "working"
    _run(sent)
    sent.reset_mock()
    return _summary(org)


def _as_of(org) -> str:
    """When the figures were worked out, as the page says it (the organisation's zone)."""
    with tenant_context(org):
        at = kept.kept_at(customers.selectors.DASHBOARD_KEPT)
    return at.astimezone(zoneinfo.ZoneInfo(org.time_zone)).strftime("%H:%M")


def test_after_a_change_the_earlier_figures_are_shown_and_one_refresh_is_queued(big, queued):
    first = _prime(big, queued)
    assert (first["orders_count"], first["figures_state"]) == (1, "current")

    _order(big, "5.00")
    with mock.patch.object(customers.selectors, "_dashboard_figures") as worked_out:
        views = [_summary(big) for _ in range(4)]
    assert not worked_out.called  # not in the request
    assert [v["orders_count"] for v in views] == [1, 1, 1, 1]
    assert {v["figures_state"] for v in views} == {"updating"}
    assert views[0]["figures_as_of"] == first["figures_as_of"]
    assert queued.call_count == 1
    assert queued.call_args.kwargs["queue"] == "interactive"
    assert queued.call_args.kwargs["kwargs"]["organization_id"] == big.pk

    _run(queued)
    now = _summary(big)
    assert (now["orders_count"], now["revenue"], now["figures_state"]) == (
        2,
        Decimal("15.00"),
        "current",
    )


def test_a_small_organisation_still_works_them_out_exactly(org, queued, settings):
    settings.KEPT_FIGURES_BACKGROUND_ABOVE = 20
    with tenant_context(org):
        OrderFactory(customer=CustomerFactory(), total=Decimal("10.00"), status="paid")
    assert _summary(org)["orders_count"] == 1
    _order(org, "5.00")
    now = _summary(org)
    assert (now["orders_count"], now["figures_state"]) == (2, "current")
    assert not queued.called


def test_the_first_view_says_the_figures_are_being_worked_out(big, queued, owner_client):
    assert _summary(big)["figures_state"] == "working"
    html = owner_client.get("/").content.decode()
    assert "Working out your figures" in html
    assert 'role="status"' in html
    assert "Welcome to Segmenta" not in html  # not the empty shop's invitation to import
    assert queued.call_count == 1


def test_an_empty_shops_figures_are_not_shown_to_one_with_data(settings, org, queued):
    settings.KEPT_FIGURES_BACKGROUND_ABOVE = 2
    assert _summary(org)["has_data"] is False  # small then: worked out in the request
    with tenant_context(org):
        CustomerFactory.create_batch(3)
    cache.delete(f"kept:big:2:org_{org.pk}")  # the size is looked at once an hour
    assert _summary(org)["figures_state"] == "working"


def test_the_dashboard_says_how_fresh_its_figures_are(big, queued, owner_client):
    big.time_zone = "Pacific/Auckland"
    big.save()
    _prime(big, queued)
    assert "Figures as of" not in owner_client.get("/").content.decode()  # current
    _order(big, "5.00")
    html = owner_client.get("/").content.decode()
    assert "Figures as of <time" in html
    assert f">{_as_of(big)}</time></strong>" in html  # the owner's time of day
    assert "— updating." in html
    assert 'role="status"' in html
    assert "every 5s" in html  # asks whether newer figures are ready


def test_the_note_asks_until_newer_figures_are_ready(big, queued, owner_client):
    _prime(big, queued)
    _order(big, "5.00")
    owner_client.get("/")
    with tenant_context(big):
        shown = int(kept.kept_at(customers.selectors.DASHBOARD_KEPT).timestamp() * 1000)
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    poll = f"/?figures_shown={shown}&asked_from={now}"
    assert owner_client.get(poll, **HTMX).status_code == 204  # not yet: nothing changes

    _run(queued)
    ready = owner_client.get(poll, **HTMX)
    assert ready.status_code == 286  # htmx stops asking
    assert "newer figures are ready" in ready.content.decode()

    # asked for long enough: it stops, and says what to do
    long_ago = now - (FIGURES_POLL_MAX_SECONDS + 1) * 1000
    _order(big, "1.00")
    with tenant_context(big):
        shown = int(kept.kept_at(customers.selectors.DASHBOARD_KEPT).timestamp() * 1000)
    slow = owner_client.get(f"/?figures_shown={shown}&asked_from={long_ago}", **HTMX)
    assert slow.status_code == 286
    assert "still updating" in slow.content.decode()


def test_once_the_first_figures_are_ready_the_page_reloads(big, queued, owner_client):
    owner_client.get("/")
    now = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    poll = f"/?figures_shown=0&asked_from={now}"
    assert owner_client.get(poll, **HTMX).status_code == 204
    _run(queued)
    ready = owner_client.get(poll, **HTMX)
    assert ready.headers["HX-Refresh"] == "true"


def test_another_organisation_never_sees_these_figures(big, other_org, queued, client, make_member):
    from accounts.models import Role

    _prime(big, queued)
    with tenant_context(other_org):
        CustomerFactory.create_batch(3)
        OrderFactory(customer=CustomerFactory(), total=Decimal("99.00"), status="paid")
    theirs = _summary(other_org)
    assert theirs["figures_state"] == "working"  # nothing of theirs yet: never big's
    assert "orders_count" not in theirs
    client.force_login(make_member(other_org, Role.OWNER, "owner@rival.test"))
    html = client.get("/").content.decode()
    assert "Working out your figures" in html and "Figures as of" not in html
    _run(queued)
    assert _summary(other_org)["revenue"] == Decimal("99.00")
    assert _summary(big)["revenue"] == Decimal("10.00")


def test_nothing_about_a_person_is_kept(big):
    """The kept figures are counts, sums and months: no customer's name or email."""
    with tenant_context(big):
        CustomerFactory(email="ada@example.test", first_name="Ada", last_name="Lovelace")
    _summary(big)  # worked out by the (in-process) worker
    with tenant_context(big):
        entry = kept.kept_entry(customers.selectors.DASHBOARD_KEPT)
    kept_text = repr(entry)
    for personal in ("ada@example.test", "Ada", "Lovelace"):
        assert personal not in kept_text
