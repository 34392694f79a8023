"""Settings → Webhooks: where change notifications go, a test button, the log."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.actor import Actor
from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import selectors, services
from .events import EVENT_TYPES, RESERVED_EVENT_TYPES
from .forms import EndpointForm
from .models import WebhookEndpoint


@org_required
def endpoint_list(request):
    form = EndpointForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                endpoint = services.endpoint_create(
                    organization=request.organization,
                    actor=Actor.from_request(request),
                    request=request,
                    **form.cleaned_data,
                )
            except ApplicationError as exc:
                for field, problem in exc.extra.get("fields", {}).items():
                    if field in form.fields:
                        form.add_error(field, problem)
                messages.error(request, exc.message)
            else:
                messages.info(request, "Added. Send a test to check that it arrives.")
                return redirect("webhooks:detail", pk=endpoint.pk)
    return render(
        request,
        "webhooks/list.html",
        {
            "form": form,
            "endpoints": selectors.endpoints(),
            "event_types": EVENT_TYPES,
            "reserved": RESERVED_EVENT_TYPES,
        },
    )


@org_required
def endpoint_detail(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint.objects.all(), pk=pk)
    page = Paginator(selectors.deliveries(endpoint=endpoint), 25).get_page(request.GET.get("page"))
    return render(
        request,
        "webhooks/detail.html",
        {
            "endpoint": endpoint,
            "page": page,
            "events": [EVENT_TYPES.get(t, t) for t in endpoint.event_types],
        },
    )


@org_required(write=True)
@require_POST
def endpoint_test(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint.objects.all(), pk=pk)
    services.endpoint_send_test(endpoint=endpoint, actor=Actor.from_request(request))
    messages.info(
        request, "A test is on its way. Reload this page in a moment to see if it arrived."
    )
    return redirect("webhooks:detail", pk=endpoint.pk)


@org_required(write=True)
@require_POST
def endpoint_toggle(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint.objects.all(), pk=pk)
    services.endpoint_update(
        endpoint=endpoint,
        actor=Actor.from_request(request),
        request=request,
        is_active=not endpoint.is_active,
    )
    messages.info(
        request, "Switched on." if endpoint.is_active else "Switched off: nothing is sent."
    )
    return redirect("webhooks:detail", pk=endpoint.pk)


@org_required(write=True)
@require_POST
def endpoint_delete(request, pk: int):
    endpoint = get_object_or_404(WebhookEndpoint.objects.all(), pk=pk)
    services.endpoint_delete(endpoint=endpoint, actor=Actor.from_request(request), request=request)
    messages.info(request, "Removed: nothing more is sent there.")
    return redirect("webhooks:list")
