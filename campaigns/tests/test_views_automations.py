"""The automation pages: the list (empty state, triggers in plain words), the
builder (create, edit, errors next to their fields), an automation's page (on/off,
results, delete), roles and other organisations."""

from __future__ import annotations

import secrets

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context
from campaigns import automations as auto
from campaigns.models import Automation, Delivery, DeliveryStatus
from campaigns.tests import sendworld


@pytest.fixture
def world(org):
    with tenant_context(org):
        people = sendworld.customers(org, 3, "ana")
        segs = sendworld.segments(org, {"Loyal Regulars": people})
    return {"segment": segs["Loyal Regulars"], "people": people}


@pytest.fixture
def automation(org, world):
    with tenant_context(org):
        return auto.automation_create(
            organization=org,
            data={
                "name": "Welcome regulars",
                "trigger": {
                    "kind": "enters_segment",
                    "params": {"segment_id": world["segment"].pk},
                },
                "message": {"channel": "email", "subject": "Hi", "body": "Hello {{ first_name }}"},
            },
        )


def _post(world, **extra):
    data = {
        "name": "Welcome regulars",
        "kind": "enters_segment",
        "segment": str(world["segment"].pk),
        "channel": "email",
        "subject": "Welcome, {{ first_name }}",
        "body": "Thank you for coming back, {{ first_name }}.",
        "conversion_window_days": "5",
        "active": "on",
    }
    data.update(extra)
    return data


def test_empty_state_explains_automations(owner_client):
    page = owner_client.get(reverse("campaigns:automations")).content.decode()
    assert "No automations yet" in page
    assert "sends a message by itself" in page
    assert "Create an automation" in page and reverse("campaigns:automation_new") in page


def test_the_campaigns_page_links_automations(owner_client):
    page = owner_client.get(reverse("campaigns:list")).content.decode()
    assert reverse("campaigns:automations") in page


def test_create_an_automation_and_see_its_trigger_in_plain_words(owner_client, org, world):
    response = owner_client.post(reverse("campaigns:automation_new"), _post(world))
    assert response.status_code == 302
    with tenant_context(org):
        saved = Automation.objects.get()
    assert response["Location"] == reverse("campaigns:automation_detail", args=[saved.pk])
    assert saved.trigger_kind == "enters_segment"
    assert saved.trigger_params == {"segment_id": world["segment"].pk}
    assert saved.active and saved.subject == "Welcome, {{ first_name }}"
    page = owner_client.get(reverse("campaigns:automations")).content.decode()
    assert "When a customer enters “Loyal Regulars”" in page
    assert "Welcome regulars" in page
    detail = owner_client.get(response["Location"]).content.decode()
    assert "When a customer enters “Loyal Regulars”" in detail
    assert "Nothing sent yet" in detail


def test_days_after_first_order_and_other_kinds_read_plainly(owner_client, org, world):
    owner_client.post(
        reverse("campaigns:automation_new"),
        _post(world, name="Thanks", kind="days_after_first_order", first_order_days="30"),
    )
    owner_client.post(
        reverse("campaigns:automation_new"),
        _post(world, name="Birthday", kind="birthday", channel="sms", subject=""),
    )
    with tenant_context(org):
        kinds = dict(Automation.objects.values_list("name", "trigger_params"))
    assert kinds == {"Thanks": {"days": 30}, "Birthday": {}}
    page = owner_client.get(reverse("campaigns:automations")).content.decode()
    assert "30 days after their first order" in page and "On their birthday" in page


def test_errors_are_shown_next_to_their_field_in_plain_words(owner_client, org, world):
    response = owner_client.post(
        reverse("campaigns:automation_new"), _post(world, body="Hi {{ first_name ", segment="")
    )
    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["segment"] == ["Choose the segment to watch."]
    response = owner_client.post(
        reverse("campaigns:automation_new"), _post(world, subject="", body="Hello")
    )
    assert response.status_code == 400
    error = response.context["form"].errors["subject"][0]
    assert error == "This is required for an email."
    assert "message.subject" not in response.content.decode()
    with tenant_context(org):
        assert not Automation.objects.exists()


def test_edit_keeps_the_trigger_and_changes_the_words(owner_client, org, world, automation):
    url = reverse("campaigns:automation_edit", args=[automation.pk])
    page = owner_client.get(url).content.decode()
    assert 'id="kind-enters_segment" value="enters_segment" checked' in page
    response = owner_client.post(url, _post(world, body="New words"))
    assert response.status_code == 302
    with tenant_context(org):
        automation.refresh_from_db()
    assert automation.body == "New words" and automation.trigger_kind == "enters_segment"


def test_toggle_switches_off_and_on(owner_client, org, automation):
    url = reverse("campaigns:automation_toggle", args=[automation.pk])
    assert owner_client.get(url).status_code == 405
    assert owner_client.post(url).status_code == 302
    with tenant_context(org):
        automation.refresh_from_db()
    assert not automation.active
    page = owner_client.get(reverse("campaigns:automation_detail", args=[automation.pk]))
    assert "Switch on</button>" in page.content.decode()
    owner_client.post(url)
    with tenant_context(org):
        automation.refresh_from_db()
    assert automation.active


def test_results_show_what_was_sent(owner_client, org, world, automation):
    with tenant_context(org):
        campaign = sendworld.campaign(org, [world["segment"].pk])
        campaign.automation = automation
        campaign.automation_round = 1
        campaign.save()
        for person in world["people"]:
            Delivery.objects.create(
                organization=org,
                campaign=campaign,
                customer=person,
                channel="email",
                status=DeliveryStatus.SENT,
                to_address=person.email,
                token=secrets.token_hex(16),
            )
    page = owner_client.get(reverse("campaigns:automation_detail", args=[automation.pk]))
    text = page.content.decode()
    assert "Nothing sent yet" not in text and "Delivered" in text
    listing = owner_client.get(reverse("campaigns:automations"))
    assert listing.context["rows"][0]["sent"] == 3


def test_delete(owner_client, org, automation):
    response = owner_client.post(reverse("campaigns:automation_delete", args=[automation.pk]))
    assert response.status_code == 302
    with tenant_context(org):
        assert not Automation.objects.exists()


def test_a_viewer_sees_but_cannot_change(client, viewer, org, world, automation):
    client.force_login(viewer)
    page = client.get(reverse("campaigns:automation_detail", args=[automation.pk]))
    assert page.status_code == 200 and "Switch off</button>" not in page.content.decode()
    assert client.get(reverse("campaigns:automation_new")).status_code == 403
    for name in ("automation_toggle", "automation_delete", "automation_edit"):
        assert client.post(reverse(f"campaigns:{name}", args=[automation.pk])).status_code == 403
    with tenant_context(org):
        automation.refresh_from_db()
    assert automation.active


def test_another_organisations_automation_is_404(client, make_member, other_org, automation):
    client.force_login(make_member(other_org, "owner"))
    for name in ("automation_detail", "automation_edit"):
        url = reverse(f"campaigns:{name}", args=[automation.pk])
        assert client.get(url).status_code == 404
    for name in ("automation_toggle", "automation_delete"):
        url = reverse(f"campaigns:{name}", args=[automation.pk])
        assert client.post(url).status_code == 404


def test_a_link_can_start_the_builder_on_a_trigger(owner_client):
    html = owner_client.get("/campaigns/automations/new/?kind=tier_changed&tier=Gold").content
    page = html.decode()
    assert 'value="tier_changed" checked' in page
    assert 'value="enters_segment" checked' not in page
    assert 'value="Gold"' in page
    # an unknown kind is ignored, not an error
    assert owner_client.get("/campaigns/automations/new/?kind=nonsense").status_code == 200
