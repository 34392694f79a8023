"""The loyalty pages: the loyalty page with and without a programme, the programme
editor (saving, field errors, nothing changed), the customer page's card and its
"Exchange points" button, roles and other organisations."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError
from customers.tests.factories import CustomerFactory
from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier, PointsRedemption
from loyalty.tests.test_pages import plant


@pytest.fixture
def gbp(org):
    org.currency = "GBP"
    org.time_zone = "Europe/London"
    org.save()
    return org


def _editor_post(**extra) -> dict:
    data = {
        "metric": "spend",
        "period_days": "365",
        "points_per_unit": "1",
        "reward_points": "500",
        "reward_value": "5",
        "active": "on",
        "tier-TOTAL_FORMS": "4",
        "tier-INITIAL_FORMS": "0",
        "tier-MIN_NUM_FORMS": "0",
        "tier-MAX_NUM_FORMS": "20",
        "tier-0-name": "  Bronze ",
        "tier-0-threshold": "0",
        "tier-1-name": "Silver",
        "tier-1-threshold": "200",
        "tier-2-name": "Gold",
        "tier-2-threshold": "750",
        "tier-3-name": "",
        "tier-3-threshold": "",
    }
    data.update(extra)
    return data


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- the loyalty page ------------------------------------------------------------------
def test_page_without_a_programme_explains_tiers_and_offers_to_set_one_up(gbp, owner_client):
    response = owner_client.get(reverse("loyalty:page"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Reward your best customers" in page
    assert "tier" in page and "points" in page
    assert "Set up your programme" in page
    assert reverse("loyalty:program") in page


def test_page_without_a_programme_tells_a_viewer_whom_to_ask(gbp, viewer, client):
    client.force_login(viewer)
    page = client.get(reverse("loyalty:page")).content.decode()
    assert "Ask a marketer or the owner" in page
    assert reverse("loyalty:program") not in page


def test_page_with_a_programme_renders_its_sections(gbp, owner_client):
    plant(gbp)
    page = owner_client.get(reverse("loyalty:page")).content.decode()
    for heading in (
        "Your programme",
        "Members per tier",
        "Moving between tiers",
        "Revenue by tier",
    ):
        assert heading in page
    assert "Recompute now" in page
    assert '<div class="table-wrap">' in page


def test_another_organisations_loyalty_never_shows(gbp, other_org, owner_client):
    plant(gbp)
    plant(other_org, scale=7)  # Gold revenue there: 11,340
    with tenant_context(other_org):
        LoyaltyTier.objects.filter(name="Gold").update(name="Platinum")
    page = owner_client.get(reverse("loyalty:page")).content.decode()
    assert "Platinum" not in page
    assert "11,340" not in page and "11340" not in page
    assert 'data-members="3"' in page  # its own Gold members


def test_recompute_starts_the_loyalty_job(gbp, owner_client, monkeypatch):
    plant(gbp)
    calls = []

    def fake_start(**kwargs):
        calls.append(kwargs)
        return {"jobs": {}, "runs": {}, "status": "queued", "seconds": 0}

    monkeypatch.setattr("segmentation.pipeline.pipeline_start", fake_start)
    response = owner_client.post(reverse("loyalty:recompute"))
    assert response.status_code == 302
    assert calls and calls[0]["steps"] == ["loyalty"]
    assert calls[0]["organization"] == gbp


def test_viewer_cannot_recompute(gbp, viewer, client):
    plant(gbp)
    client.force_login(viewer)
    assert client.post(reverse("loyalty:recompute")).status_code == 403


# --- the programme editor --------------------------------------------------------------
def test_editor_suggests_tiers_when_there_is_no_programme(gbp, owner_client):
    page = owner_client.get(reverse("loyalty:program")).content.decode()
    assert "Set up your loyalty programme" in page
    assert 'value="Bronze"' in page
    assert '<label for="id_period_days">' in page


def test_editor_saves_the_programme_and_returns_to_the_page(gbp, owner_client):
    response = owner_client.post(reverse("loyalty:program"), _editor_post())
    assert response.status_code == 302 and response.url == reverse("loyalty:page")
    assert any("Programme saved" in m for m in _messages(response))
    with tenant_context(gbp):
        program = LoyaltyProgram.objects.get()
        tiers = list(program.tiers.order_by("threshold").values_list("name", "threshold"))
    assert program.metric == "spend" and program.period_days == 365
    assert tiers == [("Bronze", Decimal(0)), ("Silver", Decimal(200)), ("Gold", Decimal(750))]


def test_editor_removes_a_tier_and_keeps_the_rest(gbp, owner_client):
    plant(gbp)
    page = owner_client.get(reverse("loyalty:program")).content.decode()
    assert 'value="Silver"' in page and 'value="500"' in page  # amounts without .0000
    data = _editor_post(
        **{
            "tier-TOTAL_FORMS": "6",
            "tier-INITIAL_FORMS": "3",
            "tier-0-name": "Bronze",
            "tier-0-threshold": "0",
            "tier-1-name": "Silver",
            "tier-1-threshold": "100",
            "tier-1-DELETE": "on",
            "tier-2-name": "Gold",
            "tier-2-threshold": "500",
            "tier-4-name": "",
            "tier-4-threshold": "",
            "tier-5-name": "",
            "tier-5-threshold": "",
        }
    )
    response = owner_client.post(reverse("loyalty:program"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    with tenant_context(gbp):
        assert sorted(LoyaltyTier.objects.values_list("name", flat=True)) == ["Bronze", "Gold"]


def test_editor_shows_field_errors_next_to_the_fields(gbp, owner_client):
    data = _editor_post(**{"period_days": "0", "tier-1-threshold": ""})
    response = owner_client.post(reverse("loyalty:program"), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Some answers need a look" in page
    assert 'id="id_period_days-error"' in page
    assert 'aria-describedby="id_period_days-error' in page
    assert 'id="id_tier-1-threshold-error"' in page
    assert "Say when customers reach this tier" in page
    with tenant_context(gbp):
        assert not LoyaltyProgram.objects.exists()


def test_editor_puts_the_services_field_errors_on_the_right_row(gbp, owner_client, monkeypatch):
    def refuse(**kwargs):
        raise ApplicationError(
            "Each tier must start above the one before.",
            {"fields": {"tiers[2].threshold": "Gold must start above Silver (200)."}},
        )

    monkeypatch.setattr("loyalty.services.program_save", refuse)
    # row 1 is blank and the rows are not in order: the service's tiers[2] (the
    # third lowest) is the page's row tier-1
    data = _editor_post(
        **{
            "tier-0-name": "Bronze",
            "tier-0-threshold": "0",
            "tier-1-name": "Gold",
            "tier-1-threshold": "750",
            "tier-2-name": "",
            "tier-2-threshold": "",
            "tier-3-name": "Silver",
            "tier-3-threshold": "200",
        }
    )
    response = owner_client.post(reverse("loyalty:program"), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="id_tier-1-threshold-error"' in page
    assert 'id="id_tier-3-threshold-error"' not in page
    assert "Gold must start above Silver (200)." in page


def test_editor_refuses_a_real_invalid_programme(gbp, owner_client):
    data = _editor_post(**{"tier-1-name": "Bronze"})  # the same name twice
    response = owner_client.post(reverse("loyalty:program"), data)
    assert response.status_code == 400
    with tenant_context(gbp):
        assert not LoyaltyProgram.objects.exists()


def test_saving_the_editor_unchanged_changes_nothing(gbp, owner_client):
    plant(gbp)
    with tenant_context(gbp):
        before = list(LoyaltyTier.objects.values_list("pk", "name", "threshold", "position"))
        updated = LoyaltyProgram.objects.get().updated_at
    page = owner_client.get(reverse("loyalty:program")).content.decode()
    assert 'name="tier-0-name"' in page
    data = _editor_post(
        **{
            "tier-TOTAL_FORMS": "6",
            "tier-INITIAL_FORMS": "3",
            "tier-0-name": "Bronze",
            "tier-0-threshold": "0",
            "tier-1-name": "Silver",
            "tier-1-threshold": "100",
            "tier-2-name": "Gold",
            "tier-2-threshold": "500",
            "tier-3-name": "",
            "tier-3-threshold": "",
            "tier-4-name": "",
            "tier-4-threshold": "",
            "tier-5-name": "",
            "tier-5-threshold": "",
        }
    )
    response = owner_client.post(reverse("loyalty:program"), data)
    assert response.status_code == 302
    assert any("Nothing changed" in m for m in _messages(response))
    with tenant_context(gbp):
        after = list(LoyaltyTier.objects.values_list("pk", "name", "threshold", "position"))
        assert LoyaltyProgram.objects.get().updated_at == updated
    assert after == before


def test_viewer_cannot_open_or_post_the_editor(gbp, viewer, client):
    client.force_login(viewer)
    assert client.get(reverse("loyalty:program")).status_code == 403
    assert client.post(reverse("loyalty:program"), _editor_post()).status_code == 403
    with tenant_context(gbp):
        assert not LoyaltyProgram.objects.exists()


# --- the customer page's card ----------------------------------------------------------
def _silver_customer(org, *, points: int):
    """A Silver customer with 150 spent: 350 more to reach Gold at 500."""
    plant(org)
    with tenant_context(org):
        customer = CustomerFactory(organization=org)
        silver = LoyaltyTier.objects.get(name="Silver")
        LoyaltyAccount.objects.create(
            organization=org,
            customer=customer,
            tier=silver,
            metric_value=Decimal(150),
            points_earned=points,
            points=points,
            tier_since="2026-05-05",
        )
    return customer


def test_customer_card_shows_tier_points_and_progress(gbp, owner_client):
    customer = _silver_customer(gbp, points=620)
    page = owner_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    card = page[page.index('id="panel-loyalty"') :]
    assert 'data-tier="Silver"' in card
    assert "since 5 May 2026" in card
    assert 'data-points="620"' in card
    assert "£350 more to reach Gold" in card
    assert 'aria-valuenow="30"' in card  # 150 of Gold's 500
    assert "Exchange 500 points for £5 off" in card


def test_exchange_button_gives_a_code(gbp, owner_client):
    customer = _silver_customer(gbp, points=620)
    response = owner_client.post(reverse("loyalty:exchange", args=[customer.pk]))
    assert response.status_code == 302
    assert response.url.startswith(reverse("customers:detail", args=[customer.pk]))
    with tenant_context(gbp):
        redemption = PointsRedemption.objects.get(customer=customer)
        assert LoyaltyAccount.objects.get(customer=customer).points == 120
    assert redemption.points == 500
    assert any(redemption.code in m and "£5 off" in m for m in _messages(response))


def test_exchange_refuses_too_few_points(gbp, owner_client):
    customer = _silver_customer(gbp, points=499)
    response = owner_client.post(reverse("loyalty:exchange", args=[customer.pk]))
    assert response.status_code == 302
    assert _messages(response)  # the service's reason, shown on the customer page
    with tenant_context(gbp):
        assert not PointsRedemption.objects.exists()
        assert LoyaltyAccount.objects.get(customer=customer).points == 499


def test_viewer_sees_the_card_but_cannot_exchange(gbp, viewer, client):
    customer = _silver_customer(gbp, points=620)
    client.force_login(viewer)
    page = client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    assert 'data-tier="Silver"' in page
    assert reverse("loyalty:exchange", args=[customer.pk]) not in page
    assert client.post(reverse("loyalty:exchange", args=[customer.pk])).status_code == 403
    with tenant_context(gbp):
        assert not PointsRedemption.objects.exists()


def test_exchange_for_another_organisations_customer_is_404(gbp, other_org, owner_client):
    plant(other_org)
    with tenant_context(other_org):
        theirs = CustomerFactory(organization=other_org)
        LoyaltyAccount.objects.create(organization=other_org, customer=theirs, points=900)
    response = owner_client.post(reverse("loyalty:exchange", args=[theirs.pk]))
    assert response.status_code == 404
    with tenant_context(other_org):
        assert not PointsRedemption.objects.exists()


def test_card_without_a_programme_invites_to_set_one_up(gbp, owner_client):
    with tenant_context(gbp):
        customer = CustomerFactory(organization=gbp)
    page = owner_client.get(reverse("customers:detail", args=[customer.pk])).content.decode()
    card = page[page.index('id="panel-loyalty"') :]
    assert "No loyalty programme yet" in card
