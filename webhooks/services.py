"""Webhook endpoints: registering them (with the URL checked), signing and sending.

Signature (documented in docs/contract.md, Webhooks): every delivery carries
`Segmenta-Signature: t=<unix seconds>,v1=<hex>` where `<hex>` is
HMAC-SHA256(endpoint secret, "<t>." + raw body). Receivers recompute it, compare
in constant time and refuse timestamps older than five minutes.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from accounts.actor import Actor
from accounts.models import Role
from accounts.tenancy import scope_check
from core.exceptions import ApplicationError

from .events import EVENT_TYPES, RESERVED_EVENT_TYPES, SUBSCRIBABLE, emit
from .models import DeliveryStatus, WebhookDelivery, WebhookEndpoint

log = logging.getLogger("segmenta.webhooks")

SIGNATURE_HEADER = "Segmenta-Signature"
TIMEOUT_SECONDS = 10
MAX_ENDPOINTS = 20


# --- URL safety (SSRF) ----------------------------------------------------------------------
def _address_refused(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def url_check(url: str, *, resolve: bool = True) -> str:
    """The URL if deliveries may go there, else an ApplicationError naming why: only
    http(s), a host, and (unless WEBHOOKS_ALLOW_PRIVATE_URLS, on outside production)
    no address that is loopback, private, link-local or otherwise not public, so a
    webhook cannot reach the machine's own services or the internal network."""
    url = (url or "").strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ApplicationError(
            "The URL must start with https:// (or http://) and name a host.",
            {"fields": {"url": "Not an http(s) URL."}},
        )
    if parts.username or parts.password:
        raise ApplicationError(
            "Put no user name or password in the URL; check the signature instead.",
            {"fields": {"url": "Credentials in the URL."}},
        )
    if len(url) > 500:
        raise ApplicationError(
            "The URL is longer than 500 characters.", {"fields": {"url": "Too long."}}
        )
    if settings.WEBHOOKS_ALLOW_PRIVATE_URLS:
        return url
    host = parts.hostname
    try:
        addresses = [host] if _is_ip(host) else _resolve(host, parts.port) if resolve else []
    except OSError:
        raise ApplicationError(
            f"The host {host} could not be found.", {"fields": {"url": "Unknown host."}}
        ) from None
    if host.lower() in ("localhost",) or any(_address_refused(a) for a in addresses):
        raise ApplicationError(
            "The URL points to a private or local address; webhooks go only to public addresses.",
            {"fields": {"url": "Private or local address."}},
        )
    return url


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int | None) -> list[str]:
    return sorted({str(info[4][0]) for info in socket.getaddrinfo(host, port or 443)})


def _event_types_check(types) -> list[str]:
    if not isinstance(types, list | tuple) or not types:
        raise ApplicationError(
            "Choose at least one event type.", {"fields": {"event_types": "Required."}}
        )
    chosen = []
    for name in types:
        if name in RESERVED_EVENT_TYPES:
            raise ApplicationError(
                f"'{name}' is not sent yet ({RESERVED_EVENT_TYPES[name]}).",
                {"fields": {"event_types": f"{name} is not sent yet."}},
            )
        if name not in SUBSCRIBABLE:
            raise ApplicationError(
                f"Unknown event type '{name}'. Known: {', '.join(SUBSCRIBABLE)}.",
                {"fields": {"event_types": f"Unknown type {name}."}},
            )
        if name not in chosen:
            chosen.append(name)
    return chosen


# --- endpoints ------------------------------------------------------------------------------
def _require(actor, organization) -> None:
    if actor is not None:
        Actor.of(actor, organization=organization).require(Role.MARKETER)


def endpoint_create(
    *, organization, url: str, event_types, description: str = "", actor=None, request=None
) -> WebhookEndpoint:
    from accounts.services import audit_log

    scope_check(organization=organization)
    _require(actor, organization)
    url = url_check(url)
    types = _event_types_check(event_types)
    if WebhookEndpoint.objects.count() >= MAX_ENDPOINTS:
        raise ApplicationError(f"An organisation may register at most {MAX_ENDPOINTS} endpoints.")
    endpoint = WebhookEndpoint.objects.create(
        organization=organization,
        url=url,
        event_types=types,
        description=(description or "").strip()[:200],
    )
    audit_log(
        organization=organization,
        action="webhook_created",
        actor=actor,
        target=url,
        details={"event_types": types},
        request=request,
    )
    return endpoint


def endpoint_update(*, endpoint: WebhookEndpoint, actor=None, request=None, **changes):
    _require(actor, endpoint.organization)
    if "url" in changes:
        endpoint.url = url_check(changes["url"])
    if "event_types" in changes:
        endpoint.event_types = _event_types_check(changes["event_types"])
    if "description" in changes:
        endpoint.description = (changes["description"] or "").strip()[:200]
    if "is_active" in changes:
        endpoint.is_active = bool(changes["is_active"])
    endpoint.save()
    return endpoint


def endpoint_delete(*, endpoint: WebhookEndpoint, actor=None, request=None) -> None:
    from accounts.services import audit_log

    _require(actor, endpoint.organization)
    audit_log(
        organization=endpoint.organization,
        action="webhook_deleted",
        actor=actor,
        target=endpoint.url,
        request=request,
    )
    endpoint.delete()


def endpoint_send_test(*, endpoint: WebhookEndpoint, actor=None) -> WebhookDelivery:
    """Queue a `webhook.test` event to this endpoint alone (the worker sends it)."""
    from .events import _queue, new_event

    _require(actor, endpoint.organization)
    body = new_event(endpoint.organization_id, "webhook.test", {"endpoint_id": endpoint.pk})
    delivery = WebhookDelivery.objects.create(
        organization_id=endpoint.organization_id,
        endpoint=endpoint,
        event_id=body["id"],
        event_type="webhook.test",
        payload=body,
    )
    from django.db import transaction

    transaction.on_commit(lambda: _queue(endpoint.organization_id, [delivery.pk]))
    return delivery


# --- signing and sending --------------------------------------------------------------------
def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def signature_verify(secret: str, header: str, body: bytes, *, tolerance: int = 300) -> bool:
    """What a receiver does (also used by the tests)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a redirect is an answer, not followed
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def backoff_seconds(attempt: int) -> int:
    """Wait before attempt `attempt + 1`: 30 s, 2 min, 8 min, 32 min, then 2 h 8 min…"""
    return min(settings.WEBHOOKS_RETRY_BASE_SECONDS * 4 ** (attempt - 1), 6 * 3600)


def delivery_attempt(delivery: WebhookDelivery) -> bool:
    """Send the delivery once, log the attempt and decide what follows: True when the
    receiver answered 2xx. The URL is checked again (its host may resolve elsewhere now)."""
    endpoint = delivery.endpoint
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    started = time.monotonic()
    status_code, error = None, ""
    try:
        url_check(endpoint.url)
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            endpoint.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "Segmenta-Webhooks/1",
                "Segmenta-Event": delivery.event_type,
                "Segmenta-Event-Id": delivery.event_id,
                "Segmenta-Delivery": str(delivery.pk),
                SIGNATURE_HEADER: sign(endpoint.secret, timestamp, body),
            },
        )
        with _opener.open(request, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            status_code = response.status
    except urllib.error.HTTPError as exc:
        status_code = exc.code
        error = f"The receiver answered {exc.code}."
    except ApplicationError as exc:
        error = exc.message
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        error = f"Could not reach the receiver: {reason}"[:300]
    ok = status_code is not None and 200 <= status_code < 300
    if status_code is not None and not ok and not error:
        error = f"The receiver answered {status_code}."
    now = timezone.now()
    delivery.attempts += 1
    delivery.response_status = status_code
    delivery.error = error[:300]
    delivery.log = [
        *delivery.log,
        {
            "at": now.isoformat(),
            "status": status_code,
            "error": error[:300],
            "ms": int((time.monotonic() - started) * 1000),
        },
    ]
    if ok:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            DeliveryStatus.SUCCEEDED,
            now,
            None,
        )
    elif delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
        delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
    else:
        delivery.status = DeliveryStatus.RETRYING
        delivery.next_attempt_at = now + timedelta(seconds=backoff_seconds(delivery.attempts))
    delivery.save()
    log.info(
        "webhooks.attempt delivery=%s status=%s ok=%s attempts=%s",
        delivery.pk,
        status_code,
        ok,
        delivery.attempts,
    )
    return ok


# --- suspended organisations (accounts/suspension.py) ---------------------------------------
def organization_is_active(organization_id: int) -> bool:
    from accounts.suspension import organization_is_active as active

    return active(organization_id)


def delivery_hold(delivery: WebhookDelivery) -> None:
    """Hold a delivery of a suspended organisation: not attempted, its attempts and
    status unchanged, sent again when the organisation is reactivated."""
    if delivery.held_since is None:
        delivery.held_since = timezone.now()
        delivery.save(update_fields=["held_since"])
    log.info("webhooks.held delivery=%s org=%s", delivery.pk, delivery.organization_id)


def deliveries_resume(organization) -> int:
    """Send again every delivery held while the organisation was suspended (once it is
    active again; once each, even when two callers resume at the same time: each row
    is taken back with a conditional UPDATE). Queued when the transaction commits."""
    from django.db import transaction

    from accounts.tenancy import tenant_context

    from .events import _queue

    org_id = getattr(organization, "pk", organization)
    if not organization_is_active(org_id):
        return 0
    with tenant_context(org_id):
        held = list(
            WebhookDelivery.objects.filter(held_since__isnull=False)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        taken = [
            pk
            for pk in held
            if WebhookDelivery.objects.filter(pk=pk, held_since__isnull=False).update(
                held_since=None
            )
        ]
    if taken:
        transaction.on_commit(lambda: _queue(org_id, taken))
        log.info("webhooks.resumed org=%s deliveries=%s", org_id, len(taken))
    return len(taken)


__all__ = ["EVENT_TYPES", "deliveries_resume", "emit"]
