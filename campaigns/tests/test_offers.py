"""Campaigns carrying an offer (issue 12): each customer's own code in the message,
only code holders get it, the fairness flag blocks a send until a reason is recorded,
the builder's prefill from the offers pages, and results per store.

The offer data is planted directly (an Offer `ready` and its OfferRecipient rows), so
these tests do not depend on the offers build job."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.tenancy import tenant_context
from campaigns import sending, services, stats
from campaigns.models import Campaign, Delivery, DeliveryStatus, SkipReason
from campaigns.tests import sendworld as w

BASE = "/api/v1/campaigns/"
BODY = "Hi {{ first_name }}, {{ offer_name }} ends {{ offer_ends }}.\n\n{% offer %}"
CODES = ["SPRG-7QX2-AB", "SPRG-K9M4-CD", "SPRG-P3W8-EF", "SPRG-Z5T6-GH"]


def _offer(org, **fields):
    from offers.models import Offer

    defaults = {
        "name": "Spring 10% off",
        "kind": "percent",
        "value": "10",
        "status": "ready",
        "recipients_count": 4,
        "holdout_count": 1,
        "holdout_share": 0.2,
        "ends_at": dt.datetime(2031, 3, 31, 12, tzinfo=dt.UTC),
    }
    defaults.update(fields)
    return Offer.objects.create(organization=org, **defaults)


def _recipients(org, offer, people, codes, held):
    from offers.models import OfferRecipient

    for person, code in zip(people, codes, strict=True):
        OfferRecipient.objects.create(organization=org, offer=offer, customer=person, code=code)
    for person in held:
        OfferRecipient.objects.create(
            organization=org, offer=offer, customer=person, code="", holdout=True
        )


@pytest.fixture
def world(org):
    """Six customers in one segment: four with a code, one in the offer's hold-out and
    one outside the offer; a draft campaign carrying the offer."""
    with tenant_context(org):
        people = w.customers(org, 6, "of")
        seg = w.segments(org, {"All": people})["All"]
        offer = _offer(org)
        _recipients(org, offer, people[:4], CODES, held=[people[4]])
        campaign = w.campaign(org, [seg.pk], body=BODY, offer_id=offer.pk)
    return {"people": people, "segment": seg, "offer": offer, "campaign": campaign}


# --- rendering and preview ---------------------------------------------------------------
def test_the_preview_shows_the_customers_own_code(api, world):
    people, campaign = world["people"], world["campaign"]
    for person, code in zip(people[:4], CODES, strict=True):
        answer = api.get(f"{BASE}{campaign.pk}/preview/?customer={person.pk}")
        assert answer.status_code == 200, answer.content
        preview = answer.json()
        assert preview["offer_code"] == code
        assert f"Your code: {code}" in preview["text"]
        assert code in preview["html"]
        assert set(re.findall(r"SPRG-[A-Z0-9-]+", preview["text"])) == {code}
        assert "Spring 10% off ends 31 March 2031" in preview["text"]
    held = api.get(f"{BASE}{campaign.pk}/preview/?customer={people[4].pk}").json()
    assert held["offer_code"] is None
    assert "(no code: in the offer's hold-out" in held["text"]
    outside = api.get(f"{BASE}{campaign.pk}/preview/?customer={people[5].pk}").json()
    assert "(no code: not among the offer's recipients" in outside["text"]


def test_the_preview_page_shows_the_code(owner_client, world):
    person = world["people"][1]
    page = owner_client.get(
        reverse("campaigns:preview", args=[world["campaign"].pk]), {"customer": person.pk}
    ).content.decode()
    assert CODES[1] in page
    assert CODES[0] not in page


def test_loyalty_tier_fills_the_merge_field(org, world):
    from campaigns.rendering import customer_contexts
    from loyalty.models import LoyaltyAccount, LoyaltyProgram, LoyaltyTier

    with tenant_context(org):
        program = LoyaltyProgram.objects.create(organization=org)
        gold = LoyaltyTier.objects.create(
            organization=org, program=program, name="Gold", threshold=500, position=1
        )
        LoyaltyAccount.objects.create(organization=org, customer=world["people"][0], tier=gold)
        ids = [p.pk for p in world["people"][:2]]
        contexts = customer_contexts(ids, organization=org, offer=world["offer"])
    assert contexts[ids[0]]["loyalty_tier"] == "Gold"
    assert contexts[ids[1]]["loyalty_tier"] is None
    assert contexts[ids[0]]["offer_code"] == CODES[0]


# --- sending -------------------------------------------------------------------------------
def test_each_customer_gets_their_own_code_and_the_rest_are_skipped(org, world):
    people, campaign = world["people"], world["campaign"]
    with tenant_context(org):
        Campaign.objects.filter(pk=campaign.pk).update(status="sending")
        sending.campaign_send_run(campaign_id=campaign.pk, batch_size=3)
        by_address = {m.to[0]: m for m in mail.outbox}
        assert set(by_address) == {p.email for p in people[:4]}
        for person, code in zip(people[:4], CODES, strict=True):
            message = by_address[person.email]
            html = message.alternatives[0][0]
            assert set(re.findall(r"SPRG-[A-Z0-9-]+", message.body)) == {code}
            assert set(re.findall(r"SPRG-[A-Z0-9-]+", html)) == {code}
        rows = {d.customer_id: d for d in Delivery.objects.filter(campaign=campaign)}
        assert rows[people[4].pk].status == DeliveryStatus.SKIPPED
        assert rows[people[4].pk].skip_reason == SkipReason.OFFER_HOLDOUT
        assert rows[people[5].pk].skip_reason == SkipReason.NO_OFFER_CODE
        campaign.refresh_from_db()
        assert campaign.status == "sent"
        assert campaign.counts["skipped_offer_holdout"] == 1
        assert campaign.counts["skipped_no_offer_code"] == 1
        figures = stats.campaign_stats(campaign)
    assert figures["sent"] == 4
    assert figures["skipped_offer_holdout"] == 1 and figures["skipped_no_offer_code"] == 1


def test_the_pre_send_summary_names_the_offer(owner_client, org, world):
    with tenant_context(org):
        audit = services.campaign_audit(world["campaign"])
    assert audit["sendable"] == 4
    assert audit["skipped_offer_holdout"] == 1 and audit["skipped_no_offer_code"] == 1
    assert audit["offer"]["name"] == "Spring 10% off"
    assert audit["offer"]["with_code"] == 4 and audit["offer"]["holdout"] == 1
    assert audit["offer"]["problem"] is None
    page = owner_client.get(reverse("campaigns:detail", args=[world["campaign"].pk]))
    text = page.content.decode()
    assert "The offer: " in text and "Spring 10% off" in text
    assert "in the offer&#x27;s hold-out" in text or "in the offer's hold-out" in text
    assert "fairness_override_reason" not in text  # not flagged: no reason asked


def _flag(org, offer):
    with tenant_context(org):
        offer.fairness_flagged = True
        offer.fairness = [
            {
                "attribute": "gender",
                "group": "female",
                "share_in_audience": 0.2,
                "share_in_base": 0.5,
                "ratio": 0.4,
                "warning": "Women are 0.4 times as likely to get it as men.",
            }
        ]
        offer.save()


def test_a_flagged_offer_blocks_the_send_until_a_reason_is_recorded(
    api, org, world, django_capture_on_commit_callbacks
):
    from accounts.models import AuditLogEntry

    _flag(org, world["offer"])
    url = f"{BASE}{world['campaign'].pk}/send/"
    refused = api.post(url, {}, format="json")
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert error["code"] == "offer_flagged"
    assert "fairness check" in error["message"]
    assert "fairness_override_reason" in error["fields"]
    too_short = api.post(url, {"fairness_override_reason": "ok"}, format="json")
    assert too_short.status_code == 400
    assert "fairness_override_reason" in too_short.json()["error"]["fields"]
    with tenant_context(org):
        assert Delivery.objects.count() == 0
        world["offer"].refresh_from_db()
        assert world["offer"].override_reason == ""
    reason = "A launch offer for the new sewing club; members chose to join."
    with django_capture_on_commit_callbacks(execute=True):
        sent = api.post(url, {"fairness_override_reason": reason}, format="json")
    assert sent.status_code == 202, sent.content
    with tenant_context(org):
        world["offer"].refresh_from_db()
        assert world["offer"].override_reason == reason
        entry = AuditLogEntry.objects.get(action="offer.fairness_override")
        assert entry.details["reason"] == reason
        assert Delivery.objects.filter(status="sent").count() == 4
    assert len(mail.outbox) == 4


def test_the_page_asks_for_the_reason_next_to_the_send_button(
    owner_client, org, world, django_capture_on_commit_callbacks
):
    _flag(org, world["offer"])
    url = reverse("campaigns:detail", args=[world["campaign"].pk])
    page = owner_client.get(url).content.decode()
    assert "The fairness check flagged this offer" in page
    assert "Women are 0.4 times as likely" in page
    assert 'name="fairness_override_reason"' in page
    send = reverse("campaigns:send", args=[world["campaign"].pk])
    refused = owner_client.post(send)
    assert refused.status_code == 409
    assert "failed the fairness check" in refused.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        done = owner_client.post(
            send, {"fairness_override_reason": "Members of the club asked for this offer."}
        )
    assert done.status_code == 302
    with tenant_context(org):
        assert Delivery.objects.filter(status="sent").count() == 4


def test_a_building_or_ended_offer_is_not_sent(api, org, world):
    url = f"{BASE}{world['campaign'].pk}/send/"
    with tenant_context(org):
        world["offer"].status = "building"
        world["offer"].save()
    answer = api.post(url, {}, format="json")
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "offer_not_sendable"
    assert "still being built" in answer.json()["error"]["message"]
    with tenant_context(org):
        world["offer"].status = "ready"
        world["offer"].ends_at = timezone.now() - dt.timedelta(days=1)
        world["offer"].save()
    answer = api.post(url, {}, format="json")
    assert answer.status_code == 409 and "ended" in answer.json()["error"]["message"]


def test_a_scheduled_send_waits_while_the_offer_has_a_problem(org, world):
    campaign = world["campaign"]
    with tenant_context(org):
        past = timezone.now() - dt.timedelta(minutes=5)
        Campaign.objects.filter(pk=campaign.pk).update(status="scheduled", send_at=past)
        world["offer"].status = "building"
        world["offer"].save()
        assert services.campaigns_start_due() == 0
        campaign.refresh_from_db()
        assert campaign.status == "scheduled"
        assert "still being built" in campaign.message
        assert not Delivery.objects.exists()
        world["offer"].status = "ready"
        world["offer"].save()
        assert services.campaigns_start_due() == 1
        campaign.refresh_from_db()
        assert campaign.status in ("sending", "sent") and campaign.message == ""


def test_a_test_copy_never_carries_a_customers_code(org, owner, world):
    with tenant_context(org):
        services.campaign_test_send(
            organization=org, campaign=world["campaign"], to="owner@acme.test", user=owner
        )
    (message,) = mail.outbox
    assert not re.findall(r"SPRG-[A-Z0-9-]+", message.body)
    assert "(each customer's own code)" in message.body


# --- choosing the offer --------------------------------------------------------------------
def test_offer_id_must_name_a_usable_offer_of_this_organisation(api, org, other_org, world):
    from offers.models import Offer

    with tenant_context(org):
        reward = _offer(org, name="Loyalty reward 5", is_reward=True)
        failed = _offer(org, name="Broken", status="failed")
        building = _offer(org, name="Soon", status="building")
    with tenant_context(other_org):
        theirs = Offer.objects.create(organization=other_org, name="Theirs", kind="percent")
    body = {
        "name": "With offer",
        "channel": "email",
        "segment_ids": [world["segment"].pk],
        "subject": "Hi",
        "body": "{% offer %}",
    }
    for bad in (reward.pk, failed.pk, theirs.pk, "7", 10**9):
        answer = api.post(BASE, {**body, "offer_id": bad}, format="json")
        assert answer.status_code == 400, (bad, answer.content)
        assert "offer_id" in answer.json()["error"]["fields"]
    for good in (world["offer"].pk, building.pk, None):
        answer = api.post(BASE, {**body, "offer_id": good}, format="json")
        assert answer.status_code == 201, answer.content
        assert answer.json()["offer_id"] == good
    changed = api.patch(f"{BASE}{world['campaign'].pk}/", {"offer_id": reward.pk}, format="json")
    assert changed.status_code == 400 and "offer_id" in changed.json()["error"]["fields"]


def test_the_builder_is_prefilled_from_the_offers_pages(owner_client, org, world):
    with tenant_context(org):
        audience_offer = _offer(org, name="Autumn", segment_ids=[world["segment"].pk])
        reward = _offer(org, name="Loyalty reward 5", is_reward=True)
    page = owner_client.get(reverse("campaigns:new"), {"offer": audience_offer.pk})
    text = page.content.decode()
    assert page.status_code == 200
    assert f'<option value="{audience_offer.pk}" selected>Autumn</option>' in text
    assert "Loyalty reward 5" not in text  # the hidden reward offer is not offered
    assert re.search(rf'value="{world["segment"].pk}"[^>]*checked', text)
    by_segment = owner_client.get(reverse("campaigns:new"), {"segment": world["segment"].pk})
    assert re.search(rf'value="{world["segment"].pk}"[^>]*checked', by_segment.content.decode())
    ignored = owner_client.get(reverse("campaigns:new"), {"offer": reward.pk}).content.decode()
    select = ignored.split('name="offer"')[1].split("</select>")[0]
    assert re.findall(r'value="(\d*)" selected', select) == [""]  # "No offer"
    saved = owner_client.post(
        reverse("campaigns:new"),
        {
            "name": "Autumn mail",
            "channel": "email",
            "recipients": "segments",
            "segments": [str(world["segment"].pk)],
            "offer": str(audience_offer.pk),
            "subject": "Hello",
            "body": "Hi {{ first_name }} {% offer %}",
            "schedule": "now",
            "holdout_percent": "0",
            "allocation": "fixed",
            "conversion_window_days": "5",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[:2000]
    with tenant_context(org):
        assert Campaign.objects.get(name="Autumn mail").offer_id == audience_offer.pk


# --- results per store -----------------------------------------------------------------
def test_store_figures_sum_each_stores_customers():
    def row(cid, status="sent", converted=False, revenue="0"):
        return {
            "customer_id": cid, "status": status, "revenue": Decimal(revenue),
            "converted_at": timezone.now() if converted else None, "opened_at": None,
            "clicked_at": None,
        }  # fmt: skip

    rows = [
        row(1, converted=True, revenue="30.50"),
        row(2),
        row(3, converted=True, revenue="12"),
        row(4, status="skipped"),  # not sent: not counted
        row(5, status="bounced"),
        row(6, converted=True, revenue="8"),
    ]
    nearest = {1: 10, 2: 10, 3: 20, 4: 20, 5: None, 6: None}
    out = stats.store_figures(rows, nearest, {10: "Zeta Street", 20: "Alpha Road"})
    assert out == [
        {"store_id": 20, "store": "Alpha Road", "sent": 1, "converted": 1, "revenue": 12.0,
         "conversion_rate": 1.0},
        {"store_id": 10, "store": "Zeta Street", "sent": 2, "converted": 1, "revenue": 30.5,
         "conversion_rate": 0.5},
        {"store_id": None, "store": "Not placed", "sent": 2, "converted": 1, "revenue": 8.0,
         "conversion_rate": 0.5},
    ]  # fmt: skip


def test_campaign_results_by_nearest_store(owner_client, org, world):
    from customers.models import Customer
    from stores.models import Store

    people, campaign = world["people"], world["campaign"]
    with tenant_context(org):
        assert stats.campaign_stats(campaign)["by_store"] == []  # no stores: empty
        london = Store.objects.create(organization=org, name="London", latitude=51.5074,
                                      longitude=-0.1278)  # fmt: skip
        leeds = Store.objects.create(organization=org, name="Leeds", latitude=53.8008,
                                     longitude=-1.5491)  # fmt: skip
        # two customers near London (Greenwich, Camden), one near Leeds (Bradford)
        spots = [(51.4826, -0.0077), (51.5390, -0.1426), (53.7960, -1.7594)]
        for person, (lat, lon) in zip(people[:3], spots, strict=True):
            Customer.objects.filter(pk=person.pk).update(latitude=lat, longitude=lon)
        Campaign.objects.filter(pk=campaign.pk).update(status="sending")
        sending.campaign_send_run(campaign_id=campaign.pk)
        now = timezone.now()
        Delivery.objects.filter(campaign=campaign, customer=people[0]).update(
            converted_at=now, revenue=Decimal("40.00")
        )
        Delivery.objects.filter(campaign=campaign, customer=people[2]).update(
            converted_at=now, revenue=Decimal("15.50")
        )
        by_store = {r["store_id"]: r for r in stats.campaign_stats(campaign)["by_store"]}
    assert by_store[london.pk]["sent"] == 2 and by_store[london.pk]["converted"] == 1
    assert by_store[london.pk]["revenue"] == 40.0 and by_store[london.pk]["conversion_rate"] == 0.5
    assert by_store[leeds.pk]["sent"] == 1 and by_store[leeds.pk]["revenue"] == 15.5
    assert by_store[None]["sent"] == 1  # the fourth code holder has no place
    assert sum(r["sent"] for r in by_store.values()) == 4
    page = owner_client.get(reverse("campaigns:detail", args=[campaign.pk])).content.decode()
    assert "By store" in page and "Leeds" in page and "Could not be placed" in page
