"""Figures the pages keep (core/kept.py): a big organisation is shown the figure it
had while one background refresh works out the new one; a small one works it out
in the request; a refresh that fails leaves the earlier figure in place."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core.cache import cache

import core.tasks
from accounts.tenancy import require_organization_id, tenant_context
from core import kept
from customers.tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db

# a figure and a refresh a task may call by name, for these tests only
FIGURES: dict[int, int] = {}
REFRESH = "core.tests.test_kept:_refresh"


@kept.kept_callable
def _refresh(*, organization, version: str, fail: bool = False) -> None:
    if fail:
        raise RuntimeError("the figure could not be worked out")
    kept.kept_store(name="figure", version=version, value=FIGURES[organization.pk])


def _unmarked(*, organization) -> None:
    raise AssertionError("never called")


@pytest.fixture(autouse=True)
def _empty_cache():
    """Nothing kept from another test (organisation ids repeat across runs)."""
    cache.clear()


@pytest.fixture
def big(settings, org, other_org):
    """Both organisations count as big: more than two customers."""
    settings.KEPT_FIGURES_BACKGROUND_ABOVE = 2
    for organization in (org, other_org):
        with tenant_context(organization):
            CustomerFactory.create_batch(3)
    return org


@pytest.fixture
def queued():
    """The refresh tasks sent (not run)."""
    with mock.patch.object(core.tasks.kept_refresh, "apply_async") as sent:
        yield sent


def _get(version: str, *, params=None, first="inline", compute=None):
    return kept.kept_get(
        name="figure",
        version=version,
        compute=compute or (lambda: FIGURES[require_organization_id()]),
        max_age=600,
        refresh=REFRESH,
        params={"version": version, **(params or {})},
        first=first,
    )


def _run(sent) -> None:
    """Run the refresh `sent` was asked to queue, as a worker would."""
    core.tasks.kept_refresh.apply(kwargs=sent.call_args.kwargs["kwargs"])


def test_a_big_organisation_sees_the_earlier_figure_while_one_refresh_is_queued(big, queued):
    FIGURES[big.pk] = 1
    with tenant_context(big):
        assert _get("v1").value == 1  # none yet: worked out once (first="inline")
        FIGURES[big.pk] = 2
        answers = [_get("v2") for _ in range(5)]
    assert {(a.value, a.state) for a in answers} == {(1, kept.UPDATING)}
    assert queued.call_count == 1  # a burst of views, one refresh
    sent = queued.call_args.kwargs
    assert sent["queue"] == "interactive"
    assert sent["kwargs"]["organization_id"] == big.pk
    # the figure was worked out a moment ago: the refresh waits out the minute
    assert 0 < sent["countdown"] <= kept.REFRESH_MIN_INTERVAL

    _run(queued)
    with tenant_context(big):
        now = _get("v2")
    assert (now.value, now.state) == (2, kept.CURRENT)


def test_a_small_organisation_works_the_figure_out_in_the_request(org, queued, settings):
    settings.KEPT_FIGURES_BACKGROUND_ABOVE = 2
    FIGURES[org.pk] = 1
    with tenant_context(org):
        assert _get("v1").value == 1
        FIGURES[org.pk] = 2
        now = _get("v2")
    assert (now.value, now.state) == (2, kept.CURRENT)
    assert not queued.called


def test_with_nothing_earlier_a_page_may_say_it_is_working(big, queued):
    FIGURES[big.pk] = 1
    with tenant_context(big):
        answer = _get("v1", first="later")
    assert (answer.value, answer.state) == (None, kept.WORKING)
    assert queued.call_count == 1
    _run(queued)
    with tenant_context(big):
        assert _get("v1", first="later").value == 1


def test_a_failing_refresh_keeps_the_earlier_figure(big, caplog):
    """The worker runs in the request here (CELERY_TASK_ALWAYS_EAGER), and fails."""
    FIGURES[big.pk] = 1
    with tenant_context(big):
        assert _get("v1").value == 1
        FIGURES[big.pk] = 2
        answer = _get("v2", params={"fail": True})
        assert (answer.value, answer.state) == (1, kept.UPDATING)
        assert "kept.refresh_failed" in caplog.text
        # the next try waits a little: the page does not queue one per view
        with mock.patch.object(core.tasks.kept_refresh, "apply_async") as sent:
            assert _get("v2").value == 1
        assert not sent.called


def test_each_organisation_keeps_its_own(big, other_org, queued):
    FIGURES[big.pk], FIGURES[other_org.pk] = 1, 9
    with tenant_context(big):
        assert _get("v1").value == 1
    with tenant_context(other_org):
        # same name and version, nothing of its own yet: never the other's figure
        assert _get("v1", first="later").state == kept.WORKING
        assert kept.kept_entry("figure") is None
    _run(queued)
    with tenant_context(other_org):
        assert _get("v1").value == 9
    with tenant_context(big):
        assert _get("v1").value == 1
    # the refresh ran in the organisation it was queued for
    assert queued.call_args.kwargs["kwargs"]["organization_id"] == other_org.pk


def test_only_marked_functions_are_called_by_name():
    assert kept.kept_resolve(REFRESH) is _refresh
    for path in (
        "core.tests.test_kept:_unmarked",
        "os:system",
        "core.tests.test_kept",
        "core.tests.test_kept:missing",
    ):
        with pytest.raises(ValueError):
            kept.kept_resolve(path)


def test_a_refresh_naming_an_unmarked_function_fails_quietly(big, caplog):
    with tenant_context(big):
        assert not kept.kept_refresh_run(
            name="figure", refresh="core.tests.test_kept:_unmarked", params={}
        )
    assert "kept.refresh_failed" in caplog.text


def test_the_lock_names_the_organisation(big, other_org, queued):
    FIGURES[big.pk] = FIGURES[other_org.pk] = 1
    for organization in (big, other_org):
        with tenant_context(organization):
            _get("v1", first="later")
    # one refresh each: one organisation's lock never holds back another's
    assert queued.call_count == 2
    assert cache.get(f"kept:refreshing:figure:org_{big.pk}")
    assert cache.get(f"kept:refreshing:figure:org_{other_org.pk}")


def test_a_figure_only_older_than_allowed_is_refreshed_but_shown_as_current(big, queued):
    """Its data unchanged (same version), a figure past `max_age` is refreshed in the
    background all the same, but not shown as "updating" to the owner."""
    FIGURES[big.pk] = 1
    with tenant_context(big):
        assert _get("v1").value == 1
        with mock.patch.object(kept.time, "time", return_value=kept.time.time() + 601):
            found = _get("v1")
        assert found.value == 1 and found.state == kept.CURRENT
        assert queued.call_count == 1
