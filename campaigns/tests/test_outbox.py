"""The development outbox: the email backend (campaigns/backends.py), the settings
that make it the development default, a real SMTP hand-off on loopback, and the
outbox pages."""

from __future__ import annotations

import email
import email.policy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.urls import reverse

from accounts.tenancy import tenant_context
from campaigns.backends import CUSTOMER_HEADER, DELIVERY_HEADER, ORG_HEADER, OutboxEmailBackend
from campaigns.models import OutboxMessage

ROOT = Path(__file__).resolve().parents[2]
UNSUB = {
    "List-Unsubscribe": "<https://app.test/m/u/TOKEN/>",
    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
}


def _message(to="ana@example.com", subject="Spring news", headers=None):
    msg = EmailMultiAlternatives(
        subject=subject,
        body="Hello Ana\n\nSee https://shop.example/new",
        from_email="Acme Gifts <shop@acme.test>",
        to=[to],
        headers={**UNSUB, **(headers or {})},
    )
    msg.attach_alternative("<p>Hello <b>Ana</b></p>", "text/html")
    return msg


def _customer(org, external_id="c1"):
    from customers.models import Customer

    with tenant_context(org):
        return Customer.objects.create(
            organization=org, external_id=external_id, email="ana@example.com"
        )


def _delivery(org, customer):
    from campaigns.models import Campaign, Delivery

    with tenant_context(org):
        campaign = Campaign.objects.create(organization=org, name="Spring")
        return Delivery.objects.create(
            organization=org, campaign=campaign, customer=customer, channel="email",
            status="queued", token="t" * 32,
        )  # fmt: skip


# --- the backend ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_outbox_backend_stores_the_message_in_the_current_organisation(org, other_org):
    person = _customer(org)
    delivery = _delivery(org, person)
    with tenant_context(org):
        sent = OutboxEmailBackend().send_messages(
            [_message(headers={CUSTOMER_HEADER: str(person.pk), DELIVERY_HEADER: str(delivery.pk)})]
        )
        (row,) = OutboxMessage.objects.all()
    assert sent == 1
    assert row.organization_id == org.pk
    assert (row.channel, row.to_address, row.subject) == ("email", "ana@example.com", "Spring news")
    assert row.text == "Hello Ana\n\nSee https://shop.example/new"
    assert row.html == "<p>Hello <b>Ana</b></p>"
    assert (row.customer_id, row.delivery_id) == (person.pk, delivery.pk)
    assert row.headers["List-Unsubscribe"] == "<https://app.test/m/u/TOKEN/>"
    assert row.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert row.headers["From"] == "Acme Gifts <shop@acme.test>"
    assert not any(k.lower().startswith("x-segmenta") for k in row.headers)
    with tenant_context(other_org):
        assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_outbox_header_names_the_organisation_outside_any_scope(org, other_org):
    stranger = _customer(other_org, "theirs")
    sent = OutboxEmailBackend().send_messages(
        [_message(headers={ORG_HEADER: str(org.pk), CUSTOMER_HEADER: str(stranger.pk)})]
    )
    assert sent == 1
    with tenant_context(org):
        (row,) = OutboxMessage.objects.all()
    # another organisation's customer id is ignored, never linked
    assert row.customer_id is None


@pytest.mark.django_db
def test_outbox_header_cannot_cross_into_another_organisation(org, other_org):
    with tenant_context(org), pytest.raises(ValueError, match="organisation"):
        OutboxEmailBackend().send_messages([_message(headers={ORG_HEADER: str(other_org.pk)})])
    with tenant_context(other_org):
        assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_mail_with_no_organisation_goes_to_the_console(capsys):
    sent = OutboxEmailBackend().send_messages([_message(subject="Confirm your address")])
    assert sent == 1
    assert "Confirm your address" in capsys.readouterr().out
    assert OutboxMessage.all_objects.count() == 0


@pytest.mark.django_db
def test_django_send_mail_through_the_outbox_backend(org, settings):
    settings.EMAIL_BACKEND = "campaigns.backends.OutboxEmailBackend"
    from campaigns.backends import outbox_headers

    with tenant_context(org):
        mail.send_mail("Via Django", "Plain body", "shop@acme.test", ["bo@example.com"])
        row = OutboxMessage.objects.get()
    assert (row.subject, row.text, row.to_address) == ("Via Django", "Plain body", "bo@example.com")
    assert outbox_headers(organization_id=org.pk, customer_id=5) == {
        ORG_HEADER: str(org.pk),
        CUSTOMER_HEADER: "5",
    }
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    assert outbox_headers(organization_id=org.pk, customer_id=5) == {}  # never sent out


# --- settings -------------------------------------------------------------------------------
def _email_backend(**env_overrides) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("EMAIL_URL", "DJANGO_ENV")}
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    out = subprocess.run(  # noqa: S603 - our own interpreter, fixed arguments
        [sys.executable, "-c", "from django.conf import settings; print(settings.EMAIL_BACKEND)"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def test_development_mail_goes_to_the_outbox_unless_email_url_says_otherwise(tmp_path):
    var = {"SEGMENTA_VAR_DIR": str(tmp_path)}
    assert (
        _email_backend(DJANGO_ENV="development", **var) == "campaigns.backends.OutboxEmailBackend"
    )
    assert (
        _email_backend(DJANGO_ENV="development", EMAIL_URL="consolemail://", **var)
        == "django.core.mail.backends.console.EmailBackend"
    )
    assert _email_backend(DJANGO_ENV="test", **var) != "campaigns.backends.OutboxEmailBackend"


def test_tests_use_the_locmem_backend(settings):
    assert settings.EMAIL_BACKEND == "django.core.mail.backends.locmem.EmailBackend"


# --- a real SMTP server on loopback -----------------------------------------------------------
class _Collect:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_email_through_a_real_smtp_server_keeps_list_unsubscribe():
    from aiosmtpd.controller import Controller
    from django.core.mail.backends.smtp import EmailBackend as SMTPBackend

    handler = _Collect()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        backend = SMTPBackend(host="127.0.0.1", port=controller.port, use_tls=False, timeout=10)
        assert backend.send_messages([_message(to="ana@example.com")]) == 1
    finally:
        controller.stop()
    (envelope,) = handler.envelopes
    assert envelope.rcpt_tos == ["ana@example.com"]
    assert envelope.mail_from == "shop@acme.test"
    parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert parsed["List-Unsubscribe"] == "<https://app.test/m/u/TOKEN/>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Subject"] == "Spring news"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hello <b>Ana</b></p>"
    assert "See https://shop.example/new" in parsed.get_body(("plain",)).get_content()


# --- the pages ----------------------------------------------------------------------------------
@pytest.mark.django_db
def test_outbox_page_lists_the_organisations_messages_newest_first(owner_client, org, other_org):
    import datetime as dt

    from django.utils import timezone

    now = timezone.now()
    with tenant_context(org):
        for i, subject in enumerate(["Oldest note", "Middle note", "Newest note"]):
            OutboxMessage.objects.create(
                organization=org, channel="email", to_address=f"p{i}@example.com",
                subject=subject, text="t", created_at=now - dt.timedelta(hours=3 - i),
            )  # fmt: skip
        OutboxMessage.objects.create(
            organization=org, channel="sms", to_address="+447700900123", text="Sale today only",
            created_at=now - dt.timedelta(hours=5),
        )  # fmt: skip
    with tenant_context(other_org):
        OutboxMessage.objects.create(
            organization=other_org,
            channel="email",
            to_address="x@rival.test",
            subject="Rival secret",
        )
    page = owner_client.get(reverse("campaigns:outbox")).content.decode()
    assert page.index("Newest note") < page.index("Middle note") < page.index("Oldest note")
    assert page.index("Oldest note") < page.index("Sale today only")
    assert "Rival secret" not in page
    sms_only = owner_client.get(reverse("campaigns:outbox") + "?channel=sms").content.decode()
    assert "Sale today only" in sms_only and "Newest note" not in sms_only


@pytest.mark.django_db
def test_outbox_message_page_shows_a_sandboxed_preview_and_the_text(owner_client, org, other_org):
    html = '<html><body><p>Hi "Ana"</p><script>alert(1)</script></body></html>'
    with tenant_context(org):
        row = OutboxMessage.objects.create(
            organization=org, channel="email", to_address="ana@example.com", subject="Spring news",
            text="Hi Ana\nSee you", html=html, headers=UNSUB,
        )  # fmt: skip
    with tenant_context(other_org):
        theirs = OutboxMessage.objects.create(
            organization=other_org, channel="email", to_address="x@rival.test", subject="Rival"
        )
    r = owner_client.get(reverse("campaigns:outbox_message", args=[row.pk]))
    assert r.status_code == 200
    page = r.content.decode()
    assert "Spring news" in page
    assert 'sandbox=""' in page
    # the message's HTML is only inside the frame's srcdoc, escaped: never live in the page
    assert (
        'srcdoc="&lt;html&gt;&lt;body&gt;&lt;p&gt;Hi &quot;Ana&quot;&lt;/p&gt;&lt;script&gt;'
        in page
    )
    assert "<script>alert(1)</script>" not in page
    assert "Hi Ana\nSee you" in page
    assert "https://app.test/m/u/TOKEN/" in page  # the List-Unsubscribe header is shown
    assert (
        owner_client.get(reverse("campaigns:outbox_message", args=[theirs.pk])).status_code == 404
    )


@pytest.mark.django_db
def test_outbox_needs_a_member(client, org):
    r = client.get(reverse("campaigns:outbox"))
    assert r.status_code in (302, 403)
