"""The customer-data API: thin views over the selectors and services."""

from __future__ import annotations

from typing import NamedTuple

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, parsers, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.viewsets import GenericViewSet

from accounts.actor import Actor
from core.api.base import TenantViewSetMixin
from core.api.pagination import CURSOR
from core.api.params import UPDATED_SINCE, updated_since_filter, when_param
from core.exceptions import ApplicationError
from core.uploads import upload_refused

from .. import registry, selectors, services
from ..models import ConsentVia, Customer, Event, Import, Order, Product
from ..services.consent import consent_history
from ..services.imports import run_records
from ..views import read_transaction
from .serializers import (
    BulkResultSerializer,
    ConsentChangeSerializer,
    CustomerRecordSerializer,
    CustomerSerializer,
    ErasedSerializer,
    EventRecordSerializer,
    EventSerializer,
    ImportCreateSerializer,
    ImportSerializer,
    OrderLineRecordSerializer,
    OrderSerializer,
    OrderUpdateSerializer,
    ProductRecordSerializer,
    ProductSerializer,
)

BULK_LIMIT = 1000
CUSTOMER_FILTERS = (
    "external_id",
    "search",
    "q",
    "country",
    "accepts_email",
    "accepts_sms",
    "has_ordered",
    "ordering",
    UPDATED_SINCE,
)
ImportStarted = inline_serializer(
    name="ImportStarted",
    fields={"job": serializers.IntegerField(), "import": serializers.IntegerField()},
)


TOTAL_TIMEOUT = 60  # the unfiltered list's count may lag by a minute


def _count_kept_a_minute(name: str, compute) -> int:
    """`compute()`, a count of the organisation's customers, kept TOTAL_TIMEOUT."""
    return selectors.cached_per_organization(name, compute, TOTAL_TIMEOUT)


class TotalPaginator(Paginator):
    """Pages of the whole (unfiltered) customer list, whose `count` is the
    organisation's number of customers counted at most a minute ago: an exact count
    of a million rows costs a few hundred milliseconds, on every page."""

    @cached_property
    def count(self) -> int:
        return _count_kept_a_minute("api_total", lambda: super(TotalPaginator, self).count)


EXACT_COUNT_UP_TO = 10_000  # a filtered list's count past this is kept a minute


class Counted(NamedTuple):
    """Rows this request counted already, reading at most `cap` (`more`: there are
    more than that): a search counts its matches to choose how its page is read."""

    n: int
    more: bool
    cap: int


def _count_capped(qs, counted: Counted | None) -> tuple[int, bool]:
    """`selectors.count_capped(qs, EXACT_COUNT_UP_TO)`, answered from `counted` (a
    count of the same rows) when that one tells: counting a search every customer
    matches up to the cap again took 0.4–0.6 s of every page at a million customers."""
    if counted is not None:
        if not counted.more:
            return min(counted.n, EXACT_COUNT_UP_TO), counted.n > EXACT_COUNT_UP_TO
        if counted.cap >= EXACT_COUNT_UP_TO:
            return EXACT_COUNT_UP_TO, True
    return selectors.count_capped(qs, EXACT_COUNT_UP_TO)


def filtered_paginator(params, counted: Counted | None = None) -> type[Paginator]:
    """Pages of a filtered customer list (a search, a country…) whose `count` is exact
    up to EXACT_COUNT_UP_TO; past it, it is counted at most a minute ago for the same
    filters. Counting a search every customer matches (the start of an e-mail address
    they share) took 0.3–0.45 s of every page at a million customers. `counted`: the
    rows the request counted already (a search's matches), not counted again."""
    import hashlib
    import json

    wanted = {k: params.getlist(k) for k in sorted(params) if k not in ("page", "page_size")}
    digest = hashlib.sha256(json.dumps(wanted, sort_keys=True).encode()).hexdigest()[:24]

    class FilteredPaginator(Paginator):
        @cached_property
        def count(self) -> int:
            first, more = _count_capped(self.object_list, counted)
            if not more:
                return first
            return _count_kept_a_minute(
                f"api_count:{digest}", lambda: super(FilteredPaginator, self).count
            )

    return FilteredPaginator


def exact_paginator(counted: Counted | None = None) -> type[Paginator]:
    """Pages whose `count` is exact (a sync's changed rows), taken from `counted` when
    that found every row."""

    class ExactPaginator(Paginator):
        @cached_property
        def count(self) -> int:
            if counted is not None and not counted.more:
                return counted.n
            return super().count

    return ExactPaginator


class ScopedMixin(TenantViewSetMixin):
    """The shared tenant scope; schema generation (no organisation) sees an empty set."""

    def get_base_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.model.all_objects.none()
        return super().get_base_queryset()


def _org(request) -> dict:
    """Serializer context: whose limits apply."""
    return {"organization": request.organization}


def _broken(value) -> bool:
    """A lone surrogate (JSON's "\\ud800") anywhere in `value`: no UTF-8 can hold it."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_broken(k) or _broken(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_broken(v) for v in value)
    return False


def _refuse_broken_text(records: list[dict]) -> None:
    """400 naming the record and field, rather than a 500 deep in the import (the
    content hash and the database cannot hold a lone surrogate)."""
    for index, record in enumerate(records):
        for key, value in record.items():
            if _broken(key) or _broken(value):
                name = key.encode("utf-8", "replace").decode("utf-8") if _broken(key) else key
                message = (
                    f"Record {index}: {name} holds a broken character (a lone surrogate such "
                    "as \\ud800), which cannot be stored."
                )
                raise ApplicationError(message, {"fields": {f"{index}.{name}": message}})


def _bulk(request, kind: str) -> Response:
    records = request.data
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ApplicationError(
            "The body must be a JSON list of objects (records with the CSV column names).",
            {"fields": {"body": "Not a list of objects."}},
        )
    if len(records) > BULK_LIMIT:
        raise ApplicationError(
            f"At most {BULK_LIMIT:,} records per call (got {len(records):,}); split the list.",
            {"fields": {"body": "Too many records."}},
        )
    _refuse_broken_text(records)
    outcome = run_records(
        organization=request.organization,
        kind=kind,
        records=records,
        allow_deleted=request.query_params.get("allow_deleted", "").lower() in ("true", "1"),
        actor=Actor.from_request(request),
    )
    c = outcome.counts
    started = None
    if outcome.changed_anything:
        from segmentation.pipeline import pipeline_after_data_change

        try:
            started = pipeline_after_data_change(organization=request.organization, user=None)
        except ApplicationError:
            pass
    # the refresh this write started (or that was waiting and will read it), by job
    refresh = started.get("jobs", {}) if isinstance(started, dict) else {}
    return Response(
        {
            "jobs": [{"id": pk, "kind": kind} for kind, pk in refresh.items()],
            "created": c.created,
            "updated": c.updated,
            "unchanged": c.unchanged,
            "rejected": c.rejected,
            "errors": [
                {k: e[k] for k in ("index", "field", "message") if k in e} for e in outcome.errors
            ],
        }
    )


# Request examples of the bulk writes (/api/docs/), keyed by what the records are.
BULK_EXAMPLES = {
    "customers": [
        {
            "customer_id": "C1001",
            "email": "ada@example.com",
            "first_name": "Ada",
            "country": "GB",
            "accepts_email": True,
            "email_consent_at": "2026-11-02T09:30:00Z",
            "loyalty_tier": "gold",
        },
        {"customer_id": "C1002", "email": "grace@example.com", "attributes": {"source": "pos"}},
    ],
    "products": [
        {"sku": "MUG-01", "name": "Blue mug", "category": "Kitchen", "price": "12.50"},
        {"sku": "POSTAGE", "name": "Postage", "merchandise": False},
    ],
    "order lines": [
        {
            "order_id": "O-5001",
            "line_id": "1",
            "customer_id": "C1001",
            "ordered_at": "2026-11-20T14:02:00Z",
            "sku": "MUG-01",
            "quantity": 2,
            "unit_price": "12.50",
            "currency": "GBP",
        },
        {
            "order_id": "O-5001",
            "line_id": "2",
            "customer_id": "C1001",
            "ordered_at": "2026-11-20T14:02:00Z",
            "sku": "POSTAGE",
            "amount": "3.90",
        },
    ],
    "events": [
        {
            "event_id": "E-77",
            "customer_id": "C1001",
            "occurred_at": "2026-11-21T08:15:00Z",
            "type": "email_opened",
            "properties": {"campaign": "november"},
        }
    ],
}
BULK_NOTES = {
    "customers": " `loyalty_tier` is not a column: it is kept in the customer's `attributes`.",
    "order lines": " Both lines belong to order O-5001; further lines may come in later calls.",
}
BULK_ANSWER = {
    "jobs": [{"id": 812, "kind": "segments"}, {"id": 813, "kind": "predictions"}],
    "created": 1,
    "updated": 0,
    "unchanged": 0,
    "rejected": 1,
    "errors": [{"index": 1, "field": "email", "message": "Enter a valid email address."}],
}


def _bulk_examples(what: str) -> list[OpenApiExample]:
    return [
        OpenApiExample(
            f"Two {what}" if len(BULK_EXAMPLES[what]) > 1 else f"One of the {what}",
            value=BULK_EXAMPLES[what],
            description="Keyed by your own ids; sending it again changes nothing."
            + BULK_NOTES.get(what, ""),
            request_only=True,
        ),
        OpenApiExample(
            "One stored, one rejected",
            value=BULK_ANSWER,
            description="Valid records are stored even when others are rejected; `jobs` are "
            "the refreshes this write started (follow them at jobs/{id}/).",
            response_only=True,
            status_codes=["200"],
        ),
    ]


def _bulk_schema(record_serializer, what: str, parameters=None):
    return extend_schema(
        parameters=parameters,
        examples=_bulk_examples(what),
        request=record_serializer(many=True),
        responses={
            200: BulkResultSerializer,
            400: OpenApiResponse(description="Not a list of objects, or more than 1,000."),
        },
        description=(
            f"Upsert up to 1,000 {what} keyed by your own ids. Valid records are stored even when "
            "others are rejected; each rejection names the record's index (0-based), field and "
            "reason. Sending the same records again changes nothing."
        ),
    )


UPDATED_SINCE_PARAM = OpenApiParameter(
    UPDATED_SINCE,
    OpenApiTypes.DATETIME,
    description="Only what changed at or after this time (ISO 8601; without a zone, the "
    "organisation's): its own fields, and for customers also their segments, predictions "
    "and order totals. Change time, not order or event date.",
)

CUSTOMER_PARAMS = [
    OpenApiParameter("external_id", str, description="Your id for the customer (exact)."),
    OpenApiParameter("search", str, description="Name, email or id (starts with)."),
    OpenApiParameter("country", str),
    OpenApiParameter("accepts_email", bool),
    OpenApiParameter("accepts_sms", bool),
    OpenApiParameter("has_ordered", bool, description="Has at least one purchase."),
    OpenApiParameter(
        "ordering",
        str,
        enum=list(selectors.API_ORDERING),
        description="Sort order (default: newest id first); another value answers 400.",
    ),
    OpenApiParameter("page_size", int, description="Up to 1000."),
    UPDATED_SINCE_PARAM,
]


@extend_schema_view(
    list=extend_schema(parameters=CUSTOMER_PARAMS),
    partial_update=extend_schema(
        description="Changes the fields sent and leaves the others; `null` clears a value. "
        "A change of consent follows the contract's consent rules and is kept in the "
        "customer's consent history: an opt-in after the person unsubscribed answers 400 "
        "naming the field. `attributes` replaces the held object (send all its keys).",
        examples=[
            OpenApiExample(
                "Withdraw email consent and fix the city",
                value={"accepts_email": False, "city": "Leeds"},
                request_only=True,
            ),
            OpenApiExample(
                "Replace the custom attributes",
                value={"attributes": {"loyalty_tier": "silver", "source": "pos"}},
                request_only=True,
            ),
        ],
    ),
    destroy=extend_schema(
        summary="Erase a customer (as erase/ does)",
        description="Erases the person (same as `erase/`): personal data removed, orders kept "
        "without identity, the id refused by later imports.",
    ),
)
class CustomerViewSet(
    ScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    GenericViewSet,
):
    """Customers of the organisation (erased people are not listed)."""

    model = Customer
    serializer_class = CustomerSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    # a search's matches, counted by `get_queryset` and handed on to the page's count
    search_counted: Counted | None = None

    def get_base_queryset(self):
        return super().get_base_queryset().filter(erased_at__isnull=True)

    @property
    def list_params(self):
        extras = [extra.param for extra in registry.customer_filters()]
        return (*CUSTOMER_FILTERS, *extras)

    def get_queryset(self):
        qs = self.get_base_queryset()
        if self.action == "list":
            params = self.request.query_params
            qs = selectors.customer_filter(params) & qs
            qs = updated_since_filter(self.request, qs)
            ordering = params.get("ordering", "")
            if ordering and ordering not in selectors.API_ORDERING:
                raise ApplicationError(
                    f"Cannot order by '{ordering[:40]}'. Use one of: "
                    + ", ".join(selectors.API_ORDERING)
                    + ".",
                    {"fields": {"ordering": "Unknown ordering."}},
                )
            field, desc = selectors.API_ORDERING.get(ordering, ("id", True))
            # cursor pages are read in id order (core.api.pagination): nothing to choose
            if selectors.searching(params) and CURSOR not in params:
                n, more = selectors.search_count(qs)
                self.search_counted = Counted(n, more, selectors.SEARCH_MANY)
                qs = selectors.search_ordering(qs, field, desc, many=more)
            else:
                qs = qs.order_by(f"-{field}" if desc else field, "-pk" if desc else "pk")
        return qs

    def _enriched(self, customers):
        ids = [c.pk for c in customers]
        return {"enrichment": selectors.customer_segment_info(ids), **self.get_serializer_context()}

    @read_transaction
    def list(self, request, *args, **kwargs):
        params = request.query_params
        queryset = self.get_queryset()  # a search counts its matches here, once
        if not any(params.get(name) for name in self.list_params if name != "ordering"):
            self.paginator.django_paginator_class = TotalPaginator
        elif not params.get(UPDATED_SINCE):
            self.paginator.django_paginator_class = filtered_paginator(params, self.search_counted)
        else:  # a sync's changed rows are counted exactly
            self.paginator.django_paginator_class = exact_paginator(self.search_counted)
        page = self.paginate_queryset(queryset)
        data = CustomerSerializer(page, many=True, context=self._enriched(page)).data
        return self.get_paginated_response(data)

    @read_transaction
    def retrieve(self, request, *args, **kwargs):
        customer = self.get_object()
        return Response(CustomerSerializer(customer, context=self._enriched([customer])).data)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        customer = self.get_object()
        serializer = CustomerSerializer(
            customer, data=request.data, partial=True, context=_org(request)
        )
        serializer.is_valid(raise_exception=True)
        customer = services.customer_update(
            customer=customer,
            data=serializer.validated_data,
            actor=Actor.from_request(request),
            via=ConsentVia.API,
        )
        return Response(CustomerSerializer(customer, context=self._enriched([customer])).data)

    def destroy(self, request, *args, **kwargs):
        services.customer_erase(
            customer=self.get_object(), actor=Actor.from_request(request), request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @_bulk_schema(CustomerRecordSerializer, "customers")
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        return _bulk(request, "customers")

    @extend_schema(
        summary="Everything held on a customer",
        responses={200: OpenApiTypes.OBJECT},
        description="Everything held on this person.",
    )
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        customer = self.get_object()
        return Response(
            services.customer_export_record(
                customer=customer, actor=Actor.from_request(request), request=request
            )
        )

    @extend_schema(
        summary="A customer's consent history",
        responses=ConsentChangeSerializer(many=True),
        description="The customer's changes of consent, newest first: when the person "
        "decided, how it came (import, api, site, unsubscribe, preference), who recorded it.",
    )
    @action(detail=True, methods=["get"])
    def consent(self, request, pk=None):
        history = consent_history(customer=self.get_object())
        page = self.paginate_queryset(history)
        return self.get_paginated_response(ConsentChangeSerializer(page, many=True).data)

    @extend_schema(
        summary="Erase a customer",
        request=None,
        responses=ErasedSerializer,
        description="Removes the person's personal data; their orders are kept without the "
        "identity and later imports refuse the id. A `customer.erased` webhook announces it.",
    )
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        customer = services.customer_erase(
            customer=self.get_object(), actor=Actor.from_request(request), request=request
        )
        return Response({"id": customer.pk, "erased_at": customer.erased_at})


def _person(request):
    """The signed-in user, or None for an API key (which is not a user)."""
    return Actor.from_request(request).user


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("search", str, description="Name or sku."),
            OpenApiParameter("category", str),
            OpenApiParameter("sku", str),
            OpenApiParameter(
                "merchandise", bool, description="false: postage, fees and adjustments."
            ),
            OpenApiParameter("hidden", bool),
            UPDATED_SINCE_PARAM,
        ]
    )
)
class ProductViewSet(
    ScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    GenericViewSet,
):
    """The product catalogue (unknown skus in order files create products too)."""

    model = Product
    serializer_class = ProductSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    list_params = ("search", "q", "category", "sku", "merchandise", "hidden", UPDATED_SINCE)

    def get_queryset(self):
        qs = self.get_base_queryset()
        if self.action == "list":
            qs = selectors.product_filter(self.request.query_params) & qs
            qs = updated_since_filter(self.request, qs)
            sku = self.request.query_params.get("sku")
            if sku:
                qs = qs.filter(sku=sku)
            qs = qs.order_by("sku", "pk")
        return qs

    def create(self, request, *args, **kwargs):
        serializer = ProductSerializer(data=request.data, context=_org(request))
        serializer.is_valid(raise_exception=True)
        product = services.product_create(data=serializer.validated_data)
        return Response(ProductSerializer(product).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        if not kwargs.get("partial"):
            return Response(status=status.HTTP_405_METHOD_NOT_ALLOWED)
        product = self.get_object()
        serializer = ProductSerializer(
            product, data=request.data, partial=True, context=_org(request)
        )
        serializer.is_valid(raise_exception=True)
        data = {k: v for k, v in serializer.validated_data.items() if k != "sku"}
        return Response(ProductSerializer(services.product_update(product=product, data=data)).data)

    @_bulk_schema(ProductRecordSerializer, "products")
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        return _bulk(request, "products")


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("customer", int, description="Customer id (the API's `id`)."),
            OpenApiParameter("customer_id", str, description="Your id for the customer."),
            OpenApiParameter("external_id", str, description="Order id."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Ordered at or after."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Ordered before."),
            UPDATED_SINCE_PARAM,
        ]
    )
)
class OrderViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Orders with their lines (returns have negative lines; guest orders no customer).
    A person can correct (PATCH) or delete an order; a deleted order is not re-created
    by re-importing its file unless the import is given `allow_deleted`."""

    model = Order
    serializer_class = OrderSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]
    list_params = ("customer", "customer_id", "external_id", "since", "until", UPDATED_SINCE)

    def get_queryset(self):
        if self.action == "destroy":
            # Only the id: a stored order whose amounts cannot be read can still go.
            return self.get_base_queryset().only("pk")
        qs = self.get_base_queryset().select_related("customer").prefetch_related("lines")
        p = self.request.query_params
        if self.action == "list":
            if p.get("customer"):
                qs = qs.filter(customer_id=_int(p["customer"], "customer"))
            if p.get("customer_id"):
                qs = qs.filter(customer__external_id=p["customer_id"])
            if p.get("external_id"):
                qs = qs.filter(external_id=p["external_id"])
            if p.get("since"):
                qs = qs.filter(ordered_at__gte=_when(self.request, "since"))
            if p.get("until"):
                qs = qs.filter(ordered_at__lt=_when(self.request, "until"))
            qs = updated_since_filter(self.request, qs)
            qs = qs.order_by("-ordered_at", "-pk")
        return qs

    @extend_schema(request=OrderUpdateSerializer, responses=OrderSerializer)
    def partial_update(self, request, *args, **kwargs):
        order = self.get_object()
        serializer = OrderUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.order_update(
            order=order,
            data=serializer.validated_data,
            actor=Actor.from_request(request),
            request=request,
        )
        return Response(OrderSerializer(self.get_queryset().get(pk=order.pk)).data)

    @extend_schema(
        responses={204: None},
        description="Deletes the order and its lines; its customer's statistics are "
        "recomputed. Re-importing the file it came from skips it (reported per row) "
        "unless the import is given `allow_deleted`.",
    )
    def destroy(self, request, *args, **kwargs):
        services.order_delete(
            order_id=self.get_object().pk, actor=Actor.from_request(request), request=request
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @_bulk_schema(
        OrderLineRecordSerializer,
        "order lines",
        parameters=[
            OpenApiParameter(
                "allow_deleted",
                bool,
                description="Re-create orders a person deleted (skipped and reported otherwise).",
            )
        ],
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        return _bulk(request, "orders")


def _int(value: str, name: str) -> int:
    from core.api.params import id_param

    return id_param(value, name)


def _when(request, name: str):
    """An ISO 8601 date or time; without a zone, in the organisation's time zone."""
    return when_param(request, name)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("customer", int, description="Customer id (the API's `id`)."),
            OpenApiParameter("type", str),
            UPDATED_SINCE_PARAM,
        ]
    )
)
class EventViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """Activity events of customers."""

    model = Event
    serializer_class = EventSerializer
    list_params = ("customer", "type", UPDATED_SINCE)

    def get_queryset(self):
        qs = self.get_base_queryset().select_related("customer")
        p = self.request.query_params
        if self.action == "list":
            if p.get("customer"):
                qs = qs.filter(customer_id=_int(p["customer"], "customer"))
            if p.get("type"):
                qs = qs.filter(type=p["type"])
            qs = updated_since_filter(self.request, qs)
            qs = qs.order_by("-occurred_at", "-pk")
        return qs

    @_bulk_schema(EventRecordSerializer, "events")
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        return _bulk(request, "events")


class ImportViewSet(ScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, GenericViewSet):
    """File imports and their reports."""

    model = Import
    serializer_class = ImportSerializer
    list_params = ()
    parser_classes = [parsers.MultiPartParser, parsers.FormParser, parsers.JSONParser]

    def get_queryset(self):
        return self.get_base_queryset().order_by("-created_at", "-pk")

    @extend_schema(
        summary="Import a CSV file",
        request={"multipart/form-data": ImportCreateSerializer},
        responses={202: ImportStarted},
        description="Upload a CSV (or .csv.gz) file; it is imported as a background job. "
        "Follow the job at jobs/{id}/ and read the report at imports/{id}/.",
    )
    def create(self, request, *args, **kwargs):
        data = request.data
        refused = upload_refused(request)
        if refused:  # stopped at the limit while streaming (core.uploads)
            raise ApplicationError(
                refused, {"fields": {"file": "Too large."}}, status=413, code="too_large"
            )
        serializer = ImportCreateSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        imp = services.import_create(
            organization=request.organization,
            kind=data["kind"],
            uploaded_file=data["file"],
            user=_person(request),
            mapping=data.get("map") or None,
            options={
                k: data.get(k)
                for k in ("date_format", "delimiter", "encoding", "allow_deleted", "rates")
            },
            source="api",
        )
        job = services.import_start(imp=imp, user=_person(request))
        return Response({"job": job.pk, "import": imp.pk}, status=status.HTTP_202_ACCEPTED)
