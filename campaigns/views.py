"""Campaign pages (mounted at /campaigns/, namespace `campaigns`): the list with the
campaign settings, the builder (new and edit while draft or scheduled), a
campaign's page (variants, preview as a customer, test send, the pre-send summary,
send and its progress, results), and the SMS length fragment htmx asks for.

Views are thin: forms shape the input, the services check and save it (the same
ones the API calls), and every `ApplicationError` becomes a message next to its
field or at the top of the page. Objects come through the scoped managers with
`get_object_or_404`, so another organisation's ids answer 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import rules, sending, services, stats
from .forms import (
    CampaignForm,
    SettingsForm,
    VariantForm,
    VariantWordsForm,
    campaign_initial,
    form_errors_from,
)
from .models import Campaign, CampaignStatus, Delivery, DeliveryStatus, Variant

PREVIEW_WIDTHS = {"desktop": 600, "phone": 375}
PREVIEW_CUSTOMERS = 25


# --- helpers ---------------------------------------------------------------------------
def _segments():
    from segmentation.selectors import segments_current

    return list(segments_current())


def _audiences():
    from audiences.models import Audience

    return list(Audience.objects.order_by("name", "id"))


def _offers(current_id: int | None = None):
    """The offers a campaign can carry: built or being built, not the loyalty reward
    offer (and the campaign's own offer, whatever became of it, so an unchanged form
    keeps it)."""
    from django.db.models import Q

    from offers.models import Offer, OfferStatus

    usable = Q(status__in=(OfferStatus.READY, OfferStatus.BUILDING))
    if current_id:
        usable |= Q(pk=current_id)
    return list(Offer.objects.filter(usable, is_reward=False).order_by("-created_at", "-id"))


def _surveys(current_id: int | None = None):
    """The surveys a campaign can carry: open ones (and the campaign's own, whatever
    became of it, so an unchanged form keeps it)."""
    from django.db.models import Q

    from research.models import Survey, SurveyStatus

    usable = Q(status=SurveyStatus.OPEN)
    if current_id:
        usable |= Q(pk=current_id)
    return list(Survey.objects.filter(usable).order_by("-created_at", "-id"))


SURVEY_BODY = (
    "We would love to know what you think. It takes a minute, and your answers help us "
    "do better:\n{{ survey_link }}\n"
)


def _prefill(request, segments, audiences, offers, surveys=()) -> dict[str, Any]:
    """A new campaign's answers from the page that links here: `?offer=ID` (its
    recipients too, unless given), `?survey=ID` (a message with its link),
    `?audience=ID`, `?segment=ID` (repeatable). Only ids in the lists offered (this
    organisation's) are used."""
    initial: dict[str, Any] = {}

    def ids(name: str) -> list[int]:
        return [int(v) for v in request.GET.getlist(name) if v.isdigit()]

    offer = next((o for o in offers if o.pk in ids("offer")), None)
    audience_ids = {a.pk for a in audiences}
    segment_ids = {s.pk for s in segments}
    if offer is not None:
        initial["offer"] = str(offer.pk)
        initial["name"] = offer.name
        initial["body"] = 'Hello {{ first_name|default("there") }},\n\n{% offer %}\n'
        if offer.audience_id in audience_ids:
            initial.update(recipients="audience", audience=str(offer.audience_id))
        elif offer.segment_ids:
            chosen = [str(i) for i in offer.segment_ids if i in segment_ids]
            if chosen:
                initial.update(recipients="segments", segments=chosen)
    survey = next((s for s in surveys if s.pk in ids("survey")), None)
    if survey is not None:
        initial["survey"] = str(survey.pk)
        initial.setdefault("name", f"Survey: {survey.name}")
        initial.setdefault("subject", "Tell us what you think")
        greeting = 'Hello {{ first_name|default("there") }},\n\n'
        initial["body"] = (initial.get("body") or greeting) + "\n" * bool(offer) + SURVEY_BODY
    audience = next((i for i in ids("audience") if i in audience_ids), None)
    if audience is not None:
        initial.update(recipients="audience", audience=str(audience))
    chosen = [str(i) for i in ids("segment") if i in segment_ids]
    if chosen:
        initial.update(recipients="segments", segments=chosen)
    return initial


def _personas():
    from segmentation.models import Persona

    return list(Persona.objects.select_related("segment").order_by("segment_id", "name", "id"))


def _campaign(pk: int) -> Campaign:
    # an automation's messages go out through hidden campaigns of its own
    return get_object_or_404(
        Campaign.objects.filter(automation__isnull=True).select_related("job", "audience"), pk=pk
    )


def _pct(x: float | None) -> str:
    if x is None:
        return "—"
    value = x * 100
    return f"{value:.1f}%" if value < 10 else f"{value:.0f}%"


def _recipients_words(campaign: Campaign, segment_names: dict[int, str]) -> str:
    if campaign.audience_id:
        name = campaign.audience.name if campaign.audience else f"audience {campaign.audience_id}"
        return f"the audience “{name}”"
    names = [f"“{segment_names.get(i, f'segment {i}')}”" for i in campaign.segment_ids]
    if not names:
        return "nobody yet"
    return ("the segment " if len(names) == 1 else "the segments ") + ", ".join(names)


# --- list and settings -----------------------------------------------------------------
def _list_rows(campaigns: list[Campaign]) -> list[dict[str, Any]]:
    from django.db.models import Count, Q, Sum

    ids = [c.pk for c in campaigns]
    figures = {
        row["campaign_id"]: row
        for row in Delivery.objects.filter(campaign_id__in=ids)
        .values("campaign_id")
        .annotate(
            sent=Count("id", filter=Q(status__in=(DeliveryStatus.SENT, DeliveryStatus.BOUNCED))),
            opened=Count("id", filter=Q(opened_at__isnull=False)),
            clicked=Count("id", filter=Q(clicked_at__isnull=False)),
            converted=Count("id", filter=Q(converted_at__isnull=False)),
            revenue=Sum("revenue"),
            audience=Count("id"),
        )
    }
    segment_names = dict(_segment_names())
    rows = []
    for c in campaigns:
        f = figures.get(c.pk, {})
        rows.append(
            {
                "campaign": c,
                "recipients": _recipients_words(c, segment_names),
                "audience": f.get("audience") or (c.counts or {}).get("audience"),
                "sent": f.get("sent", 0),
                "opened": f.get("opened", 0),
                "clicked": f.get("clicked", 0),
                "converted": f.get("converted", 0),
                "revenue": f.get("revenue") or 0,
            }
        )
    return rows


def _segment_names():
    from segmentation.models import Segment

    return Segment.objects.values_list("pk", "name")


def _settings_form(organization, data=None) -> SettingsForm:
    found = services.campaign_settings_get(organization=organization)
    return SettingsForm(
        data,
        initial={
            "cap_messages": found.cap_messages,
            "cap_days": found.cap_days,
            "quiet_start_hour": found.quiet_start_hour,
            "quiet_end_hour": found.quiet_end_hour,
            "from_name": found.from_name,
            "reply_to": found.reply_to,
        },
    )


def _list_page(request, settings_form: SettingsForm, status: int = 200):
    campaigns = list(
        Campaign.objects.filter(automation__isnull=True)
        .select_related("audience")
        .order_by("-created_at", "-id")
    )
    return render(
        request,
        "campaigns/list.html",
        {
            "rows": _list_rows(campaigns),
            "settings_form": settings_form,
            "currency": request.organization.currency,
        },
        status=status,
    )


@org_required
@require_GET
def campaign_list(request):
    return _list_page(request, _settings_form(request.organization))


@org_required(write=True)
@require_POST
def campaign_settings(request):
    form = _settings_form(request.organization, request.POST)
    if form.is_valid():
        try:
            services.campaign_settings_update(
                organization=request.organization, data=dict(form.cleaned_data)
            )
        except ApplicationError as exc:
            if not form_errors_from(form, exc):
                form.add_error(None, exc.message)
        else:
            messages.success(request, "Campaign settings saved.")
            return redirect(reverse("campaigns:list") + "#settings")
    return _list_page(request, form, status=400)


# --- builder ---------------------------------------------------------------------------
def _builder(request, campaign: Campaign | None):
    segments, audiences = _segments(), _audiences()
    offers = _offers(campaign.offer_id if campaign else None)
    surveys = _surveys(campaign.survey_id if campaign else None)
    choices = {"segments": segments, "audiences": audiences, "offers": offers, "surveys": surveys}
    error = None
    if request.method == "POST":
        form = CampaignForm(request.POST, **choices)
        if form.is_valid():
            try:
                data = form.service_data()
                if campaign is None:
                    saved = services.campaign_create(
                        organization=request.organization, data=data, user=request.user
                    )
                    messages.success(
                        request,
                        f"Campaign “{saved.name}” saved as a draft. Add versions, preview it, "
                        "then send it.",
                    )
                else:
                    saved = services.campaign_update(
                        organization=request.organization, campaign=campaign, data=data
                    )
                    messages.success(request, f"Campaign “{saved.name}” saved.")
                return redirect("campaigns:detail", saved.pk)
            except ApplicationError as exc:
                if not form_errors_from(form, exc):
                    error = exc.message
        else:
            error = "Some answers need a look: see the notes next to the fields."
    else:
        if campaign is not None:
            initial = campaign_initial(campaign, request.organization)
        else:
            initial = _prefill(request, segments, audiences, offers, surveys)
        form = CampaignForm(initial=initial or None, **choices)
    channel = form["channel"].value() or "email"
    body = form["body"].value() or ""
    return render(
        request,
        "campaigns/form.html",
        {
            "form": form,
            "campaign": campaign,
            "error": error,
            "has_segments": bool(segments),
            "has_audiences": bool(audiences),
            "has_offers": bool(offers),
            "has_surveys": bool(surveys),
            "surveys_url": "" if surveys else _url_or_blank("research:surveys"),
            "channel": channel,
            "sms": _sms_words(body),
            "time_zone": request.organization.time_zone or "UTC",
        },
        status=400 if request.method == "POST" else 200,
    )


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def campaign_new(request):
    return _builder(request, None)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def campaign_edit(request, pk: int):
    campaign = _campaign(pk)
    if not campaign.editable:
        messages.error(
            request,
            f"This campaign is {campaign.get_status_display().lower()}: it can be changed only "
            "while it is a draft or scheduled.",
        )
        return redirect("campaigns:detail", campaign.pk)
    return _builder(request, campaign)


@org_required(write=True)
@require_POST
def campaign_delete(request, pk: int):
    campaign = _campaign(pk)
    try:
        services.campaign_delete(organization=request.organization, campaign=campaign)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("campaigns:detail", campaign.pk)
    messages.success(request, f"Campaign “{campaign.name}” deleted.")
    return redirect("campaigns:list")


def _sms_words(text: str) -> dict[str, Any]:
    from .rendering import sms_parts

    return sms_parts(text)


@org_required
@require_http_methods(["GET", "POST"])
def sms_count(request):
    """The SMS length fragment: characters and parts of the message as written (merge
    fields and blocks change the length per customer)."""
    text = request.POST.get("body", request.GET.get("body", ""))
    return render(request, "campaigns/_sms_count.html", {"sms": _sms_words(text)})


# --- a campaign's page -----------------------------------------------------------------
def _variant_rows(campaign: Campaign, segment_names: dict[int, str]) -> list[dict[str, Any]]:
    from segmentation.models import Persona

    variants = list(Variant.objects.filter(campaign=campaign).order_by("created_at", "id"))
    personas = dict(
        Persona.objects.filter(pk__in=[v.persona_id for v in variants if v.persona_id]).values_list(
            "pk", "name"
        )
    )
    rows = []
    for v in variants:
        if v.persona_id:
            target = f"Persona “{personas.get(v.persona_id, v.persona_id)}”"
        elif v.segment_ids:
            target = "Segments " + ", ".join(f"“{segment_names.get(i, i)}”" for i in v.segment_ids)
        else:
            target = "A/B version" + (f" ({v.share:.0%} share)" if v.share is not None else "")
        rows.append({"variant": v, "target": target})
    return rows


def _preview_customers(campaign: Campaign):
    from customers.models import Customer

    try:
        ids, _ = services.recipient_ids(campaign)
    except ApplicationError:
        ids = []
    ids = ids[:PREVIEW_CUSTOMERS]
    found = {c.pk: c for c in Customer.objects.filter(pk__in=ids, erased_at__isnull=True)}
    return [found[i] for i in ids if i in found]


def _results(campaign: Campaign) -> dict[str, Any] | None:
    if not Delivery.objects.filter(campaign=campaign).exists():
        return None
    figures = stats.campaign_stats(campaign)
    best = max((v["conversion_rate"] for v in figures["variants"]), default=0) or 0
    for v in figures["variants"]:
        v["rate_words"] = _pct(v["conversion_rate"])
        lo, hi = v["interval"]
        v["interval_words"] = (
            f"probably between {_pct(lo)} and {_pct(hi)}" if v["sent"] else "nothing sent yet"
        )
        v["bar"] = round(100 * v["conversion_rate"] / best) if best else 0
        v["is_winner"] = figures["winner"] == v["id"]
    for group in (*figures["by_segment"], *figures["by_persona"], *figures["by_store"]):
        group["rate_words"] = _pct(group["conversion_rate"])
    figures["winner_name"] = next(
        (v["name"] for v in figures["variants"] if v["id"] == figures["winner"]), None
    )
    figures["holdout_rate_words"] = _pct(figures["holdout_conversion_rate"])
    figures["conversion_rate_words"] = _pct(figures.get("conversion_rate"))
    return figures


def _offer_url(offer_id: int) -> str:
    return reverse("offers:detail", args=[offer_id])


def _url_or_blank(name: str, *args) -> str:
    """A page's address, or "" when its app's pages are not mounted."""
    from django.urls import NoReverseMatch

    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return ""


def _survey_facts(campaign: Campaign) -> dict[str, Any] | None:
    """The survey a campaign carries, for its page: {name, url (its results), problem}."""
    if not campaign.survey_id:
        problem = services.campaign_survey_problem(campaign) if campaign.editable else None
        return {"name": "", "url": "", "problem": problem} if problem else None
    survey = services.campaign_survey(campaign)
    url = _url_or_blank("research:survey_detail", campaign.survey_id) if survey else ""
    return {
        "name": survey.name if survey else "",
        "url": url,
        "problem": services.campaign_survey_problem(campaign) if campaign.editable else None,
    }


def _detail_context(
    request,
    campaign: Campaign,
    variant_form: VariantForm | None = None,
    fairness_reason: str = "",
):
    segment_names = dict(_segment_names())
    editable = campaign.editable
    audit = None
    audit_error = None
    if editable:
        try:
            audit = services.campaign_audit(campaign)
        except ApplicationError as exc:
            audit_error = exc.message
    if variant_form is None and editable:
        variant_form = VariantForm(segments=_segments(), personas=_personas())
    offer = services.campaign_offer_summary(campaign) if audit is None else audit["offer"]
    customers = _preview_customers(campaign)
    job = campaign.job
    variants = _variant_rows(campaign, segment_names)
    results = _results(campaign)
    preview = _first_preview(campaign, customers)
    return {
        **preview,
        "campaign": campaign,
        "recipients": _recipients_words(campaign, segment_names),
        "variants": variants,
        "ab_arms": len(variants),
        "holdout_percent": round(campaign.holdout_share * 100),
        "variant_form": variant_form,
        "editable": editable,
        "audit": audit,
        "audit_error": audit_error,
        "offer": offer,
        "offer_url": _offer_url(campaign.offer_id) if campaign.offer_id else "",
        "survey": _survey_facts(campaign),
        "customers": customers,
        "job": job,
        "sending": campaign.status == CampaignStatus.SENDING,
        # why its messages wait: the organisation is suspended, or the day's emails ran out
        "notice": rules.campaign_notice(campaign, request.organization),
        "results": results,
        "breakdowns": [
            ("By segment", results["by_segment"] if results else []),
            ("By persona", results["by_persona"] if results else []),
        ],
        "fairness_reason": fairness_reason,
        "currency": request.organization.currency,
        "scheduled_ahead": bool(campaign.send_at),
        "time_zone": request.organization.time_zone or "UTC",
        "member_email": request.user.email,
    }


def _first_preview(campaign: Campaign, customers: list) -> dict[str, Any]:
    """The preview drawn with the page: as the first customer, at desktop width."""
    out: dict[str, Any] = {"width": "desktop", "width_px": PREVIEW_WIDTHS["desktop"]}
    if not customers:
        return out
    out["customer"] = customers[0]
    out["customer_id"] = customers[0].pk
    try:
        out["preview"] = sending.preview(campaign=campaign, customer=customers[0])
    except ApplicationError as exc:
        out["preview_error"] = exc.message
    return out


@org_required
@require_GET
def campaign_detail(request, pk: int):
    campaign = _campaign(pk)
    return render(request, "campaigns/detail.html", _detail_context(request, campaign))


@org_required(write=True)
@require_POST
def variant_add(request, pk: int):
    campaign = _campaign(pk)
    form = VariantForm(request.POST, segments=_segments(), personas=_personas())
    if form.is_valid():
        try:
            variant = services.variant_create(
                organization=request.organization,
                campaign=campaign,
                data=form.service_data(),
                user=request.user,
            )
        except ApplicationError as exc:
            fields = {"persona_id": "persona", "segment_ids": "segments", "share": "kind"}
            if not form_errors_from(form, exc, fields=fields):
                form.add_error(None, exc.message)
        else:
            if variant.is_draft:
                messages.success(
                    request,
                    f"Starter draft “{variant.name}” written from the persona. It is a draft: "
                    "read it and make the words yours before sending.",
                )
            else:
                messages.success(request, f"Version “{variant.name}” added.")
            return redirect(reverse("campaigns:detail", args=[campaign.pk]) + "#variants")
    context = _detail_context(request, campaign, variant_form=form)
    context["variant_error"] = True
    return render(request, "campaigns/detail.html", context, status=400)


@org_required
@require_GET
def campaign_preview(request, pk: int):
    """The preview fragment (htmx) or page: the message as one customer would get it,
    in a sandboxed frame at desktop (600 px) or phone (375 px) width."""
    campaign = _campaign(pk)
    width = request.GET.get("width") or request.GET.get("current") or "desktop"
    if width not in PREVIEW_WIDTHS:
        width = "desktop"
    context: dict[str, Any] = {
        "campaign": campaign,
        "customers": _preview_customers(campaign),
        "width": width,
        "width_px": PREVIEW_WIDTHS[width],
        "customer_id": request.GET.get("customer", ""),
    }
    customer_id = request.GET.get("customer")
    if not customer_id:
        customers = context["customers"]
        customer_id = customers[0].pk if customers else None
        context["customer_id"] = customer_id or ""
    status = 200
    if customer_id is None:
        context["preview_error"] = (
            "Nobody would get this campaign yet, so there is no one to preview it as."
        )
    else:
        try:
            customer = services.preview_customer(campaign=campaign, customer_id=customer_id)
            context["preview"] = sending.preview(campaign=campaign, customer=customer)
            context["customer"] = customer
        except ApplicationError as exc:
            context["preview_error"] = exc.message
            status = exc.status if exc.status in (400, 404) else 400
    if request.headers.get("HX-Request"):
        return render(request, "campaigns/_preview_box.html", context, status=status)
    full = _detail_context(request, campaign)
    full.update(context)
    return render(request, "campaigns/detail.html", full, status=status)


@org_required(write=True)
@require_POST
def campaign_test(request, pk: int):
    campaign = _campaign(pk)
    try:
        services.campaign_test_send(
            organization=request.organization,
            campaign=campaign,
            to=request.user.email,
            user=request.user,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        what = "The text of the SMS is" if campaign.channel == "sms" else "A test copy is"
        messages.success(
            request,
            f"{what} on its way to {request.user.email} by email. In development it lands "
            "in the outbox.",
        )
    return redirect(reverse("campaigns:detail", args=[campaign.pk]) + "#send")


@org_required(write=True)
@require_POST
def campaign_send(request, pk: int):
    campaign = _campaign(pk)
    reason = request.POST.get("fairness_override_reason", "")
    try:
        job = services.campaign_send(
            organization=request.organization, campaign=campaign, user=request.user,
            fairness_override_reason=reason, request=request,
        )  # fmt: skip
    except ApplicationError as exc:
        # shown next to the Send button, with the reason typed kept in its field
        context = _detail_context(request, campaign, fairness_reason=reason)
        context["send_error"] = exc.message
        context["send_error_field"] = (exc.extra.get("fields") or {}).get(
            "fairness_override_reason", ""
        )
        return render(request, "campaigns/detail.html", context, status=exc.status)
    else:
        if job is None:
            messages.success(request, "Scheduled. It will be sent at the time you chose.")
        else:
            notice = rules.start_notice(request.organization, campaign)
            if notice:  # the day's emails are used up: it starts, and waits until tomorrow
                messages.warning(request, notice["message"])
            else:
                messages.success(request, "Sending has started. Progress shows below.")
    return redirect(reverse("campaigns:detail", args=[campaign.pk]) + "#send")


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def variant_edit(request, pk: int):
    """Change a version's words (a starter draft stops being a draft once edited).

    The services have no variant update yet, so this checks with the same helpers
    `variant_create` uses (length, template, editable under a lock); it belongs in
    services.py as `variant_update` when that exists."""
    from django.db import transaction

    variant = get_object_or_404(Variant.objects.all(), pk=pk)
    campaign = _campaign(variant.campaign_id)
    if not campaign.editable:
        messages.error(
            request, "This campaign can be changed only while it is a draft or scheduled."
        )
        return redirect("campaigns:detail", campaign.pk)
    form = VariantWordsForm(
        request.POST or None,
        initial={"name": variant.name, "subject": variant.subject, "body": variant.body},
    )
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            name = services._clean_text(d["name"], "name", max_length=200, required=True)  # noqa: SLF001
            subject = services._clean_text(d.get("subject") or "", "subject", max_length=500)  # noqa: SLF001
            body = services._clean_text(  # noqa: SLF001
                d.get("body") or "", "body", max_length=200_000, required=True
            )
            services._check_template(channel=campaign.channel, subject=subject, body=body)  # noqa: SLF001
            services._check_survey_link(campaign, body)  # noqa: SLF001
            with transaction.atomic():
                locked = Campaign.objects.select_for_update().get(pk=campaign.pk)
                if not locked.editable:
                    raise services._not_editable(locked)  # noqa: SLF001
                Variant.objects.filter(pk=variant.pk).update(
                    name=name, subject=subject, body=body, is_draft=False
                )
        except ApplicationError as exc:
            if not form_errors_from(form, exc):
                form.add_error(None, exc.message)
        else:
            messages.success(request, f"Version “{name}” saved.")
            return redirect(reverse("campaigns:detail", args=[campaign.pk]) + "#variants")
    return render(
        request,
        "campaigns/variant_form.html",
        {"campaign": campaign, "variant": variant, "form": form},
        status=400 if request.method == "POST" else 200,
    )
