"""The development outbox (mounted at /campaigns/outbox/, namespace `campaigns`):
the messages the outbox email backend and the `outbox://` SMS backend kept instead
of sending, newest first; each opens to show its subject, the HTML in a sandboxed
frame (no scripts, no same-origin access, no navigation) and the text part.

Views are thin: read the organisation's rows through the scoped manager, render."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from accounts.decorators import org_required

from .models import OutboxMessage

PAGE_SIZE = 50


def _outbox_in_use() -> bool:
    return settings.EMAIL_BACKEND == "campaigns.backends.OutboxEmailBackend" or str(
        getattr(settings, "SMS_URL", "")
    ).startswith("outbox:")


@org_required
@require_GET
def outbox(request):
    channel = request.GET.get("channel", "")
    rows = OutboxMessage.objects.defer("html", "headers").order_by("-created_at", "-id")
    if channel in ("email", "sms"):
        rows = rows.filter(channel=channel)
    else:
        channel = ""
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "campaigns/outbox.html",
        {"page": page, "channel": channel, "outbox_in_use": _outbox_in_use()},
    )


@org_required
@require_GET
def outbox_message(request, pk: int):
    message = get_object_or_404(OutboxMessage.objects.all(), pk=pk)
    headers = [
        (name, value)
        for name, value in sorted((message.headers or {}).items())
        if name.lower() in ("from", "reply-to", "list-unsubscribe", "list-unsubscribe-post")
    ]
    return render(
        request,
        "campaigns/outbox_message.html",
        {"message": message, "headers": headers},
    )
