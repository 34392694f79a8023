"""Loyalty pages (mounted at /loyalty/, namespace `loyalty`): the loyalty page
(members per tier, movement between tiers, revenue by tier, the programme in plain
words, "Recompute now"), the programme editor, and the customer page's "Exchange
points" button.

Views are thin: figures come from `pages`, reads from `selectors`, writes from
`services`; every `ApplicationError` becomes a message or a note next to a field.
Customers come through the scoped manager with `get_object_or_404`, so another
organisation's ids answer 404.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError
from core.models import Job, JobStatus
from core.views import start_step

from . import pages
from .forms import (
    ProgramForm,
    TierFormSet,
    describe_errors,
    errors_from,
    program_data,
    program_initial,
    tier_initial,
    unchanged,
)

# Every row is read, even one left as the page showed it: a suggested tier the
# owner keeps is a tier to save (Django would skip an unchanged extra row).
ROWS = {"empty_permitted": False}


def _latest_job():
    return Job.objects.filter(kind="loyalty").order_by("-created_at").first()


def _program(organization):
    from .services import program_get

    return program_get(organization=organization)


@org_required
@require_GET
def loyalty_page(request):
    organization = request.organization
    currency = organization.currency
    program = _program(organization)
    job = _latest_job()
    show_job = job is not None and (not job.is_finished or job.status != JobStatus.SUCCEEDED)
    context: dict[str, Any] = {
        "program": program,
        "job": job if show_job else None,
        "currency": currency,
    }
    if program is None:
        context["suggestion"] = pages.suggestion(organization=organization)
        return render(request, "loyalty/page.html", context)
    figures = pages.tier_figures(program=program, organization=organization)
    for row in figures["rows"]:
        row["revenue_words"] = pages.money(row["revenue"], currency)
        row["per_member_words"] = (
            pages.money(row["per_member"], currency, cents=True)
            if row["per_member"] is not None
            else "—"
        )
        row["threshold_words"] = pages.threshold_words(
            row["tier"].threshold, program.metric, currency
        )
    figures["no_tier_revenue_words"] = pages.money(figures["no_tier_revenue"], currency)
    figures["no_tier_per_member_words"] = (
        pages.money(figures["no_tier_per_member"], currency, cents=True)
        if figures["no_tier_per_member"] is not None
        else "—"
    )
    figures["total_revenue_words"] = pages.money(figures["total_revenue"], currency)
    top = figures["rows"][0] if figures["rows"] else None
    lowest = figures["tiers"][0] if figures["tiers"] else None
    context.update(
        {
            "figures": figures,
            "movement": pages.movement(),
            "sentences": pages.program_sentences(program, figures["tiers"], currency),
            "period_words": pages.period_words(program.period_days),
            "top": top,
            "lowest": lowest,
            "campaign_url": reverse("campaigns:new"),
            "automation_url": reverse("campaigns:automation_new")
            + (f"?{urlencode({'kind': 'tier_changed', 'tier': top['tier'].name})}" if top else ""),
        }
    )
    return render(request, "loyalty/page.html", context)


@org_required(write=True)
@require_POST
def tier_audience(request, pk: int):
    """ "Thank your Gold members": the audience of a tier's customers (a rules audience
    on `loyalty_tier`, the same one again when it exists), then its page, which sends
    them a campaign or gives them an offer."""
    from audiences.services import audience_for_definition

    from .models import LoyaltyTier

    tier = get_object_or_404(LoyaltyTier.objects.all(), pk=pk)
    definition = {
        "kind": "rules",
        "rule": {
            "op": "and",
            "conditions": [{"field": "loyalty_tier", "operator": "in", "value": [tier.name]}],
        },
    }
    try:
        audience, created = audience_for_definition(
            organization=request.organization,
            definition=definition,
            base_name=f"{tier.name} members",
            user=request.user,
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("loyalty:page")
    if created:
        messages.success(request, f"Audience “{audience.name}” saved. It is being built now.")
    else:
        messages.info(request, f"You have this audience already: “{audience.name}”.")
    return redirect("audiences:detail", pk=audience.pk)


@org_required(write=True)
@require_POST
def recompute(request):
    if _program(request.organization) is None:
        messages.error(request, "Set up your loyalty programme first.")
        return redirect("loyalty:page")
    return start_step(
        request,
        "loyalty",
        back="loyalty:page",
        started="Working out every customer's tier and points. It runs in the background; "
        "progress shows below.",
    )


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def program_edit(request):
    organization = request.organization
    program = _program(organization)
    suggestion = None
    if program is not None:
        initial = program_initial(program)
        tiers_initial = tier_initial(program.tiers.order_by("position", "threshold", "id"))
    else:
        initial = None
        suggestion = pages.suggestion(organization=organization)
        tiers_initial = (
            [{"name": t["name"], "threshold": t["threshold"]} for t in suggestion["tiers"]]
            if suggestion
            else [
                {"name": "Bronze", "threshold": 0},
                {"name": "Silver", "threshold": None},
                {"name": "Gold", "threshold": None},
            ]
        )
    error = None
    if request.method == "POST":
        form = ProgramForm(request.POST, initial=initial, currency=organization.currency)
        formset = TierFormSet(request.POST, initial=tiers_initial, prefix="tier", form_kwargs=ROWS)
        if form.is_valid() and formset.is_valid():
            if program is not None and unchanged(form, formset):
                messages.info(request, "Nothing changed in the programme.")
                return redirect("loyalty:page")
            try:
                from .services import program_save

                saved, job = program_save(
                    organization=organization,
                    data=program_data(form, formset),
                    user=request.user,
                    request=request,
                )
            except ApplicationError as exc:
                if errors_from(exc, form, formset):
                    error = "Some answers need a look: see the notes next to the fields."
                else:
                    error = exc.message
            else:
                messages.success(
                    request,
                    "Programme saved."
                    + (
                        " Every customer's tier and points are being worked out now; "
                        "progress shows below."
                        if job is not None
                        else ""
                    ),
                )
                return redirect("loyalty:page")
        else:
            error = "Some answers need a look: see the notes next to the fields."
    else:
        form = ProgramForm(initial=initial, currency=organization.currency)
        formset = TierFormSet(initial=tiers_initial, prefix="tier", form_kwargs=ROWS)
    describe_errors(form, *formset.forms)
    return render(
        request,
        "loyalty/program_form.html",
        {
            "form": form,
            "formset": formset,
            "program": program,
            "suggestion": suggestion,
            "error": error,
            "currency": organization.currency,
            "time_zone": organization.time_zone or "UTC",
        },
        status=400 if request.method == "POST" else 200,
    )


@org_required(write=True)
@require_POST
def points_exchange(request, pk: int):
    from customers.models import Customer

    from .services import points_redeem

    customer = get_object_or_404(Customer.objects.filter(erased_at__isnull=True), pk=pk)
    currency = request.organization.currency
    try:
        redemption = points_redeem(
            organization=request.organization,
            customer=customer,
            user=request.user,
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            f"{redemption.points:,} points exchanged for "
            f"{pages.money(redemption.value, currency)} off. The customer's code is "
            f"{redemption.code} — give it to them; it works once, on their next order.",
        )
    return redirect(reverse("customers:detail", args=[customer.pk]) + "#panel-loyalty")
