"""The Recommendations page (mounted at /recommendations/, namespace
`recommendations`): how well the recommendations do in plain words, what is
served, the owner's repeat-purchase setting, the most recommended products, a
"Run now" button with progress, and "About this model".

Views are thin: read through `selectors`, write through `services`, render."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError
from core.models import Job, JobStatus

from . import selectors, services
from .models import Repeats

SETTING_SAVED = {
    Repeats.AUTO: "products bought before are recommended again when that works better on "
    "your past orders",
    Repeats.ALWAYS: "products bought before are always recommended again",
    Repeats.NEVER: "products bought before are never recommended again",
}


def _latest_job():
    return Job.objects.filter(kind="recommendations").order_by("-created_at").first()


@org_required
@require_GET
def overview(request):
    from customers.models import OrderLine

    run = selectors.live_run()
    job = _latest_job()
    show_job = job is not None and (not job.is_finished or job.status != JobStatus.SUCCEEDED)
    settings_row = services.recommendation_settings_get()
    context: dict[str, Any] = {
        "run": run,
        "job": job if show_job else None,
        "has_orders": OrderLine.objects.filter(product__isnull=False).exists(),
        "settings_row": settings_row,
        "repeat_choices": Repeats.choices,
        "setting_pending": run is not None and run.repeats_setting != settings_row.repeats,
    }
    if run is not None:
        context.update(
            {
                "about": selectors.about(run),
                "bars": selectors.hit_rate_bars(run),
                "top_products": selectors.most_recommended(run),
                "repeats_sentence": selectors.repeats_sentence(run),
            }
        )
    return render(request, "recommendations/overview.html", context)


@org_required(write=True)
@require_POST
def run_now(request):
    try:
        job = services.recommendations_run_start(
            organization=request.organization, user=request.user
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("recommendations:overview")
    if request.htmx:
        return render(request, "core/_job_progress.html", {"job": job})
    messages.info(
        request, "Recommendations started. They run in the background; progress shows below."
    )
    return redirect("recommendations:overview")


@org_required(write=True)
@require_POST
def settings_update(request):
    try:
        row = services.recommendation_settings_update(
            organization=request.organization,
            repeats=request.POST.get("repeats"),
            user=request.user,
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"Saved: {SETTING_SAVED[Repeats(row.repeats)]}. This applies from the next run — "
            "press Run now to apply it at once.",
        )
    return redirect("recommendations:overview")
