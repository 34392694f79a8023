"""Signed links: one-click unsubscribe (RFC 8058), preferences, the open pixel and
the click redirect; tampered values and other organisations' values act on nothing."""

from __future__ import annotations

import secrets

import pytest
from django.test import Client
from django.urls import reverse

from accounts.tenancy import tenant_context
from campaigns import links
from campaigns.models import Campaign, Delivery, DeliveryStatus, TrackedLink, Variant
from customers.models import ConsentChange, ConsentVia, Customer, Event

pytestmark = pytest.mark.django_db


def make_delivery(org, *, email="jane.doe@example.com", external_id="c-1", channel="email"):
    """A sent email to one consenting customer (the same person in each organisation)."""
    with tenant_context(org):
        customer = Customer.objects.create(
            organization=org,
            external_id=external_id,
            email=email,
            phone="+44 7700 900123",
            first_name="Jane",
            accepts_email=True,
            accepts_sms=True,
        )
        campaign = Campaign.objects.create(organization=org, name="Spring", channel=channel)
        variant = Variant.objects.create(organization=org, campaign=campaign, name="A")
        delivery = Delivery.objects.create(
            organization=org,
            campaign=campaign,
            variant=variant,
            customer=customer,
            channel=channel,
            status=DeliveryStatus.SENT,
            to_address=email,
            token=secrets.token_hex(16),
        )
        link = links.tracked_link_for(campaign, "https://shop.example/new?utm=1")
    return delivery, link


def path_of(url: str) -> str:
    from django.conf import settings

    assert url.startswith(settings.SITE_URL + "/m/")
    return url[len(settings.SITE_URL) :]


def state(org, delivery):
    with tenant_context(org):
        d = Delivery.objects.get(pk=delivery.pk)
        c = Customer.objects.get(pk=delivery.customer_id)
        return {
            "accepts_email": c.accepts_email,
            "accepts_sms": c.accepts_sms,
            "unsubscribed_at": d.unsubscribed_at,
            "opened_at": d.opened_at,
            "clicked_at": d.clicked_at,
            "history": list(
                ConsentChange.objects.filter(customer_id=c.pk).values_list(
                    "channel", "granted", "via"
                )
            ),
            "events": sorted(Event.objects.filter(customer_id=c.pk).values_list("type", flat=True)),
        }


def tamper(url: str) -> str:
    """Change one character of the signed value."""
    path = path_of(url)
    value = path.rstrip("/").rsplit("/", 1)[1]
    i = len(value) // 3
    swapped = value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]
    return path.replace(value, swapped)


# --- the links themselves -------------------------------------------------------------


def test_links_are_absolute_signed_and_read_back(org):
    delivery, link = make_delivery(org)
    url = links.click_url(delivery, link)
    value = path_of(url).rstrip("/").rsplit("/", 1)[1]
    assert links.read_token(value, links.CLICK) == (org.pk, delivery.token, link.pk)
    # a value signed for one purpose is refused for another
    with pytest.raises(links.BadLink):
        links.read_token(value, links.UNSUBSCRIBE)
    unsub = path_of(links.unsubscribe_url(delivery)).rstrip("/").rsplit("/", 1)[1]
    assert links.read_token(unsub, links.UNSUBSCRIBE) == (org.pk, delivery.token, None)
    # no guessable ids in the address: the delivery's id is nowhere in it
    assert f"/{delivery.pk}/" not in url


def test_list_unsubscribe_headers_follow_rfc_8058(org):
    delivery, _ = make_delivery(org)
    headers = links.list_unsubscribe_headers(delivery)
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    value = headers["List-Unsubscribe"]
    assert value.startswith("<http") and value.endswith(">")
    assert value[1:-1] == links.unsubscribe_url(delivery)


def test_tracked_link_is_stored_once_and_only_for_web_addresses(org):
    delivery, link = make_delivery(org)
    with tenant_context(org):
        again = links.tracked_link_for(delivery.campaign, "https://shop.example/new?utm=1")
        assert again.pk == link.pk
        assert TrackedLink.objects.filter(campaign=delivery.campaign).count() == 1
        for bad in ("javascript:alert(1)", "mailto:a@b.c", "//evil.example/", ""):
            with pytest.raises(Exception, match="web addresses"):
                links.tracked_link_for(delivery.campaign, bad)


# --- unsubscribe ----------------------------------------------------------------------


def test_get_asks_and_changes_nothing(org):
    delivery, _ = make_delivery(org)
    before = state(org, delivery)
    r = Client().get(path_of(links.unsubscribe_url(delivery)))
    assert r.status_code == 200
    page = r.content.decode()
    assert "Unsubscribe j•••e@example.com from Acme Gifts?" in page
    assert "jane.doe@example.com" not in page
    assert state(org, delivery) == before


def test_one_click_post_unsubscribes_and_the_history_records_it(org):
    delivery, _ = make_delivery(org)
    # a mail client: no cookie, no CSRF token, just the RFC 8058 body
    mail_client = Client(enforce_csrf_checks=True)
    r = mail_client.post(
        path_of(links.unsubscribe_url(delivery)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200
    after = state(org, delivery)
    assert after["accepts_email"] is False
    assert after["accepts_sms"] is True  # only the message's channel
    assert after["unsubscribed_at"] is not None
    assert after["history"] == [("email", False, ConsentVia.UNSUBSCRIBE)]
    assert after["events"] == ["unsubscribed"]
    with tenant_context(org):
        event = Event.objects.get(customer_id=delivery.customer_id, type="unsubscribed")
        assert event.properties["campaign_id"] == delivery.campaign_id
        assert event.properties["variant_id"] == delivery.variant_id

    # a second POST changes nothing
    r = mail_client.post(
        path_of(links.unsubscribe_url(delivery)),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200
    assert state(org, delivery) == after


def test_tampered_unsubscribe_answers_400_and_changes_nothing(org):
    delivery, _ = make_delivery(org)
    before = state(org, delivery)
    client = Client(enforce_csrf_checks=True)
    for path in (
        tamper(links.unsubscribe_url(delivery)),
        reverse("campaigns_public:unsubscribe", kwargs={"token": delivery.token}),
        reverse("campaigns_public:unsubscribe", kwargs={"token": "x" * 50}),
    ):
        assert client.post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 400
        assert client.get(path).status_code == 400
    # the open pixel's value is not an unsubscribe value
    pixel_value = path_of(links.open_pixel_url(delivery)).rstrip("/").rsplit("/", 1)[1]
    wrong_purpose = reverse("campaigns_public:unsubscribe", kwargs={"token": pixel_value})
    assert client.post(wrong_purpose).status_code == 400
    assert state(org, delivery) == before


def test_one_organisations_token_never_acts_on_anothers_customer(org, other_org):
    """The same person (same id and address) in two shops: A's link unsubscribes
    them from A only; a value naming B with A's delivery token (as if forged with
    the key) finds nothing in B."""
    delivery_a, link_a = make_delivery(org)
    delivery_b, link_b = make_delivery(other_org)
    before_b = state(other_org, delivery_b)

    client = Client(enforce_csrf_checks=True)
    assert client.post(path_of(links.unsubscribe_url(delivery_a))).status_code == 200
    assert state(org, delivery_a)["accepts_email"] is False
    assert state(other_org, delivery_b) == before_b

    # signed correctly but pairing B's organisation with A's delivery
    crossed = {
        purpose: links.make_token(
            purpose,
            organization_id=other_org.pk,
            delivery_token=delivery_a.token,
            extra=link_a.pk if purpose == links.CLICK else None,
        )
        for purpose in links.PURPOSES
    }
    r = client.post(
        reverse("campaigns_public:unsubscribe", kwargs={"token": crossed["unsubscribe"]})
    )
    assert r.status_code == 404
    r = client.get(
        reverse("campaigns_public:preferences", kwargs={"token": crossed["preferences"]})
    )
    assert r.status_code == 404
    r = client.get(reverse("campaigns_public:open", kwargs={"token": crossed["open"]}))
    assert r.status_code == 200 and r["Content-Type"] == "image/gif"
    r = client.get(reverse("campaigns_public:click", kwargs={"token": crossed["click"]}))
    assert r.status_code == 404  # A's link id does not exist in B
    # B's link id with A's delivery in A: the link is not A's campaign's
    mixed = links.make_token(
        links.CLICK, organization_id=org.pk, delivery_token=delivery_a.token, extra=link_b.pk
    )
    assert client.get(reverse("campaigns_public:click", kwargs={"token": mixed})).status_code == 404
    assert state(other_org, delivery_b) == before_b
    after_a = state(org, delivery_a)
    assert after_a["opened_at"] is None and after_a["clicked_at"] is None


def test_a_signed_in_member_of_another_organisation_changes_only_the_links_one(
    org, other_org, make_member
):
    """The scope comes from the link, not from whoever is signed in."""
    from accounts.models import Role

    delivery_a, _ = make_delivery(org)
    delivery_b, _ = make_delivery(other_org)
    before_b = state(other_org, delivery_b)
    client = Client()
    client.force_login(make_member(other_org, Role.OWNER))
    assert client.post(path_of(links.unsubscribe_url(delivery_a))).status_code == 200
    assert state(org, delivery_a)["accepts_email"] is False
    assert state(other_org, delivery_b) == before_b


def test_erased_persons_link_acts_on_nothing(org):
    delivery, _ = make_delivery(org)
    url = path_of(links.unsubscribe_url(delivery))
    with tenant_context(org):
        Delivery.objects.filter(pk=delivery.pk).delete()
    assert Client().post(url).status_code == 404


# --- preferences ----------------------------------------------------------------------


def test_preferences_withdraw_and_opt_back_in(org):
    delivery, _ = make_delivery(org)
    client = Client(enforce_csrf_checks=True)
    # one click first: the person's own withdrawal
    client.post(path_of(links.unsubscribe_url(delivery)))
    url = path_of(links.preferences_url(delivery))
    r = client.get(url)
    assert r.status_code == 200
    page = r.content.decode()
    assert "csrfmiddlewaretoken" in page and "Text messages (SMS)" in page
    # a POST without the form's CSRF token is refused
    assert client.post(url, {"email": "on", "sms": "on"}).status_code == 403
    assert state(org, delivery)["accepts_email"] is False
    csrf = client.cookies["csrftoken"].value
    r = client.post(url, {"email": "on", "csrfmiddlewaretoken": csrf})  # SMS left unticked
    assert r.status_code == 303
    after = state(org, delivery)
    assert after["accepts_email"] is True  # the person's own opt-in reverses the unsubscribe
    assert after["accepts_sms"] is False
    assert after["history"] == [
        ("sms", False, ConsentVia.PREFERENCE),
        ("email", True, ConsentVia.PREFERENCE),
        ("email", False, ConsentVia.UNSUBSCRIBE),
    ]
    assert "Your choices are saved." in client.get(r["Location"]).content.decode()
    # saving the same choices again records nothing new
    client.post(url, {"email": "on", "csrfmiddlewaretoken": csrf})
    assert state(org, delivery) == after


# --- open pixel and click ---------------------------------------------------------------


def test_pixel_records_one_open(org):
    delivery, _ = make_delivery(org)
    url = path_of(links.open_pixel_url(delivery))
    client = Client()
    for _ in range(3):
        r = client.get(url)
        assert r.status_code == 200
        assert r["Content-Type"] == "image/gif"
        assert r.content.startswith(b"GIF89a") and len(r.content) < 100
    after = state(org, delivery)
    assert after["opened_at"] is not None
    assert after["events"] == ["message_opened"]


def test_pixel_with_a_bad_value_still_answers_the_image_and_records_nothing(org):
    delivery, _ = make_delivery(org)
    before = state(org, delivery)
    for path in (
        tamper(links.open_pixel_url(delivery)),
        reverse("campaigns_public:open", kwargs={"token": "nonsense"}),
    ):
        r = Client().get(path)
        assert r.status_code == 200 and r["Content-Type"] == "image/gif"
    assert state(org, delivery) == before


def test_click_goes_only_to_the_stored_link(org):
    delivery, link = make_delivery(org)
    url = path_of(links.click_url(delivery, link))
    client = Client()
    r = client.get(url + "?url=https://evil.example/&next=https://evil.example/")
    assert r.status_code == 302
    assert r["Location"] == "https://shop.example/new?utm=1"
    r = client.get(url)
    assert r["Location"] == "https://shop.example/new?utm=1"
    after = state(org, delivery)
    assert after["clicked_at"] is not None and after["opened_at"] is not None
    # one click event per link, however often it is followed
    assert after["events"] == ["message_clicked", "message_opened"]
    with tenant_context(org):
        click = Event.objects.get(customer_id=delivery.customer_id, type="message_clicked")
        assert click.properties["link_id"] == link.pk
        assert click.properties["campaign_id"] == delivery.campaign_id
        # a second link of the same message is a second click event
        other = links.tracked_link_for(delivery.campaign, "https://shop.example/sale")
    r = client.get(path_of(links.click_url(delivery, other)))
    assert r["Location"] == "https://shop.example/sale"
    assert state(org, delivery)["events"].count("message_clicked") == 2


def test_tampered_click_answers_400_and_redirects_nowhere(org):
    delivery, link = make_delivery(org)
    before = state(org, delivery)
    r = Client().get(tamper(links.click_url(delivery, link)) + "?url=https://evil.example/")
    assert r.status_code == 400
    assert "Location" not in r
    assert "evil.example" not in r.content.decode()
    assert state(org, delivery) == before


def test_public_pages_fit_a_phone_and_load_nothing_from_elsewhere(org):
    delivery, _ = make_delivery(org)
    for url in (links.unsubscribe_url(delivery), links.preferences_url(delivery)):
        page = Client().get(path_of(url)).content.decode()
        assert 'name="viewport" content="width=device-width, initial-scale=1"' in page
        assert "<script" not in page
        assert "http://" not in page and "https://" not in page


# --- end to end with the send job ---------------------------------------------------------


def test_a_sent_emails_links_work_and_after_one_click_the_next_send_skips(org):
    import re

    from django.core import mail

    from campaigns import services
    from campaigns.tests import sendworld as w

    with tenant_context(org):
        people = w.customers(org, 2, "e2e")
        segment = w.segments(org, {"All": people})["All"]
        first = w.campaign(org, [segment.pk])
        services.campaign_send(organization=org, campaign=first, sync=True)
    message = {m.to[0]: m for m in mail.outbox}[people[0].email]
    html = message.alternatives[0][0]
    client = Client(enforce_csrf_checks=True)

    pixel = re.search(r'src="([^"]*/m/o/[^"]+)"', html).group(1)
    assert client.get(path_of(pixel))["Content-Type"] == "image/gif"
    click = re.search(r'href="([^"]*/m/c/[^"]+)"', html).group(1)
    assert client.get(path_of(click))["Location"] == "https://shop.example/new"
    unsubscribe = message.extra_headers["List-Unsubscribe"][1:-1]
    r = client.post(
        path_of(unsubscribe),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert r.status_code == 200
    with tenant_context(org):
        sent = Delivery.objects.get(campaign=first, customer=people[0])
        assert sent.opened_at and sent.clicked_at and sent.unsubscribed_at

        second = w.campaign(org, [segment.pk], name="Summer")
        services.campaign_send(organization=org, campaign=second, sync=True)
        skipped = Delivery.objects.get(campaign=second, customer=people[0])
        assert skipped.status == DeliveryStatus.SKIPPED
        assert skipped.skip_reason == "no_consent"
    later = [m.to[0] for m in mail.outbox[2:]]
    assert later == [people[1].email]
