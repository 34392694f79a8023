"""Site pages for customer data: lists, the customer and product pages, the import
wizard and reports, and privacy requests."""

from __future__ import annotations

import functools
import json

from django.conf import settings
from django.contrib import messages
from django.db import connection, transaction
from django.http import FileResponse, Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.actor import Actor
from accounts.decorators import org_required
from accounts.models import Role
from core.exceptions import ApplicationError
from core.formats import size_text
from core.models import Job
from core.uploads import upload_refused

from . import selectors, services
from .forms import (
    DATE_FORMAT_CHOICES,
    ConfirmNameForm,
    CustomerForm,
    ImportOptionsForm,
    ImportUploadForm,
    OrderForm,
    OrderLineFormSet,
    ProductFlagsForm,
)
from .merchandise import detect_merchandise
from .models import Customer, Import, ImportStatus, Order, Product
from .services.consent import consent_history
from .services.exports import customers_csv_rows
from .services.importing import import_errors_path
from .services.imports.columns import FIELD_HELP, FIELDS
from .services.privacy import organization_export_expires_at, organization_export_state

PAGE_SIZE = 50


def read_transaction(view):
    """Run a read-only page in one transaction on PostgreSQL. Outside a transaction
    every query is its own (BEGIN, the tenant scope, the query, COMMIT: four round
    trips); inside one, two. Not on SQLite, where a transaction takes the write lock
    up front (IMMEDIATE) and a page would wait for the worker's writes."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if connection.vendor != "postgresql" or not connection.get_autocommit():
            return view(*args, **kwargs)
        with transaction.atomic():
            return view(*args, **kwargs)

    return wrapper


# --- customers -------------------------------------------------------------------------


@org_required
@read_transaction
def customer_list(request):
    qs = selectors.customer_filter(request.GET)
    sort = request.GET.get("sort") or "recent"
    if sort not in selectors.CUSTOMER_SORTS:
        sort = "recent"
    after = request.GET.get("after", "")
    search = selectors.searching(request.GET)
    # counted once: the same count (up to SEARCH_MANY) says how a search's page is read
    count, more = (
        (selectors.search_count(qs) if search else selectors.count_capped(qs))
        if not after
        else (None, False)
    )
    customers, next_cursor = selectors.customer_page(
        qs,
        sort=sort,
        after=after,
        size=PAGE_SIZE,
        search=search,
        many=more if search and not after else None,
    )
    params = request.GET.copy()
    params.pop("after", None)
    next_params = params.copy()
    if next_cursor:
        next_params["after"] = next_cursor
    extra_filters = selectors.registry.customer_filters()
    filtered = any(
        request.GET.get(k)
        for k in ("search", "country", "accepts_email", "accepts_sms", "has_ordered")
    ) or any(request.GET.get(f.param) for f in extra_filters)
    return render(
        request,
        "customers/list.html",
        {
            "customers": customers,
            "count": count,
            "count_more": more,
            "next_query": next_params.urlencode() if next_cursor else "",
            "first_query": params.urlencode(),
            "is_later_page": bool(after),
            "sorts": [(k, v[3]) for k, v in selectors.CUSTOMER_SORTS.items()],
            "sort": sort,
            "countries": selectors.customer_countries(),
            # a filter that offers choices (segments by name) is shown as a select
            "extra_filters": [
                (f, request.GET.get(f.param, ""), _filter_choices(f)) for f in extra_filters
            ],
            "q": request.GET,
            "filtered": filtered,
            # a list with no match is never mistaken for an empty shop
            "has_customers": bool(customers) or selectors.customers_active().exists(),
            "export_query": params.urlencode(),
        },
    )


def _filter_choices(customer_filter) -> list[tuple[str, str]] | None:
    choices = getattr(customer_filter.func, "choices", None)
    return list(choices()) if callable(choices) else None


@org_required
def customer_export_csv(request):
    qs = selectors.customer_filter(request.GET).order_by("pk")
    stamp = timezone.localdate().isoformat()
    response = StreamingHttpResponse(customers_csv_rows(qs), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="customers-{stamp}.csv"'
    return response


def _customer(pk: int) -> Customer:
    return get_object_or_404(Customer.objects.filter(erased_at__isnull=True), pk=pk)


@org_required
@read_transaction
def customer_detail(request, pk: int):
    customer = _customer(pk)
    return render(
        request,
        "customers/detail.html",
        {
            "customer": customer,
            "orders": selectors.customer_orders(customer),
            "events": selectors.customer_events(customer),
            "consent_history": consent_history(customer=customer, limit=50),
            "panels": selectors.customer_panels(request=request, customer=customer),
            "attributes": sorted((customer.attributes or {}).items()),
        },
    )


@org_required(write=True)
def customer_edit(request, pk: int):
    customer = _customer(pk)
    form = CustomerForm(request.POST or None, instance=Customer.objects.get(pk=customer.pk))
    if request.method == "POST" and form.is_valid():
        data = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.customer_update(
                customer=customer, data=data, actor=Actor.from_request(request)
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Saved.")
            return redirect("customers:detail", pk=customer.pk)
    return render(request, "customers/edit.html", {"customer": customer, "form": form})


@org_required
def customer_export_json(request, pk: int):
    customer = _customer(pk)
    data = services.customer_export_record(
        customer=customer, actor=Actor.from_request(request), request=request
    )
    response = HttpResponse(
        json.dumps(data, indent=2, ensure_ascii=False, default=str),
        content_type="application/json; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="customer-{customer.pk}.json"'
    return response


@org_required(write=True)
def customer_erase(request, pk: int):
    customer = _customer(pk)
    if request.method == "POST":
        try:
            services.customer_erase(
                customer=customer, actor=Actor.from_request(request), request=request
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return redirect("customers:detail", pk=customer.pk)
        messages.success(
            request,
            "The person's data was erased. Their orders are kept without their identity, "
            "and their id, email and phone will be refused by later imports.",
        )
        return redirect("customers:list")
    return render(request, "customers/erase.html", {"customer": customer})


# --- orders ----------------------------------------------------------------------------


def _order(pk: int) -> Order:
    return get_object_or_404(
        Order.objects.select_related("customer").prefetch_related("lines"), pk=pk
    )


def _org_tz(organization):
    import zoneinfo

    try:
        return zoneinfo.ZoneInfo(organization.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


@org_required
def order_detail(request, pk: int):
    return render(request, "customers/order.html", {"order": _order(pk)})


@org_required(write=True)
def order_edit(request, pk: int):
    order = _order(pk)
    tz = _org_tz(request.organization)
    initial = {
        "ordered_at": timezone.localtime(order.ordered_at, tz).strftime("%Y-%m-%dT%H:%M:%S"),
        "currency": order.currency,
        "channel": order.channel,
        "location": order.location,
    }
    lines = [
        {k: getattr(ln, k) for k in ("sku", "product_name", "category", "quantity", "unit_price")}
        for ln in order.lines.all()
    ]
    form = OrderForm(request.POST or None, initial=initial)
    formset = OrderLineFormSet(request.POST or None, initial=lines, prefix="lines")
    if request.method == "POST" and form.is_valid() and formset.is_valid():
        typed = timezone.make_naive(form.cleaned_data["ordered_at"])
        stored = timezone.make_naive(order.ordered_at, tz).replace(microsecond=0)
        if (
            typed == stored
            and not set(form.changed_data) - {"ordered_at"}
            and not formset.has_changed()
        ):
            # Saving unchanged rewrites nothing (no new lines, no audit entry).
            messages.info(request, "Nothing was changed.")
            return redirect("customers:order", pk=order.pk)
        kept = [
            f.cleaned_data
            for f in formset.forms
            if f.cleaned_data and not f.cleaned_data.get("DELETE")
        ]
        data = {
            **form.cleaned_data,
            # The form reads the time in the site's zone; people type the organisation's.
            "ordered_at": timezone.make_naive(form.cleaned_data["ordered_at"]).replace(tzinfo=tz),
            "lines": [{k: v for k, v in ln.items() if k != "DELETE"} for ln in kept],
        }
        try:
            services.order_update(
                order=order, data=data, actor=Actor.from_request(request), request=request
            )
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Order saved; the customer's figures were updated.")
            return redirect("customers:order", pk=order.pk)
    return render(
        request, "customers/order_edit.html", {"order": order, "form": form, "formset": formset}
    )


@org_required(write=True)
def order_delete(request, pk: int):
    order = get_object_or_404(Order.objects.only("pk", "external_id", "customer_id"), pk=pk)
    if request.method == "POST":
        services.order_delete(order_id=order.pk, actor=Actor.from_request(request), request=request)
        messages.success(request, f"Order {order.external_id} was deleted.")
        if order.customer_id:
            return redirect("customers:detail", pk=order.customer_id)
        return redirect("customers:list")
    return render(request, "customers/order_delete.html", {"order": order})


# --- products --------------------------------------------------------------------------


@org_required
def product_list(request):
    qs = selectors.product_filter(request.GET)
    sort = request.GET.get("sort") or "name"
    order = selectors.PRODUCT_SORTS.get(sort, "name")
    count, more = selectors.count_capped(qs)
    # a page beyond the last shows the last one (as the site's other lists do); past
    # the counting cap, a bound keeps the offset a number the database can take
    last_page = max(1, -(-count // PAGE_SIZE)) if not more else 10**7
    page = min(max(1, _int(request.GET.get("page"), 1)), last_page)
    start = (page - 1) * PAGE_SIZE
    rows = list(qs.order_by(order, "pk")[start : start + PAGE_SIZE + 1])
    params = request.GET.copy()
    params.pop("page", None)
    return render(
        request,
        "customers/products.html",
        {
            "products": rows[:PAGE_SIZE],
            "has_next": len(rows) > PAGE_SIZE,
            "page": page,
            "base_query": params.urlencode(),
            "count": count,
            "count_more": more,
            "categories": selectors.product_categories(),
            "q": request.GET,
            "sort": sort,
        },
    )


def _int(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


@org_required
def product_detail(request, pk: int):
    product = get_object_or_404(Product.objects.all(), pk=pk)
    sales = selectors.product_sales(product=product, organization=request.organization)
    return render(
        request,
        "customers/product.html",
        {
            "product": product,
            "sales": sales,
            "chart": {
                "months": sales["months"],
                "units": sales["units"],
                "revenue": sales["revenue"],
            },
            "lines": selectors.product_recent_lines(product),
            "attributes": sorted((product.attributes or {}).items()),
            "flags_form": ProductFlagsForm(
                initial={"merchandise": product.merchandise, "hidden": product.hidden}
            ),
            "can_set_flags": Actor.from_request(request).can(Role.ADMIN),
            "merchandise_reason": detect_merchandise(
                sku=product.sku, name=product.name, category=product.category
            ).reason,
        },
    )


@org_required(role=Role.ADMIN)
@require_POST
def product_flags(request, pk: int):
    """The owner corrects "counts as merchandise" and "hidden"; a value they
    change is theirs from then on (detection leaves it alone)."""
    product = get_object_or_404(Product.objects.all(), pk=pk)
    form = ProductFlagsForm(request.POST)
    if form.is_valid():
        # only what changed: saving the form untouched changes nothing
        data = {k: v for k, v in form.cleaned_data.items() if getattr(product, k) != v}
        if data:
            services.product_update(product=product, data=data)
            messages.success(request, "Product settings saved.")
    return redirect("customers:product", pk=product.pk)


# --- imports ---------------------------------------------------------------------------


@org_required
def import_list(request):
    return render(request, "customers/imports.html", {"imports": selectors.imports_recent()})


@org_required(write=True)
def import_new(request):
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    refused = upload_refused(request)
    if refused:
        # The upload was stopped at the limit (core.uploads): say so, not "no file".
        form = ImportUploadForm(request.POST)
        form.is_valid()
        form.add_error("file", refused)
        return render(
            request,
            "customers/import_new.html",
            {"form": form, "max_size": size_text(_max_bytes(request))},
            status=413,
        )
    if request.method == "POST" and form.is_valid():
        try:
            imp = services.import_create(
                organization=request.organization,
                kind=form.cleaned_data["kind"],
                uploaded_file=form.cleaned_data["file"],
                user=request.user,
            )
        except ApplicationError as exc:
            form.add_error("file", exc.message)
        else:
            return redirect("customers:import_detail", pk=imp.pk)
    return render(
        request,
        "customers/import_new.html",
        {"form": form, "max_size": size_text(_max_bytes(request))},
    )


def _max_bytes(request) -> int:
    """The largest file the organisation may upload (its plan's, within the platform's)."""
    from .services.imports.file_limits import upload_max_bytes

    return upload_max_bytes(organization=request.organization)


def _mapping_rows(imp: Import, preview: dict, chosen: dict | None = None) -> list[dict]:
    """The mapping form's rows; `chosen` (the owner's choices just refused) wins
    over the stored mapping, so nothing they chose is lost."""
    fields = FIELDS[imp.kind]
    mapping = chosen if chosen is not None else imp.mapping
    rows = []
    for i, column in enumerate(preview["header"]):
        current = mapping.get(column, column)
        samples = [r[i] for r in preview["rows"] if i < len(r) and r[i].strip()][:3]
        rows.append(
            {
                "index": i,
                "column": column,
                "current": current if current in fields else ("" if current == "" else "@"),
                "suggested": preview["suggested"].get(column, column),
                "samples": samples,
            }
        )
    return rows


def _import_context(imp: Import, **extra) -> dict:
    context = {"imp": imp, **extra}
    if imp.status == ImportStatus.DRAFT:
        try:
            preview = services.import_preview(imp=imp)
        except ApplicationError as exc:
            context["preview_error"] = exc.message
            return context
        context.update(
            preview=preview,
            mapping_rows=_mapping_rows(imp, preview, extra.get("chosen")),
            field_choices=[(f, f.replace("_", " ")) for f in FIELDS[imp.kind]],
            field_help=FIELD_HELP,
            options_form=extra.get("options_form")
            or ImportOptionsForm(
                initial={
                    "date_format": imp.options.get("date_format", ""),
                    "delimiter": "tab"
                    if imp.options.get("delimiter") == "\t"
                    else imp.options.get("delimiter", ""),
                    "encoding": imp.options.get("encoding", ""),
                    "rates": ", ".join(
                        f"{code}={rate}" for code, rate in (imp.options.get("rates") or {}).items()
                    ),
                }
            ),
            date_formats=DATE_FORMAT_CHOICES,
        )
    return context


@org_required
def import_detail(request, pk: int):
    imp = get_object_or_404(Import.objects.select_related("job"), pk=pk)
    if request.htmx and imp.status != ImportStatus.DRAFT:
        # the page's status block polls this: progress and report in one answer
        return render(request, "customers/_import_status.html", _import_context(imp))
    return render(request, "customers/import_detail.html", _import_context(imp))


@org_required(write=True)
@require_POST
def import_map(request, pk: int):
    """The wizard's mapping step: check a sample, or start the import."""
    imp = get_object_or_404(Import.objects.all(), pk=pk)
    if imp.status != ImportStatus.DRAFT:
        messages.info(request, "This import has already started.")
        return redirect("customers:import_detail", pk=imp.pk)
    options_form = ImportOptionsForm(request.POST)
    options = options_form.options() if options_form.is_valid() else {}
    header = imp.detected.get("columns") or []
    mapping = {}
    for i, column in enumerate(header):
        choice = request.POST.get(f"map_{i}", "@")
        mapping[column] = column if choice == "@" else choice  # "@": keep as attribute
    try:
        imp = services.import_set_mapping(imp=imp, mapping=mapping, options=options)
        if request.POST.get("action") == "start":
            services.import_start(imp=imp, user=request.user)
            return redirect("customers:import_detail", pk=imp.pk)
        check = services.import_validate(imp=imp)
    except ApplicationError as exc:
        imp.refresh_from_db()
        return render(
            request,
            "customers/import_detail.html",
            _import_context(imp, error=exc.message, options_form=options_form, chosen=mapping),
            status=400,
        )
    return render(
        request,
        "customers/import_detail.html",
        _import_context(imp, check=check, options_form=options_form),
    )


@org_required
def import_errors_csv(request, pk: int):
    imp = get_object_or_404(Import.objects.all(), pk=pk)
    path = import_errors_path(imp)
    if path is None:
        raise Http404("No rejected rows.")
    return FileResponse(
        open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
        as_attachment=True,
        filename=f"import-{imp.pk}-rejected-rows.csv",
        content_type="text/csv",
    )


# --- privacy ------------------------------------------------------------------------------


@org_required(role=Role.OWNER)
def privacy(request):
    exports = []
    for job in Job.objects.filter(kind="org_export").order_by("-created_at")[:10]:
        state, _, note = organization_export_state(job)
        expires_at = organization_export_expires_at(job)
        exports.append({"job": job, "state": state, "note": note, "expires_at": expires_at})
    return render(
        request,
        "customers/privacy.html",
        {
            "exports": exports,
            "delete_form": ConfirmNameForm(),
            "expire_days": settings.ORG_EXPORT_EXPIRE_DAYS,
        },
    )


@org_required(role=Role.OWNER)
@require_POST
def org_export(request):
    job = services.organization_export_start(
        organization=request.organization, user=request.user, request=request
    )
    messages.info(request, "Your export is being prepared; the download appears here when ready.")
    return redirect("core:job_detail", pk=job.pk)


@org_required(role=Role.OWNER)
def org_export_download(request, pk: int):
    job = get_object_or_404(Job.objects.filter(kind="org_export"), pk=pk)
    state, path, note = organization_export_state(job)
    if state in ("expired", "withdrawn"):
        title = "This export expired" if state == "expired" else "This export was removed"
        context = {"status": 410, "title": title, "text": note}
        return render(request, "error.html", context, status=410)
    if path is None:
        raise Http404(note)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115


@org_required(role=Role.OWNER)
@require_POST
def org_delete(request):
    form = ConfirmNameForm(request.POST)
    organization = request.organization
    name = organization.name
    if not form.is_valid():
        messages.error(request, "Type the organisation's name to confirm.")
        return redirect("customers:privacy")
    try:
        services.organization_delete(
            organization=organization,
            user=request.user,
            confirm_name=form.cleaned_data["confirm_name"],
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("customers:privacy")
    request.user.refresh_from_db()
    messages.info(request, f"{name} and all its data were deleted.")
    if request.user.current_organization_id is None:
        return redirect("accounts:organization_new")
    return redirect("core:dashboard")
