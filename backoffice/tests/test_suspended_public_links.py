"""Links in messages and surveys of a suspended organisation (accounts/suspension.py):
a recipient can still unsubscribe (the law and the recipient's right, whatever the
shop's state), but a suspended organisation's surveys take no new answers."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache.backends.locmem import LocMemCache
from django.test import Client
from django.urls import reverse

from accounts import suspension
from accounts.tenancy import tenant_context
from accounts.tests.factories import UserFactory
from campaigns import links as campaign_links
from campaigns.tests.test_links import make_delivery, path_of, state
from customers.models import Customer
from research import links as survey_links
from research import public_views, surveys
from research.models import SurveyResponse

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limit(monkeypatch):
    cache = LocMemCache(f"survey-rl-{uuid.uuid4()}", {})
    monkeypatch.setattr(public_views, "_cache", lambda: cache)


def _suspend(org):
    staff = UserFactory(email="ops@segmenta.test", is_staff=True, is_superuser=True)
    suspension.organization_suspend(organization=org, actor=staff, reason="Unpaid invoices")
    org.refresh_from_db()
    assert not org.is_active


def test_unsubscribe_still_works_while_suspended(org):
    delivery, _ = make_delivery(org)
    _suspend(org)
    response = Client(enforce_csrf_checks=True).post(
        path_of(campaign_links.unsubscribe_url(delivery)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert state(org, delivery)["accepts_email"] is False


def test_a_suspended_organisations_survey_takes_no_answers(client, org, owner):
    with tenant_context(org):
        survey = surveys.survey_create(
            organization=org,
            data={"name": "How did we do?", "questions": [{"type": "nps", "text": "Score?"}]},
            actor=owner,
        )
        ada = Customer.objects.create(organization=org, external_id="C1", email="ada@example.com")
    _suspend(org)
    for value in (
        survey_links.public_value(survey),
        survey_links.personal_value(survey, ada.pk),
    ):
        url = reverse("research_public:answer", kwargs={"token": value})
        page = client.get(url)
        assert page.status_code == 503
        assert "not collecting answers right now" in page.content.decode()
        posted = client.post(url, {"q0": "9"})
        assert posted.status_code == 503
    with tenant_context(org):
        assert SurveyResponse.objects.count() == 0


def test_owners_of_a_suspended_organisation_keep_control_of_support_access(
    client, org, owner, make_member
):
    """While suspended, an owner still sees what Segmenta support looked at (the audit
    log) and can end support access; other pages still lead to the suspended page."""
    from accounts import support as support_services
    from accounts.models import Role, SupportGrant

    staff = UserFactory(email="help@segmenta.test", is_staff=True, is_superuser=True)
    grant = support_services.grant_emergency(
        organization=org, staff=staff, reason="Checking a broken import for the owner", hours=4
    )
    _suspend(org)
    client.force_login(owner)
    audit = client.get(reverse("accounts:audit"))
    assert audit.status_code == 200
    assert "Segmenta support" in audit.content.decode()
    assert client.get(reverse("accounts:support")).status_code == 200
    ended = client.post(
        reverse("accounts:support_decide", kwargs={"pk": grant.pk, "decision": "revoke"})
    )
    assert ended.status_code == 302
    with tenant_context(org):
        assert SupportGrant.objects.get(pk=grant.pk).revoked_at is not None
    # the rest of the settings, and a member who is not an owner: the suspended page
    assert client.get(reverse("accounts:members"))["Location"] == reverse("accounts:suspended")
    member = make_member(org, Role.ADMIN, "admin@acme.test")
    client.force_login(member)
    assert client.get(reverse("accounts:audit")).status_code in (302, 403)
    suspended_page = client.get(reverse("accounts:suspended"))
    assert reverse("accounts:audit") not in suspended_page.content.decode()
    client.force_login(owner)
    suspended_page = client.get(reverse("accounts:suspended")).content.decode()
    assert reverse("accounts:audit") in suspended_page
    assert reverse("accounts:support") in suspended_page
