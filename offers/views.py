"""Offer pages: the list with a suggested offer per segment, the offer form (new and
edit), an offer's page (status, terms in words, fairness check with the override,
results against the hold-out, codes), the codes download, rebuild and delete.

Views are thin: the form shapes the API's data, the services (offers.services)
check and save it, and every `ApplicationError` becomes a message next to its field
or on the page. Offers come through the scoped manager with `get_object_or_404`, so
another organisation's ids answer 404; the loyalty reward offer (`is_reward`) is
hidden from these pages.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.db.models import Count, Q, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import org_required
from core.exceptions import ApplicationError

from .forms import OfferForm, form_errors_from, offer_initial, suggestion_initial
from .models import Offer, OfferRecipient, OfferRedemption, OfferStatus

log = logging.getLogger("segmenta.offers")

PRODUCTS_SUGGESTED = 500
SYMBOLS = {"GBP": "£", "USD": "$", "EUR": "€", "JPY": "¥"}


# --- helpers ---------------------------------------------------------------------------
def _offers():
    return Offer.objects.filter(is_reward=False)


def _offer(pk: int) -> Offer:
    return get_object_or_404(_offers().select_related("job", "audience", "override_by"), pk=pk)


def _symbol(organization) -> str:
    return SYMBOLS.get((getattr(organization, "currency", "") or "").upper(), "")


def money(value, organization) -> str:
    """12345.6 -> "£12,346"; 12.5 -> "£12.50" (the currency code after it when the
    currency has no symbol here)."""
    if value is None:
        return "—"
    value = float(value)
    text = f"{abs(value):,.0f}" if abs(value) >= 100 else f"{abs(value):,.2f}"
    sign = "−" if value < 0 else ""
    symbol = _symbol(organization)
    if symbol:
        return f"{sign}{symbol}{text}"
    code = getattr(organization, "currency", "") or ""
    return f"{sign}{text} {code}".strip()


def _pct(rate) -> str:
    if rate is None:
        return "—"
    value = 100 * float(rate)
    return f"{value:.1f}%" if 0 < abs(value) < 10 else f"{value:.0f}%"


def what_words(offer_like, organization) -> str:
    """What the customer gets, in words: "15% off", "£5 off", "Free delivery"."""
    kind, value = offer_like["kind"], offer_like.get("value") or ""
    if kind == "percent":
        return f"{value}% off"
    if kind == "amount":
        try:
            return f"{money(Decimal(value), organization)} off"
        except ArithmeticError:
            return f"{value} off"
    if kind == "free_shipping":
        return "Free delivery"
    if kind == "product":
        from customers.models import Product

        name = Product.objects.filter(sku=value).values_list("name", flat=True).first()
        return f"A free {name} ({value})" if name else f"A free product ({value})"
    return kind


def _segment_names(ids) -> dict[int, str]:
    from segmentation.models import Segment

    return dict(Segment.objects.filter(pk__in=list(ids)).values_list("pk", "name"))


def who_words(offer: Offer, names: dict[int, str]) -> str:
    if offer.audience_id:
        return f"The audience “{offer.audience.name}”" if offer.audience else "An audience"
    ids = offer.segment_ids or []
    if not ids:
        return "—"
    label = "segment" if len(ids) == 1 else "segments"
    return f"Customers in the {label} " + ", ".join(
        f"“{names.get(i, f'segment {i}')}”" for i in ids
    )


def terms_words(offer: Offer, organization) -> list[str]:
    out = []
    if offer.min_basket is not None:
        out.append(f"On orders of at least {money(offer.min_basket, organization)}.")
    if offer.categories:
        out.append("Only on " + ", ".join(offer.categories) + ".")
    per = offer.max_redemptions_per_code
    if offer.code_mode == "shared":
        out.append(
            f"One code for everyone: {offer.shared_code or 'made when it is built'}; "
            f"each customer can use it {per} time{'s' if per != 1 else ''}."
        )
    else:
        out.append(f"A unique code for each customer, usable {per} time{'s' if per != 1 else ''}.")
    if offer.max_redemptions_total:
        out.append(f"At most {offer.max_redemptions_total:,} uses in total.")
    if offer.starts_at and offer.ends_at:
        out.append(f"From {offer.starts_at:%-d %B %Y} to {offer.ends_at:%-d %B %Y}.")
    elif offer.starts_at:
        out.append(f"From {offer.starts_at:%-d %B %Y}, with no end.")
    elif offer.ends_at:
        out.append(f"Until {offer.ends_at:%-d %B %Y}.")
    else:
        out.append("No start or end date.")
    return out


def _stalled(offer: Offer) -> bool:
    job = offer.job
    return (
        offer.status == OfferStatus.BUILDING
        and job is not None
        and job.is_finished
        and job.status != "succeeded"
    )


def _choices(organization) -> dict[str, Any]:
    from audiences.models import Audience
    from customers.models import Product
    from segmentation.selectors import segments_current

    return {
        "segments": list(segments_current()),
        "audiences": list(Audience.objects.order_by("name", "id")),
        "categories": list(
            Product.objects.exclude(category="")
            .order_by("category")
            .values_list("category", flat=True)
            .distinct()[:200]
        ),
        "time_zone": organization.time_zone or "UTC",
    }


def _products() -> list[tuple[str, str]]:
    from customers.models import Product

    return list(Product.objects.order_by("sku").values_list("sku", "name")[:PRODUCTS_SUGGESTED])


def _campaign_url(offer: Offer) -> str:
    try:
        return f"{reverse('campaigns:new')}?{urlencode({'offer': offer.pk})}"
    except NoReverseMatch:
        return ""


# --- list ------------------------------------------------------------------------------
def _suggestions(request) -> tuple[list[dict], bool]:
    from .suggestions import segment_suggestions

    try:
        items = segment_suggestions(organization=request.organization)
    except Exception:
        # suggestions only read: a fault in them must not take the offers list down
        log.exception("offers.suggestions_failed")
        return [], True
    new_url = reverse("offers:new")
    for item in items:
        offer = item["offer"]
        item["what"] = what_words(offer, request.organization)
        item["create_url"] = (
            new_url
            + "?"
            + urlencode(
                {
                    "name": f"{offer['name']} · {item['segment']}"[:200],
                    "kind": offer["kind"],
                    "value": offer["value"],
                    "segment": item["segment_id"],
                }
            )
        )
        ev = item["evidence"]
        if ev["status"] == "measured":
            lo, hi = ev["interval"]
            item["evidence_words"] = (
                f"Earlier offers like this ({ev['recipients']:,} customers got one, "
                f"{ev['holdout']:,} were held back): "
                f"{ev['expected_uplift']:+.1f} points more of them ordered, and about "
                f"{money(ev['expected_incremental_revenue_per_recipient'], request.organization)} "
                f"extra per customer (somewhere between {money(lo, request.organization)} and "
                f"{money(hi, request.organization)}), for about "
                f"{money(ev['expected_cost_per_recipient'], request.organization)} of discount "
                "each."
            )
    return items, False


@org_required
@require_GET
def offer_list(request):
    offers = list(_offers().select_related("job", "audience"))
    ids = [o.pk for o in offers]
    results = {
        row["offer_id"]: row
        for row in OfferRedemption.objects.filter(offer_id__in=ids, counted=True)
        .values("offer_id")
        .annotate(redeemed=Count("id"), revenue=Sum("revenue"))
    }
    names = _segment_names({i for o in offers for i in (o.segment_ids or [])})
    for offer in offers:
        row = results.get(offer.pk, {})
        offer.redeemed = row.get("redeemed", 0)
        offer.revenue_words = money(row.get("revenue") or 0, request.organization)
        offer.what = what_words({"kind": offer.kind, "value": offer.value}, request.organization)
        offer.who = who_words(offer, names)
        offer.stalled = _stalled(offer)
    suggestions, suggestions_failed = _suggestions(request)
    return render(
        request,
        "offers/list.html",
        {
            "offers": offers,
            "any_building": any(o.status == OfferStatus.BUILDING and not o.stalled for o in offers),
            "suggestions": suggestions,
            "suggestions_failed": suggestions_failed,
        },
    )


# --- form ------------------------------------------------------------------------------
def _form_page(request, *, offer: Offer | None):
    from . import services

    choices = _choices(request.organization)
    error = None
    status = 200
    if request.method == "POST":
        initial = offer_initial(offer, request.organization) if offer else None
        form = OfferForm(request.POST, initial=initial, **choices)
        if form.is_valid():
            try:
                if offer is None:
                    saved = services.offer_create(
                        organization=request.organization,
                        data=form.service_data(),
                        user=request.user,
                        request=request,
                    )
                    messages.success(
                        request,
                        f"Offer “{saved.name}” saved. Its codes are being made now.",
                    )
                else:
                    data = form.service_data(only_changed=True)
                    saved = offer
                    if data:  # saved unchanged: nothing to do
                        saved = services.offer_update(
                            organization=request.organization,
                            offer=offer,
                            data=data,
                            user=request.user,
                            request=request,
                        )
                        messages.success(request, f"Offer “{saved.name}” saved.")
                return redirect("offers:detail", saved.pk)
            except ApplicationError as exc:
                if not form_errors_from(form, exc):
                    error = exc.message
                else:
                    error = exc.message or "Some answers need a look: see the notes below."
        else:
            error = "Some answers need a look: see the notes next to the fields."
        status = 400
    else:
        if offer is not None:
            initial = offer_initial(offer, request.organization)
        else:
            initial = suggestion_initial(request.GET)
        form = OfferForm(initial=initial, **choices)
    return render(
        request,
        "offers/form.html",
        {
            "form": form,
            "offer": offer,
            "error": error,
            "products": _products(),
            "has_segments": bool(choices["segments"]),
            "has_audiences": bool(choices["audiences"]),
            "from_suggestion": offer is None and bool(request.GET.get("kind")),
        },
        status=status,
    )


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def offer_new(request):
    return _form_page(request, offer=None)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def offer_edit(request, pk: int):
    return _form_page(request, offer=_offer(pk))


# --- one offer -------------------------------------------------------------------------
def _stats(offer: Offer) -> dict[str, Any]:
    from .stats import offer_stats

    try:
        return offer_stats(offer)
    except ApplicationError:
        return {}


def _bar(value, top) -> float:
    if value is None or not top:
        return 0.0
    return round(max(0.0, 100 * float(value) / float(top)), 1)


def _results(offer: Offer, organization) -> dict[str, Any] | None:
    """The results section: figures in words and the got-it-vs-hold-out chart."""
    if offer.status != OfferStatus.READY:
        return None
    stats = _stats(offer)
    rate1 = stats.get("conversion_rate")
    rate0 = stats.get("holdout_conversion_rate")
    rev1 = stats.get("revenue_per_recipient")
    rev0 = stats.get("holdout_revenue_per_member")
    top_rate = max(r for r in (rate1, rate0, 0) if r is not None)
    top_rev = max(float(r) for r in (rev1, rev0, 0) if r is not None)
    incremental = stats.get("incremental_revenue")
    interval = stats.get("interval")
    words = None
    if incremental is not None:
        words = f"About {money(incremental, organization)} extra"
        if interval and None not in interval:
            words += (
                f" (somewhere between {money(interval[0], organization)} and "
                f"{money(interval[1], organization)})"
            )
        words += "."
    recipients = stats.get("recipients", offer.recipients_count)
    holdout = stats.get("holdout", offer.holdout_count)
    by_store = []
    for row in stats.get("by_store") or []:
        by_store.append(
            {
                **row,
                "revenue_words": money(row.get("revenue"), organization),
                "rate_words": _pct(row.get("conversion_rate")),
            }
        )
    window = {
        key: parse_datetime(value) if isinstance(value, str) else value
        for key, value in (stats.get("window") or {}).items()
    }
    # an offer made after the newest orders: nothing to compare yet (not "£0 extra")
    window_empty = bool(
        window.get("start") and window.get("end") and window["start"] > window["end"]
    )
    if window_empty or not (rate1 or rate0):
        words = None
    return {
        "recipients": recipients,
        "holdout": holdout,
        "redeemed": stats.get("redeemed", 0),
        "revenue_words": money(stats.get("revenue", 0), organization),
        "discount_words": money(stats.get("discount_given", 0), organization),
        "incremental_words": words,
        "interval_spans_zero": bool(
            interval and None not in interval and interval[0] <= 0 <= interval[1]
        ),
        "sample_note": stats.get("sample_note") or "",
        "has_holdout": bool(holdout),
        "chart": [
            {
                "label": "Share who ordered",
                "rows": [
                    {"name": "Got the offer", "bar": _bar(rate1, top_rate), "words": _pct(rate1)},
                    {"name": "Held back", "bar": _bar(rate0, top_rate), "words": _pct(rate0)},
                ],
            },
            {
                "label": "Revenue per person",
                "rows": [
                    {
                        "name": "Got the offer",
                        "bar": _bar(rev1, top_rev),
                        "words": money(rev1, organization),
                    },
                    {
                        "name": "Held back",
                        "bar": _bar(rev0, top_rev),
                        "words": money(rev0, organization),
                    },
                ],
            },
        ],
        "by_store": by_store,
        "window": window,
        "window_empty": window_empty,
    }


def _detail_context(request, offer: Offer) -> dict[str, Any]:
    names = _segment_names(offer.segment_ids or [])
    codes = OfferRecipient.objects.filter(offer=offer, holdout=False)
    if offer.code_mode != "shared":
        codes = codes.exclude(code="")
    return {
        "offer": offer,
        "what": what_words({"kind": offer.kind, "value": offer.value}, request.organization),
        "who": who_words(offer, names),
        "terms": terms_words(offer, request.organization),
        "holdout_percent": round(offer.holdout_share * 100),
        "building": offer.status == OfferStatus.BUILDING and not _stalled(offer),
        "stalled": _stalled(offer),
        "warnings": [
            r["warning"] for r in offer.fairness or [] if isinstance(r, dict) and r.get("warning")
        ],
        "results": _results(offer, request.organization),
        "codes_count": codes.values("customer_id").distinct().count(),
        "campaign_url": _campaign_url(offer),
    }


@org_required
@require_GET
def offer_detail(request, pk: int):
    offer = _offer(pk)
    return render(request, "offers/detail.html", _detail_context(request, offer))


@org_required(write=True)
@require_POST
def offer_override(request, pk: int):
    """Record why a flagged offer may be sent anyway; a refused reason comes back next
    to the box with what was typed."""
    from . import services

    offer = _offer(pk)
    reason = (request.POST.get("reason") or "").strip()
    try:
        services.offer_override_fairness(
            organization=request.organization,
            offer=offer,
            reason=reason,
            user=request.user,
            request=request,
        )
    except ApplicationError as exc:
        field = ((exc.extra or {}).get("fields") or {}).get("reason")
        if field is None:
            messages.error(request, exc.message)
            return redirect(f"{reverse('offers:detail', args=[offer.pk])}#fairness")
        context = _detail_context(request, offer)
        context.update(override_error=str(field), override_reason=reason)
        return render(request, "offers/detail.html", context, status=400)
    messages.success(request, "Your reason is recorded. The offer can now be used in a campaign.")
    return redirect(f"{reverse('offers:detail', args=[offer.pk])}#fairness")


@org_required
@require_GET
def offer_codes_download(request, pk: int):
    from core.csvstream import csv_response

    offer = _offer(pk)
    rows = (
        OfferRecipient.objects.filter(offer=offer, holdout=False, customer__erased_at__isnull=True)
        .filter(~Q(code="") | Q(offer__code_mode="shared"))
        .order_by("pk")
        .values_list("customer__external_id", "customer__email", "code")
    )

    def lines():
        for external_id, email, code in rows.iterator(chunk_size=2000):
            yield [external_id, email, code or offer.shared_code]

    return csv_response(f"offer-{offer.pk}-codes.csv", ["customer", "email", "code"], lines())


@org_required(write=True)
@require_POST
def offer_rebuild(request, pk: int):
    from . import services

    offer = _offer(pk)
    try:
        services.offer_rebuild(organization=request.organization, offer=offer, user=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.info(request, f"Rebuilding “{offer.name}”. The codes update when it is done.")
    return redirect("offers:detail", offer.pk)


@org_required(write=True)
@require_http_methods(["GET", "POST"])
def offer_delete(request, pk: int):
    from . import services

    offer = _offer(pk)
    if request.method == "POST":
        name = offer.name
        try:
            services.offer_delete(
                organization=request.organization, offer=offer, user=request.user, request=request
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("offers:detail", offer.pk)
        messages.success(request, f"Offer “{name}” deleted.")
        return redirect("offers:list")
    return render(request, "offers/delete.html", {"offer": offer})
