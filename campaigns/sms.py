"""Sending SMS: a small backend interface chosen by settings.SMS_URL.

- `console://` (the default): the message is written to the log/console.
- `outbox://`: stored as an `OutboxMessage` of the organisation (the development
  outbox the site shows).
- `twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER`: Twilio's Messages API over HTTPS
  (form POST, basic auth). `?base=http://127.0.0.1:PORT` replaces the API's base
  URL (tests point it at a stub server on loopback).

`send_sms(*, to, text, organization, customer=None, delivery=None)` returns the
provider's message id. A number the provider refuses (invalid, not a mobile,
opted out) raises `SmsRefused`, naming the number: the sender records it and does
not retry. A provider that cannot be reached or answers 5xx raises
`SmsUnavailable`, which a job may retry.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings

from core.exceptions import ApplicationError

logger = logging.getLogger(__name__)

__all__ = ["SmsRefused", "SmsUnavailable", "get_backend", "send_sms"]

TWILIO_BASE = "https://api.twilio.com"
_NUMBER = re.compile(r"^\+?[0-9]{6,15}$")
# Twilio error codes meaning "this number will not take this message"
_REFUSED_CODES = {21211, 21214, 21217, 21408, 21610, 21612, 21614, 21635}


class SmsRefused(ApplicationError):
    def __init__(self, to: str, reason: str):
        super().__init__(
            f"The number {to} was refused: {reason}",
            {"to": [reason]},
            code="sms_refused",
            status=400,
        )
        self.to = to
        self.reason = reason


class SmsUnavailable(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="sms_unavailable", status=503)


def _normalise(to: str) -> str:
    number = re.sub(r"[\s().-]", "", str(to or ""))
    if number.startswith("00"):
        number = "+" + number[2:]
    if not _NUMBER.match(number):
        raise SmsRefused(str(to), "it is not a phone number (use the international form, +44...).")
    return number


@dataclass
class ConsoleSms:
    stream: object = None

    def send(self, *, to, text, organization, customer=None, delivery=None) -> str:
        message_id = f"console-{uuid.uuid4().hex[:16]}"
        out = self.stream or sys.stdout
        out.write(f"SMS to {to} ({message_id}):\n{text}\n{'-' * 40}\n")  # type: ignore[attr-defined]
        return message_id


class OutboxSms:
    def send(self, *, to, text, organization, customer=None, delivery=None) -> str:
        from accounts.tenancy import tenant_context
        from campaigns.models import OutboxMessage

        with tenant_context(organization):
            row = OutboxMessage.objects.create(
                organization_id=getattr(organization, "pk", organization),
                channel="sms",
                customer_id=getattr(customer, "pk", customer),
                delivery_id=getattr(delivery, "pk", delivery),
                to_address=to,
                text=text,
            )
        return f"outbox-{row.pk}"


@dataclass
class TwilioSms:
    account_sid: str
    auth_token: str
    from_number: str
    base_url: str = TWILIO_BASE
    timeout: float = 10.0

    def send(self, *, to, text, organization, customer=None, delivery=None) -> str:
        import httpx

        url = f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = httpx.post(
                url,
                data={"To": to, "From": self.from_number, "Body": text},
                auth=(self.account_sid, self.auth_token),
                timeout=self.timeout,
            )
        except httpx.HTTPError as exc:
            raise SmsUnavailable(f"The SMS provider could not be reached ({exc}).") from exc
        try:
            payload = response.json()
        except ValueError:
            payload = {}
        if response.status_code in (200, 201) and payload.get("sid"):
            return str(payload["sid"])
        reason = str(payload.get("message") or f"the provider answered {response.status_code}.")
        code = payload.get("code")
        if response.status_code >= 500 or response.status_code == 429:
            raise SmsUnavailable(f"The SMS provider is unavailable: {reason}")
        if response.status_code in (401, 403) and code not in _REFUSED_CODES:
            raise SmsUnavailable(f"The SMS provider refused the account's credentials: {reason}")
        raise SmsRefused(to, reason + (f" (error {code})" if code else ""))


def get_backend(url: str | None = None):
    """The backend named by `url` (default: settings.SMS_URL)."""
    url = url if url is not None else getattr(settings, "SMS_URL", "") or "console://"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "console":
        return ConsoleSms()
    if scheme == "outbox":
        return OutboxSms()
    if scheme == "twilio":
        # the netloc is SID:TOKEN@FROM; read it by hand ('+' in the number is not a host)
        creds, _, number = parts.netloc.rpartition("@")
        sid, _, token = creds.partition(":")
        if not (sid and token and number):
            raise ApplicationError(
                "SMS_URL for Twilio is twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER.",
                {"SMS_URL": ["twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER"]},
            )
        base = (parse_qs(parts.query).get("base") or [TWILIO_BASE])[0]
        return TwilioSms(unquote(sid), unquote(token), unquote(number), base_url=base)
    raise ApplicationError(
        f"SMS_URL {scheme}:// is not a known SMS service: use console://, outbox:// or "
        "twilio://ACCOUNT_SID:AUTH_TOKEN@FROM_NUMBER.",
        {"SMS_URL": ["unknown scheme"]},
    )


def send_sms(*, to: str, text: str, organization, customer=None, delivery=None) -> str:
    """Send one SMS; returns the provider's message id (see the module's docstring)."""
    number = _normalise(to)
    if not (text or "").strip():
        raise ApplicationError("An SMS needs some text.", {"text": ["empty"]})
    message_id = get_backend().send(
        to=number, text=text, organization=organization, customer=customer, delivery=delivery
    )
    logger.info(
        "sms_sent",
        extra={
            "organization_id": getattr(organization, "pk", organization),
            "customer_id": getattr(customer, "pk", customer),
            "message_id": message_id,
        },
    )
    return message_id
