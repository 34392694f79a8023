"""The campaign pages: list, builder, a campaign's page (versions, preview, test
send, pre-send summary, send, results) and the settings form."""

from __future__ import annotations

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import tenant_context
from campaigns.models import Campaign, CampaignSettings, Delivery, OutboxMessage, Variant
from campaigns.tests import sendworld


@pytest.fixture
def world(org):
    with tenant_context(org):
        a = sendworld.customers(org, 3, "ana")
        b = sendworld.customers(org, 2, "ben")
        nobody = sendworld.customers(org, 1, "no", email=False)
        segs = sendworld.segments(org, {"Loyal": a + nobody, "New": b})
        persona = sendworld.persona(org, segs["Loyal"], name="Loyal regular")
    return {"segments": segs, "persona": persona, "loyal": a, "new": b}


@pytest.fixture
def campaign(org, world):
    with tenant_context(org):
        return sendworld.campaign(org, [s.pk for s in world["segments"].values()])


def _builder_post(world, **extra):
    data = {
        "name": "Spring sale",
        "goal": "Bring back lapsed buyers",
        "channel": "email",
        "recipients": "segments",
        "segments": [str(s.pk) for s in world["segments"].values()],
        "subject": "Hello {{ first_name }}",
        "body": "Hi {{ first_name }}, new in: https://shop.example/new",
        "schedule": "now",
        "holdout_percent": "10",
        "allocation": "fixed",
        "conversion_window_days": "5",
    }
    data.update(extra)
    return data


def test_empty_list_explains_campaigns_and_links_the_outbox(owner_client):
    page = owner_client.get(reverse("campaigns:list")).content.decode()
    assert "No campaigns yet" in page
    assert "Create your first campaign" in page
    assert reverse("campaigns:new") in page
    assert reverse("campaigns:outbox") in page
    assert "Messages sent in development land here" in page.replace(
        "messages sent", "Messages sent"
    )


def test_nav_leads_to_the_campaigns_page(owner_client):
    page = owner_client.get(reverse("core:dashboard")).content.decode()
    assert f'href="{reverse("campaigns:list")}"' in page


def test_create_a_campaign(owner_client, org, world):
    response = owner_client.post(reverse("campaigns:new"), _builder_post(world))
    with tenant_context(org):
        campaign = Campaign.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("campaigns:detail", args=[campaign.pk])
    assert campaign.holdout_share == pytest.approx(0.1)
    assert sorted(campaign.segment_ids) == sorted(s.pk for s in world["segments"].values())
    page = owner_client.get(reverse("campaigns:list")).content.decode()
    assert "Spring sale" in page and "Draft" in page


def test_schedule_is_read_in_the_organisations_time_zone(owner_client, org, world):
    org.time_zone = "Europe/Paris"
    org.save()
    response = owner_client.post(
        reverse("campaigns:new"),
        _builder_post(world, schedule="at", send_at="2030-06-01T09:30"),
    )
    assert response.status_code == 302
    with tenant_context(org):
        campaign = Campaign.objects.get()
    assert campaign.send_at.astimezone(datetime.UTC).hour == 7  # 09:30 CEST is 07:30 UTC


def test_a_bad_template_is_shown_next_to_its_field(owner_client, org, world):
    response = owner_client.post(
        reverse("campaigns:new"),
        _builder_post(world, body="Hi {{ frist_name }}"),
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="body-error"' in page
    assert "unknown merge field" in page and "frist_name" in page
    with tenant_context(org):
        assert not Campaign.objects.exists()


def test_sms_length_is_counted(owner_client):
    response = owner_client.post(reverse("campaigns:sms_count"), {"body": "a" * 161})
    page = response.content.decode()
    assert "161 characters" in page and "2 SMS parts" in page


def test_a_starter_draft_from_a_persona_is_marked_as_a_draft(owner_client, org, world, campaign):
    response = owner_client.post(
        reverse("campaigns:variant_add", args=[campaign.pk]),
        {
            "kind": "persona",
            "name": "For regulars",
            "persona": str(world["persona"].pk),
            "draft": "on",
        },
    )
    assert response.status_code == 302
    with tenant_context(org):
        variant = Variant.objects.get()
    assert variant.is_draft and variant.persona_id == world["persona"].pk and variant.body
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Starter draft — edit before sending" in page
    # editing the words makes it the owner's own version
    edit = reverse("campaigns:variant_edit", args=[variant.pk])
    response = owner_client.post(edit, {"name": "For regulars", "subject": "Hi", "body": "Mine"})
    assert response.status_code == 302
    with tenant_context(org):
        variant.refresh_from_db()
    assert not variant.is_draft and variant.body == "Mine"


def test_preview_as_a_customer_at_phone_width(owner_client, org, world, campaign):
    ana = world["loyal"][0]
    response = owner_client.get(
        reverse("campaigns:preview", args=[campaign.pk]),
        {"customer": ana.pk, "width": "phone"},
        HTTP_HX_REQUEST="true",
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "<iframe" in page and 'sandbox=""' in page and 'width="375"' in page
    assert f"Hello {ana.first_name}" in page
    detail = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert 'width="600"' in detail


def test_the_pre_send_summary_counts_who_is_skipped(owner_client, campaign):
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Skipped: no consent" in page
    assert "Send now" in page and "Send a test to me" in page


def test_send_a_test_to_me(owner_client, org, campaign, settings):
    settings.EMAIL_BACKEND = "campaigns.backends.OutboxEmailBackend"
    response = owner_client.post(reverse("campaigns:test", args=[campaign.pk]))
    assert response.status_code == 302
    with tenant_context(org):
        message = OutboxMessage.objects.get()
    assert message.to_address == "owner@acme.test"


def test_send_starts_a_job_and_results_show(
    owner_client, org, world, campaign, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(reverse("campaigns:send", args=[campaign.pk]))
    assert response.status_code == 302
    with tenant_context(org):
        campaign.refresh_from_db()
        assert campaign.job_id is not None
        assert campaign.status == "sent"
        assert Delivery.objects.filter(status="sent").count() == 5
        Delivery.objects.filter(customer=world["loyal"][0]).update(clicked_at=timezone.now())
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Results" in page
    assert 'data-stat="clicked">1<' in page
    assert "Loyal" in page  # by segment
    listing = owner_client.get(reverse("campaigns:list")).content.decode()
    assert "Sent" in listing


def test_viewer_cannot_send(client, viewer, org, campaign):
    client.force_login(viewer)
    page = client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Send now</button>" not in page
    assert client.post(reverse("campaigns:send", args=[campaign.pk])).status_code == 403
    assert client.get(reverse("campaigns:new")).status_code == 403
    with tenant_context(org):
        campaign.refresh_from_db()
    assert campaign.status == "draft" and campaign.job_id is None


def test_another_organisations_campaign_is_404(client, make_member, other_org, campaign):
    client.force_login(make_member(other_org, "owner"))
    for name in ("detail", "edit", "preview"):
        assert client.get(reverse(f"campaigns:{name}", args=[campaign.pk])).status_code == 404
    assert client.post(reverse("campaigns:send", args=[campaign.pk])).status_code == 404


def test_settings_are_saved(owner_client, org):
    response = owner_client.post(
        reverse("campaigns:settings"),
        {
            "cap_messages": "2",
            "cap_days": "7",
            "quiet_start_hour": "21",
            "quiet_end_hour": "9",
            "from_name": "Acme",
            "reply_to": "hello@acme.test",
        },
    )
    assert response.status_code == 302
    with tenant_context(org):
        found = CampaignSettings.objects.get()
    assert (found.cap_messages, found.cap_days, found.from_name) == (2, 7, "Acme")
    half = owner_client.post(
        reverse("campaigns:settings"),
        {"cap_messages": "2", "cap_days": "", "quiet_start_hour": "21", "quiet_end_hour": "9"},
    )
    assert half.status_code == 400


def test_an_sms_campaign_shows_its_text_and_length(owner_client, org, world):
    response = owner_client.post(
        reverse("campaigns:new"),
        _builder_post(world, channel="sms", subject="", body="Hi {{ first_name }}, 20% off today"),
    )
    assert response.status_code == 302
    page = owner_client.get(response.url).content.decode()
    assert "<iframe" not in page
    assert "Hi Ana0, 20% off today" in page
    builder = owner_client.get(response.url + "edit/").content.decode()
    assert "SMS part" in builder


def test_while_sending_the_page_shows_progress_and_refreshes(owner_client, org, campaign):
    from core.models import Job

    with tenant_context(org):
        job = Job.objects.create(
            organization=org, kind="campaign_send", title="Send campaign “Spring”", progress=40
        )
        Campaign.objects.filter(pk=campaign.pk).update(status="sending", job=job)
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "Sending now" in page
    assert 'aria-valuenow="40"' in page
    assert 'hx-select="#campaign-live"' in page
    assert "Send now</button>" not in page


def test_missing_answers_are_named_in_plain_words(owner_client, org, world, campaign):
    response = owner_client.post(reverse("campaigns:new"), _builder_post(world, segments=[]))
    assert response.status_code == 400
    assert "Tick at least one segment." in response.content.decode()
    response = owner_client.post(
        reverse("campaigns:variant_add", args=[campaign.pk]),
        {"kind": "persona", "name": "Regulars", "persona": str(world["persona"].pk)},
    )
    assert response.status_code == 400
    assert "Write the message, or tick" in response.content.decode()
    with tenant_context(org):
        assert not Variant.objects.exists()
