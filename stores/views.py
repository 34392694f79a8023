"""Stores: the business's shops, listed, added, changed and removed on the site."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_POST

from accounts.actor import Actor
from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import promotions, services
from .forms import LocalPromotionForm, RegionPromotionForm, StoreForm
from .models import Store


def _errors_to_form(form, exc: ApplicationError) -> None:
    placed = False
    for field, problem in exc.extra.get("fields", {}).items():
        if exc.code == "duplicate":
            # "An audience named … exists already.", not just "Choose another name."
            problem = exc.message
        if field in form.fields and problem not in form.errors.get(field, []):
            form.add_error(field, problem)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


def _to_audience(request, audience, *, created: bool):
    """After a local or region promotion: to the audience's page, saying whether it
    is new or one the shop had already."""
    if created:
        messages.success(request, f"Audience “{audience.name}” saved. It is being built now.")
    else:
        messages.info(request, f"You have this audience already: “{audience.name}”.")
    return redirect("audiences:detail", pk=audience.pk)


@org_required
def store_list(request):
    form = StoreForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                store = services.store_create(
                    organization=request.organization,
                    actor=Actor.from_request(request),
                    request=request,
                    **form.cleaned_data,
                )
            except ApplicationError as exc:
                _errors_to_form(form, exc)
            else:
                messages.info(request, f"Added {store.name}.")
                return redirect("stores:list")
    return _list_page(request, form=form, region_form=RegionPromotionForm(prefix="region"))


def _list_page(request, *, form, region_form, status: int = 200):
    stores = list(Store.objects.all())
    overview = promotions.stores_overview(organization=request.organization)
    for store in stores:
        store.reach = overview["stores"].get(store.pk)
    return render(
        request,
        "stores/list.html",
        {
            "form": form,
            "region_form": region_form,
            "stores": stores,
            "overview": overview,
            "radii": [f"{km:g}" for km in promotions.OVERVIEW_RADII],
        },
        status=status,
    )


def _url(name: str, fallback: str) -> str:
    """A page of another app (offers, campaigns) that may not be installed yet."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return fallback


def _audience_rows(store) -> list[dict]:
    offer_new = _url("offers:new", "/offers/new/")
    campaign_new = _url("campaigns:new", "/campaigns/new/")
    return [
        {
            "audience": audience,
            "offer_url": f"{offer_new}?audience={audience.pk}",
            "campaign_url": f"{campaign_new}?audience={audience.pk}",
        }
        for audience in promotions.store_audiences(store)
    ]


def _detail_page(request, store, *, form, promote_form, status: int = 200):
    reach = promotions.store_reach(organization=request.organization, store=store)
    top = max([r["customers"] for r in reach["radii"]] or [0]) or 1
    for row in reach["radii"]:
        row["width"] = round(100 * row["customers"] / top, 1)
    return render(
        request,
        "stores/detail.html",
        {
            "store": store,
            "form": form,
            "promote_form": promote_form,
            "reach": reach,
            "audiences": _audience_rows(store),
        },
        status=status,
    )


@org_required
def store_detail(request, pk: int):
    store = get_object_or_404(Store.objects.all(), pk=pk)
    form = StoreForm.for_store(store, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.store_update(
                store=store,
                actor=Actor.from_request(request),
                request=request,
                **form.cleaned_data,
            )
        except ApplicationError as exc:
            _errors_to_form(form, exc)
        else:
            messages.info(request, f"Saved {store.name}.")
            return redirect("stores:list")
    return _detail_page(
        request, store, form=form, promote_form=LocalPromotionForm(prefix="promote")
    )


@org_required(write=True)
@require_POST
def store_promote(request, pk: int):
    """Start a local promotion: the audience of customers within N km of the store."""
    store = get_object_or_404(Store.objects.all(), pk=pk)
    form = LocalPromotionForm(request.POST, prefix="promote")
    if form.is_valid():
        try:
            audience, created = promotions.local_audience_create(
                organization=request.organization,
                store=store,
                km=form.cleaned_data["km"] or promotions.DEFAULT_KM,
                name=form.cleaned_data["name"],
                user=request.user,
                request=request,
            )
        except ApplicationError as exc:
            _errors_to_form(form, exc)
        else:
            return _to_audience(request, audience, created=created)
    return _detail_page(
        request, store, form=StoreForm.for_store(store), promote_form=form, status=400
    )


@org_required(write=True)
@require_POST
def region_promote(request):
    """A promotion for a region: the audience of customers in regions or postcodes."""
    form = RegionPromotionForm(request.POST, prefix="region")
    if form.is_valid():
        data = form.cleaned_data
        try:
            audience, created = promotions.region_audience_create(
                organization=request.organization,
                regions=form.split(data["regions"]),
                postal_prefixes=form.split(data["postal_prefixes"]),
                countries=form.split(data["countries"]),
                name=data["name"],
                user=request.user,
                request=request,
            )
        except ApplicationError as exc:
            _errors_to_form(form, exc)
        else:
            return _to_audience(request, audience, created=created)
    return _list_page(request, form=StoreForm(), region_form=form, status=400)


@org_required(write=True)
@require_POST
def store_delete(request, pk: int):
    store = get_object_or_404(Store.objects.all(), pk=pk)
    name = store.name
    services.store_delete(store=store, actor=Actor.from_request(request), request=request)
    messages.info(request, f"Removed {name}. Audiences that used it will need another place.")
    return redirect("stores:list")
