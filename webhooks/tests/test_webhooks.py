"""Webhooks: registered through the API, emitted from the places that change data,
sent by the worker's task to a real HTTP server, signed, retried and logged."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.test import APIClient

from accounts.tenancy import tenant_context
from accounts.tests.factories import make_api_key
from core.exceptions import ApplicationError
from webhooks.events import emit
from webhooks.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from webhooks.services import SIGNATURE_HEADER, signature_verify, url_check


class Receiver:
    """A local HTTP server answering with the statuses given, in turn (then 200)."""

    def __init__(self, statuses=()):
        self.statuses = list(statuses)
        self.received: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"headers": dict(self.headers), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=()):
        r = Receiver(statuses)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _register(api, url, types=("import.finished", "job.failed", "customer.erased")):
    response = api.post(
        "/api/v1/webhooks/", {"url": url, "event_types": list(types)}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_delivery_is_signed_and_logged(api, org, receiver, django_capture_on_commit_callbacks):
    hook = receiver()
    created = _register(api, hook.url)
    assert created["secret"].startswith("whsec_")
    assert "secret" not in api.get(f"/api/v1/webhooks/{created['id']}/").json()

    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert emit(org, "import.finished", {"import_id": 7, "job_id": 9}) == 1
    # nothing is sent from the caller: the delivery waits for the worker
    assert hook.received == []
    for callback in queued:
        callback()  # the worker's task (eager in tests)

    assert len(hook.received) == 1
    got = hook.received[0]
    assert signature_verify(created["secret"], got["headers"][SIGNATURE_HEADER], got["body"])
    assert not signature_verify("whsec_wrong", got["headers"][SIGNATURE_HEADER], got["body"])
    tampered = got["body"].replace(b'"import_id":7', b'"import_id":8')
    assert not signature_verify(created["secret"], got["headers"][SIGNATURE_HEADER], tampered)
    body = json.loads(got["body"])
    assert body["type"] == "import.finished"
    assert body["data"] == {"import_id": 7, "job_id": 9}
    assert got["headers"]["Segmenta-Event"] == "import.finished"

    log = api.get(f"/api/v1/webhooks/{created['id']}/deliveries/").json()["results"]
    assert [(d["status"], d["attempts"], d["response_status"]) for d in log] == [
        ("succeeded", 1, 200)
    ]
    assert log[0]["log"][0]["status"] == 200


def test_failure_is_retried_with_backoff_and_logged(
    api, org, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_MAX_ATTEMPTS = 4
    hook = receiver(statuses=[500, 503])
    created = _register(api, hook.url)
    with django_capture_on_commit_callbacks(execute=True):
        emit(org, "job.failed", {"job_id": 1, "kind": "segments"})
    assert len(hook.received) == 3  # two failures, then the receiver took it
    # the same event each time, so the receiver can drop repeats
    assert len({json.loads(r["body"])["id"] for r in hook.received}) == 1
    with tenant_context(org):
        delivery = WebhookDelivery.objects.get(endpoint_id=created["id"])
    assert delivery.status == DeliveryStatus.SUCCEEDED
    assert delivery.attempts == 3
    assert [a["status"] for a in delivery.log] == [500, 503, 200]
    assert delivery.log[0]["error"] == "The receiver answered 500."


def test_gives_up_after_the_last_attempt(
    api, org, receiver, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS_MAX_ATTEMPTS = 2
    hook = receiver(statuses=[500, 500, 500])
    created = _register(api, hook.url)
    with django_capture_on_commit_callbacks(execute=True):
        emit(org, "job.failed", {"job_id": 1})
    assert len(hook.received) == 2
    with tenant_context(org):
        delivery = WebhookDelivery.objects.get(endpoint_id=created["id"])
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)


def test_send_test_button_and_api(
    owner_client, api, org, receiver, django_capture_on_commit_callbacks
):
    hook = receiver()
    created = _register(api, hook.url)
    with django_capture_on_commit_callbacks(execute=True):
        page = owner_client.post(f"/settings/webhooks/{created['id']}/test/", follow=True)
    assert page.status_code == 200
    assert [json.loads(r["body"])["type"] for r in hook.received] == ["webhook.test"]
    assert (
        "Delivered" in page.content.decode()
        or "Delivered" in owner_client.get(f"/settings/webhooks/{created['id']}/").content.decode()
    )
    with django_capture_on_commit_callbacks(execute=True):
        answer = api.post(f"/api/v1/webhooks/{created['id']}/test/")
    assert answer.status_code == 202
    assert len(hook.received) == 2


def test_emit_is_a_no_op_without_endpoints(org, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert emit(org, "import.finished", {"import_id": 1}) == 0
    assert queued == []
    with tenant_context(org):
        assert not WebhookDelivery.objects.exists()


def test_only_the_types_asked_for_and_only_active_endpoints(api, org, receiver):
    hook = receiver()
    created = _register(api, hook.url, types=["customer.erased"])
    assert emit(org, "import.finished", {"import_id": 1}) == 0
    assert emit(org, "customer.erased", {"customer_id": 1}) == 1
    api.patch(f"/api/v1/webhooks/{created['id']}/", {"is_active": False}, format="json")
    assert emit(org, "customer.erased", {"customer_id": 2}) == 0


def test_events_stay_in_their_organisation(api, org, other_org, receiver):
    hook = receiver()
    created = _register(api, hook.url)
    assert emit(other_org, "import.finished", {"import_id": 1}) == 0
    _, raw = make_api_key(other_org, "write")
    other = APIClient()
    other.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    assert other.get("/api/v1/webhooks/").json()["results"] == []
    assert other.get(f"/api/v1/webhooks/{created['id']}/deliveries/").status_code == 404
    assert other.post(f"/api/v1/webhooks/{created['id']}/test/").status_code == 404


def test_read_key_cannot_register(api_read):
    answer = api_read.post(
        "/api/v1/webhooks/", {"url": "https://a.example/", "event_types": ["job.failed"]}
    )
    assert answer.status_code == 403


def test_event_types_checked(api):
    bad = api.post(
        "/api/v1/webhooks/",
        {"url": "https://a.example/", "event_types": ["audience.made_up"]},
        format="json",
    )
    assert bad.status_code == 400
    assert "event_types" in bad.json()["error"]["fields"]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http://127.0.0.1:8000/x",
        "http://localhost/x",
        "http://10.1.2.3/x",
        "http://192.168.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://0.0.0.0/x",
        "https://user:pw@example.com/x",
    ],
)
def test_private_and_odd_urls_refused_in_production(url, settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    with pytest.raises(ApplicationError):
        url_check(url)


def test_public_address_accepted(settings):
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    assert url_check("https://93.184.215.14/hook") == "https://93.184.215.14/hook"


def test_delivery_to_a_private_address_is_refused_at_send_time(
    api, org, receiver, settings, django_capture_on_commit_callbacks
):
    """A URL accepted earlier (or a host that now resolves inside) is checked again."""
    settings.WEBHOOKS_MAX_ATTEMPTS = 1
    hook = receiver()
    created = _register(api, hook.url)
    settings.WEBHOOKS_ALLOW_PRIVATE_URLS = False
    with django_capture_on_commit_callbacks(execute=True):
        emit(org, "job.failed", {"job_id": 1})
    assert hook.received == []
    with tenant_context(org):
        delivery = WebhookDelivery.objects.get(endpoint_id=created["id"])
    assert delivery.status == DeliveryStatus.FAILED
    assert "private or local" in delivery.error


def test_failed_job_and_erasure_emit(api, org, receiver, django_capture_on_commit_callbacks):
    """The existing places emit: a job that fails, a customer erased."""
    from core.jobs import job_start
    from core.tests.test_jobs import fail_unexpectedly
    from customers.services import customer_erase
    from customers.tests.factories import CustomerFactory

    hook = receiver()
    _register(api, hook.url, types=["job.failed", "customer.erased"])
    with tenant_context(org), django_capture_on_commit_callbacks(execute=True):
        job = job_start(organization=org, kind="import", task=fail_unexpectedly, sync=True)
        customer = CustomerFactory(email="gone@example.com")
        customer_erase(customer=customer)
    bodies = [json.loads(r["body"]) for r in hook.received]
    by_type = {b["type"]: b["data"] for b in bodies}
    assert by_type["job.failed"]["job_id"] == job.pk
    assert by_type["job.failed"] == {"job_id": job.pk, "kind": "import", "failed_step": "starting"}
    assert by_type["customer.erased"] == {
        "customer_id": customer.pk,
        "erased_at": by_type["customer.erased"]["erased_at"],
    }
    assert b"gone@example.com" not in b"".join(r["body"] for r in hook.received)


def test_site_page_lists_and_adds(owner_client, org):
    page = owner_client.get("/settings/webhooks/")
    assert page.status_code == 200
    added = owner_client.post(
        "/settings/webhooks/",
        {"url": "https://hooks.example.com/x", "event_types": ["import.finished"]},
    )
    assert added.status_code == 302
    with tenant_context(org):
        assert WebhookEndpoint.objects.get().event_types == ["import.finished"]
