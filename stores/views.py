"""Stores: the business's shops, listed, added, changed and removed on the site."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.actor import Actor
from accounts.decorators import org_required
from core.exceptions import ApplicationError

from . import services
from .forms import StoreForm
from .models import Store


def _errors_to_form(form: StoreForm, exc: ApplicationError) -> None:
    placed = False
    for field, problem in exc.extra.get("fields", {}).items():
        if field in form.fields and problem not in form.errors.get(field, []):
            form.add_error(field, problem)
            placed = True
    if not placed:
        form.add_error(None, exc.message)


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
    return render(
        request,
        "stores/list.html",
        {"form": form, "stores": Store.objects.all()},
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
    return render(request, "stores/detail.html", {"store": store, "form": form})


@org_required(write=True)
@require_POST
def store_delete(request, pk: int):
    store = get_object_or_404(Store.objects.all(), pk=pk)
    name = store.name
    services.store_delete(store=store, actor=Actor.from_request(request), request=request)
    messages.info(request, f"Removed {name}. Audiences that used it will need another place.")
    return redirect("stores:list")
