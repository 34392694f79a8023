"""Site shell: dashboard, jobs and friendly error pages."""

from __future__ import annotations

import datetime as dt
import logging

from django.contrib import messages
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_POST

from accounts.decorators import org_required

from . import jobs
from .exceptions import ApplicationError
from .models import Job, JobStatus

log = logging.getLogger("segmenta.site")


@org_required
def dashboard(request):
    if request.htmx and "figures_shown" in request.GET:
        return _figures_poll(request)
    context = {}
    try:
        from customers.selectors import dashboard_summary
    except ImportError:  # the customers app provides the figures
        dashboard_summary = None
    if dashboard_summary is not None:
        context = dashboard_summary(organization=request.organization)
        context["freshness"] = _freshness(
            state=context.get("figures_state"), at=context.get("figures_as_of")
        )
    context["recent_jobs"] = jobs.jobs_listed(Job.objects.all())[:5]
    context["dashboard_panels"] = _dashboard_panels(request)
    return render(request, "core/dashboard.html", context)


# While a big organisation's dashboard figures are worked out in the background
# (core/kept.py), the note saying so asks every FIGURES_POLL_SECONDS whether newer
# ones are ready, for FIGURES_POLL_MAX_SECONDS at most (an open tab does not ask for
# ever). Until then the answer is "no change" (204: htmx swaps nothing, so a screen
# reader hears the note once, not every few seconds).
FIGURES_POLL_SECONDS = 5
FIGURES_POLL_MAX_SECONDS = 180


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def _freshness(*, state: str | None, at: dt.datetime | None, asked_from: int = 0) -> dict:
    """How fresh the dashboard's figures are, for `core/_figures_freshness.html`:
    `state` ("current"; "updating": earlier figures are shown; "working": none yet;
    "ready": newer ones are; "slow": still not, after asking a while), when the
    figures shown were worked out (`at`, in the organisation's time zone), and for
    the polls: that time in milliseconds (`shown`, 0 for none) and when they began."""
    from django.utils import timezone

    now = timezone.now()
    today = at is not None and at.date() == now.astimezone(at.tzinfo).date()
    return {
        "state": state or "current",
        "as_of": at,
        "today": today,
        "shown": _ms(at) if at is not None else 0,
        "asked_from": asked_from or _ms(now),
        "every": FIGURES_POLL_SECONDS,
    }


def _figures_poll(request) -> HttpResponse:
    """The freshness note asking whether newer figures are ready. None were shown
    ("working"): the page reloads once they are. Earlier ones were ("updating"): the
    note says newer ones are ready, with a link, and stops asking (htmx stops polling
    on status 286), as it does after FIGURES_POLL_MAX_SECONDS."""
    from django.utils import timezone
    from django_htmx.http import HttpResponseClientRefresh

    from customers.selectors import dashboard_figures_at

    try:
        shown = max(0, int(request.GET.get("figures_shown") or 0))
        asked_from = max(0, int(request.GET.get("asked_from") or 0))
    except ValueError:
        shown, asked_from = 0, 0
    at = dashboard_figures_at(organization=request.organization)
    if at is not None and _ms(at) > shown:
        if not shown:
            return HttpResponseClientRefresh()
        state = "ready"
    elif _ms(timezone.now()) - asked_from >= FIGURES_POLL_MAX_SECONDS * 1000:
        state = "slow"
    else:
        return HttpResponse(status=204)  # no change: keep asking
    shown_at = None
    if shown:
        try:
            shown_at = dt.datetime.fromtimestamp(shown / 1000, tz=at.tzinfo if at else dt.UTC)
        except (OverflowError, OSError, ValueError):
            shown_at = None
    fresh = _freshness(state=state, at=shown_at, asked_from=asked_from)
    response = render(request, "core/_figures_freshness.html", {"freshness": fresh})
    response.status_code = 286  # htmx: stop polling
    return response


def start_step(request, step: str, *, back: str, started: str) -> HttpResponse:
    """A page's "run it now" button: start pipeline step `step` for the organisation,
    then answer htmx with the job's progress, else go back to `back` (a URL name)
    with `started` (or the reason it could not start) as a message."""
    from segmentation.pipeline import pipeline_start

    try:
        run = pipeline_start(
            organization=request.organization, steps=[step], user=request.user, reason="on demand"
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(back)
    job = Job.objects.filter(pk=run["jobs"].get(step)).first()
    if request.htmx and job is not None:
        return render(request, "core/_job_progress.html", {"job": job})
    messages.info(request, started)
    return redirect(back)


def _dashboard_panels(request) -> list[dict]:
    """Places other capabilities add to the dashboard (Capability.dashboard_panels)."""
    from core.capabilities import capabilities, panel_contents

    return panel_contents([p for c in capabilities() for p in c.dashboard_panels], request=request)


@org_required
def job_list(request):
    kind = request.GET.get("kind")
    qs = jobs.jobs_listed(Job.objects.all(), kind)
    return render(
        request,
        "core/job_list.html",
        {"jobs": qs[:100], "kind": kind, "no_worker": jobs.jobs_waiting_without_worker()},
    )


@org_required
def job_detail(request, pk: int):
    job = get_object_or_404(Job.objects.all(), pk=pk)
    no_worker = jobs.jobs_waiting_without_worker() if job.status == JobStatus.QUEUED else None
    return render(request, "core/job_detail.html", {"job": job, "no_worker": no_worker})


@org_required
def job_progress(request, pk: int):
    """The progress bar fragment (htmx polls it) or JSON for scripts."""
    job = get_object_or_404(Job.objects.all(), pk=pk)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse(
            {
                "id": job.pk,
                "status": job.status,
                "progress": job.progress,
                "message": job.message,
                "result": job.result,
            }
        )
    return render(request, "core/_job_progress.html", {"job": job})


@org_required(write=True)
@require_POST
def job_cancel(request, pk: int):
    job = get_object_or_404(Job.objects.all(), pk=pk)
    try:
        jobs.job_cancel(job=job)
        messages.info(request, "Cancellation requested.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    if request.htmx:
        return render(request, "core/_job_progress.html", {"job": job})
    return redirect("core:job_detail", pk=job.pk)


@org_required(write=True)
@require_POST
def job_rerun(request, pk: int):
    job = get_object_or_404(Job.objects.all(), pk=pk)
    try:
        new = jobs.job_rerun(job=job, user=request.user, request=request)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("core:job_detail", pk=job.pk)
    return redirect("core:job_detail", pk=new.pk)


@org_required(write=True)
@require_POST
def job_demo(request):
    from .tasks import demo_countdown

    job = jobs.job_start(
        organization=request.organization,
        kind="demo",
        task=demo_countdown,
        params={"steps": 10},
        user=request.user,
        title="Demo job",
    )
    return redirect("core:job_detail", pk=job.pk)


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


# The same codes DRF's exception handler gives (core/api/exceptions.py).
_ERROR_CODES = {400: "bad_request", 403: "permission_denied", 404: "not_found", 500: "server_error"}


def _error(request, status: int, title: str, text: str, *, plain: bool = False):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"error": {"code": _ERROR_CODES[status], "message": title, "fields": {}}},
            status=status,
        )
    context = {"status": status, "title": title, "text": text}
    if plain:
        # No request: the context processors query the database, which may be
        # what just failed, and a failing error page hides the friendly one.
        return HttpResponse(render_to_string("error.html", context), status=status)
    return render(request, "error.html", context, status=status)


def error_400(request, exception=None):
    return _error(
        request, 400, "That request could not be understood", "Please go back and try again."
    )


def error_403(request, exception=None):
    reason = (
        str(exception)
        if exception and str(exception)
        else "Your role in this organisation does not allow this."
    )
    return _error(request, 403, "You don't have access to this", reason)


def error_404(request, exception=None):
    return _error(
        request,
        404,
        "We couldn't find that page",
        "It may have been removed, or the link may be wrong.",
    )


def error_500(request):
    return _error(
        request,
        500,
        "Something went wrong on our side",
        "We've logged the problem. Please try again in a moment.",
        plain=True,
    )
