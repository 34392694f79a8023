"""Webhooks of a suspended organisation (issue 17): deliveries are held, not
attempted and no attempt is used up; its reactivation sends them, once."""

from __future__ import annotations

import pytest

from accounts.models import Organization
from accounts.suspension import organization_reactivate
from accounts.tenancy import tenant_context
from webhooks import services
from webhooks.events import emit
from webhooks.models import DeliveryStatus, WebhookDelivery
from webhooks.tests import test_webhooks as hooks

_register = hooks._register
receiver = hooks.receiver  # the local HTTP receiver fixture

pytestmark = pytest.mark.django_db


def _suspend(org) -> None:
    Organization.objects.filter(pk=org.pk).update(status="suspended")


def _reactivate(org) -> None:
    """What accounts.suspension.organization_reactivate does to the row: a save."""
    org.refresh_from_db()
    org.status = "active"
    org.save(update_fields=["status"])


def _delivery(org, endpoint_id) -> WebhookDelivery:
    with tenant_context(org):
        return WebhookDelivery.objects.get(endpoint_id=endpoint_id)


def test_deliveries_wait_while_suspended_and_go_on_reactivation(
    api, org, receiver, django_capture_on_commit_callbacks
):
    hook = receiver()
    created = _register(api, hook.url)
    _suspend(org)
    with django_capture_on_commit_callbacks(execute=True):
        assert emit(org, "import.finished", {"import_id": 1, "job_id": 2}) == 1
    assert hook.received == []  # not attempted
    held = _delivery(org, created["id"])
    assert (held.status, held.attempts, held.log) == (DeliveryStatus.PENDING, 0, [])
    assert held.held_since is not None

    with django_capture_on_commit_callbacks(execute=True):
        organization_reactivate(organization=org, actor=None)  # the back office's
    assert len(hook.received) == 1
    sent = _delivery(org, created["id"])
    assert (sent.status, sent.attempts, sent.held_since) == (DeliveryStatus.SUCCEEDED, 1, None)
    # resuming again sends nothing more
    with django_capture_on_commit_callbacks(execute=True):
        assert services.deliveries_resume(org) == 0
        _reactivate(org)
    assert len(hook.received) == 1


def test_a_retry_while_suspended_uses_up_no_attempt(
    api, org, receiver, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_MAX_ATTEMPTS = 3
    hook = receiver(statuses=[500])
    created = _register(api, hook.url)
    real = services.delivery_attempt

    def attempt_then_suspend(delivery):
        ok = real(delivery)
        _suspend(org)  # suspended before the retry comes round
        return ok

    monkeypatch.setattr("webhooks.tasks.delivery_attempt", attempt_then_suspend)
    with django_capture_on_commit_callbacks(execute=True):
        emit(org, "job.failed", {"job_id": 1})
    assert len(hook.received) == 1
    waiting = _delivery(org, created["id"])
    assert (waiting.status, waiting.attempts) == (DeliveryStatus.RETRYING, 1)
    assert waiting.held_since is not None

    monkeypatch.setattr("webhooks.tasks.delivery_attempt", real)
    with django_capture_on_commit_callbacks(execute=True):
        _reactivate(org)
    assert len(hook.received) == 2
    done = _delivery(org, created["id"])
    assert (done.status, done.attempts) == (DeliveryStatus.SUCCEEDED, 2)
    assert [a["status"] for a in done.log] == [500, 200]


def test_the_site_log_says_a_delivery_is_held(
    api, org, owner_client, receiver, django_capture_on_commit_callbacks
):
    created = _register(api, receiver().url)
    _suspend(org)
    with django_capture_on_commit_callbacks(execute=True):
        emit(org, "import.finished", {"import_id": 1})
    # the log as read (by staff, or by the owner right after the reactivation)
    Organization.objects.filter(pk=org.pk).update(status="active")
    page = owner_client.get(f"/settings/webhooks/{created['id']}/").content.decode()
    assert "Held: the organisation is suspended. It goes when it is reactivated." in page
    assert "Waiting to be sent" in page
    log = api.get(f"/api/v1/webhooks/{created['id']}/deliveries/").json()["results"]
    assert log[0]["held_since"] is not None and log[0]["attempts"] == 0
