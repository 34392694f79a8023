"""SMS backends (campaigns/sms.py): console, the development outbox, and Twilio's
Messages API against a stub HTTP server on loopback started here."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from accounts.tenancy import tenant_context
from campaigns import sms
from campaigns.models import OutboxMessage
from core.exceptions import ApplicationError


class StubTwilio(BaseHTTPRequestHandler):
    """Answers like the Messages API: 201 with a sid, or 400 with Twilio's error
    for the planted invalid number, or 503 for the planted outage number."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        auth = base64.b64decode(self.headers["Authorization"].split()[1]).decode()
        StubTwilio.received.append({"path": self.path, "form": form, "auth": auth})
        if form["To"] == "+15005550001":
            status, body = 400, {"code": 21211, "message": "The 'To' number +15005550001 is not a valid phone number.", "status": 400}  # fmt: skip
        elif form["To"] == "+15005550009":
            status, body = 503, {"code": 20503, "message": "Service unavailable", "status": 503}
        else:
            status, body = 201, {"sid": "SM" + "a" * 32, "status": "queued", "to": form["To"]}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub_twilio():
    StubTwilio.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), StubTwilio)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_twilio_sends_the_form_with_basic_auth(org, settings, stub_twilio):
    settings.SMS_URL = f"twilio://AC123:sekret@+15550001111?base={stub_twilio}"
    message_id = sms.send_sms(to="+44 7700 900123", text="Hi Ana", organization=org)
    assert message_id == "SM" + "a" * 32
    (request,) = StubTwilio.received
    assert request["path"] == "/2010-04-01/Accounts/AC123/Messages.json"
    assert request["form"] == {"To": "+447700900123", "From": "+15550001111", "Body": "Hi Ana"}
    assert request["auth"] == "AC123:sekret"


def test_twilio_refused_number_raises_a_clear_error(org, settings, stub_twilio):
    settings.SMS_URL = f"twilio://AC123:sekret@+15550001111?base={stub_twilio}"
    with pytest.raises(sms.SmsRefused) as err:
        sms.send_sms(to="+15005550001", text="Hi", organization=org)
    assert "+15005550001" in err.value.message and "not a valid phone number" in err.value.message
    assert "21211" in err.value.message
    assert isinstance(err.value, ApplicationError)


def test_twilio_outage_is_retryable_not_a_refusal(org, settings, stub_twilio):
    settings.SMS_URL = f"twilio://AC123:sekret@+15550001111?base={stub_twilio}"
    with pytest.raises(sms.SmsUnavailable):
        sms.send_sms(to="+15005550009", text="Hi", organization=org)


def test_unreachable_provider_is_unavailable(org, settings):
    # a loopback port nobody listens on
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.SMS_URL = f"twilio://AC1:t@+15550001111?base=http://127.0.0.1:{port}"
    with pytest.raises(sms.SmsUnavailable):
        sms.send_sms(to="+447700900123", text="Hi", organization=org)


def test_not_a_number_is_refused_before_any_request(org, settings, stub_twilio):
    settings.SMS_URL = f"twilio://AC123:sekret@+15550001111?base={stub_twilio}"
    for bad in ("", "hello", "12", "+44 7700 900123 ext 5"):
        with pytest.raises(sms.SmsRefused):
            sms.send_sms(to=bad, text="Hi", organization=org)
    assert StubTwilio.received == []


def test_console_backend_is_the_default(org, settings, capsys):
    settings.SMS_URL = "console://"
    message_id = sms.send_sms(to="0044 7700 900123", text="Hello there", organization=org)
    assert message_id.startswith("console-")
    out = capsys.readouterr().out
    assert "SMS to +447700900123" in out and "Hello there" in out


@pytest.mark.django_db
def test_outbox_backend_keeps_the_message_for_the_organisation(org, other_org, settings):
    from customers.models import Customer

    settings.SMS_URL = "outbox://"
    with tenant_context(org):
        person = Customer.objects.create(organization=org, external_id="p1", phone="+447700900123")
    message_id = sms.send_sms(to=person.phone, text="Your order", organization=org, customer=person)
    with tenant_context(org):
        (row,) = OutboxMessage.objects.all()
    assert message_id == f"outbox-{row.pk}"
    assert (row.channel, row.to_address, row.text, row.customer_id) == (
        "sms", "+447700900123", "Your order", person.pk
    )  # fmt: skip
    with tenant_context(other_org):
        assert not OutboxMessage.objects.exists()


def test_bad_sms_url_is_explained(settings):
    with pytest.raises(ApplicationError, match="not a known SMS service"):
        sms.get_backend("pigeon://coop")
    with pytest.raises(ApplicationError, match="twilio://ACCOUNT_SID"):
        sms.get_backend("twilio://nocreds")
    backend = sms.get_backend("twilio://AC9:p%40ss@+15550001111")
    assert (backend.account_sid, backend.auth_token, backend.from_number) == (
        "AC9", "p@ss", "+15550001111"
    )  # fmt: skip
    assert backend.base_url == sms.TWILIO_BASE
