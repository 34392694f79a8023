"""The development outbox as a Django email backend.

`OutboxEmailBackend` stores each message as an `OutboxMessage` of its organisation
instead of handing it to a mail server; the owner reads it on the site's outbox
page. It is the default in development when EMAIL_URL is not set
(config/settings.py).

The organisation is the current tenant scope (the send job runs in it); a message
sent outside any scope (a management command) may name it in the header
`X-Segmenta-Org`. `X-Segmenta-Customer` and `X-Segmenta-Delivery` tie the message
to its customer and delivery. These headers are read and stripped, never stored;
a header naming another organisation than the current scope is refused, and ids
of another organisation's customer or delivery are ignored. A message with no
organisation at all (a sign-up or password email in development) is written to
the console as Django's console backend would.
"""

from __future__ import annotations

import logging

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

from accounts.tenancy import bypass_active, current_organization_id, tenant_context

logger = logging.getLogger(__name__)

ORG_HEADER = "X-Segmenta-Org"
CUSTOMER_HEADER = "X-Segmenta-Customer"
DELIVERY_HEADER = "X-Segmenta-Delivery"
PRIVATE_HEADERS = (ORG_HEADER, CUSTOMER_HEADER, DELIVERY_HEADER)


def outbox_headers(*, organization_id: int, customer_id=None, delivery_id=None) -> dict:
    """The headers a sender sets so the outbox files a message under the right
    organisation, customer and delivery (stripped before storing). Empty when mail
    goes to a real server, so internal ids never leave in a message."""
    from django.conf import settings

    if settings.EMAIL_BACKEND != "campaigns.backends.OutboxEmailBackend":
        return {}
    headers = {ORG_HEADER: str(organization_id)}
    if customer_id:
        headers[CUSTOMER_HEADER] = str(customer_id)
    if delivery_id:
        headers[DELIVERY_HEADER] = str(delivery_id)
    return headers


def _pop_header(headers: dict, name: str) -> int | None:
    value = None
    for key in [k for k in headers if k.lower() == name.lower()]:
        value = headers.pop(key)
    try:
        return int(str(value).strip()) if value not in (None, "") else None
    except ValueError:
        return None


def _html_of(message) -> str:
    if getattr(message, "content_subtype", "") == "html":
        return str(message.body)
    for alternative in getattr(message, "alternatives", None) or []:
        content, mimetype = alternative[0], alternative[1]
        if mimetype == "text/html":
            return content.decode() if isinstance(content, bytes) else str(content)
    return ""


class OutboxEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages) -> int:
        sent = 0
        for message in email_messages:
            if self._store(message):
                sent += 1
        return sent

    def _store(self, message) -> bool:
        from campaigns.models import Delivery, OutboxMessage
        from customers.models import Customer

        headers = {str(k): str(v) for k, v in (message.extra_headers or {}).items()}
        org_header = _pop_header(headers, ORG_HEADER)
        customer_id = _pop_header(headers, CUSTOMER_HEADER)
        delivery_id = _pop_header(headers, DELIVERY_HEADER)
        scope_org = None if bypass_active() else current_organization_id()
        if scope_org is not None and org_header is not None and org_header != scope_org:
            if not self.fail_silently:
                raise ValueError(
                    f"The message names organisation {org_header} inside organisation "
                    f"{scope_org}'s scope."
                )
            return False
        org_id = scope_org or org_header
        if org_id is None:
            # nobody's outbox: show it in the console (development sign-up mail etc.)
            message.extra_headers = headers
            return bool(ConsoleBackend(fail_silently=self.fail_silently).send_messages([message]))
        recipients = ", ".join(message.recipients())
        with tenant_context(org_id):
            if customer_id and not Customer.objects.filter(pk=customer_id).exists():
                customer_id = None
            if delivery_id and not Delivery.objects.filter(pk=delivery_id).exists():
                delivery_id = None
            headers.setdefault("From", str(message.from_email or ""))
            if message.reply_to:
                headers.setdefault("Reply-To", ", ".join(message.reply_to))
            OutboxMessage.objects.create(
                organization_id=org_id,
                channel="email",
                customer_id=customer_id,
                delivery_id=delivery_id,
                to_address=recipients[:320],
                subject=str(message.subject or "")[:998],
                text="" if getattr(message, "content_subtype", "") == "html" else str(message.body),
                html=_html_of(message),
                headers=headers,
            )
        logger.info(
            "outbox_stored",
            extra={"organization_id": org_id, "customer_id": customer_id, "channel": "email"},
        )
        return True
