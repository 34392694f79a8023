"""Customer data: customers, products, orders and their lines, events, consent
history, feedback, and the imports that bring them in.

Every table is a tenant table (`TenantModel`): the organisation leads every index
and unique constraint. Rows are keyed by the business's own ids (`external_id`,
`sku`), so imports and bulk API calls are upserts.

`Customer` carries denormalised order statistics (`first_order_at`,
`last_order_at`, `orders_count`, `total_spent`) that every import keeps up to
date, so lists and segment rules never aggregate the order lines.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from accounts.tenancy import TenantModel, organization_field

from .searchkeys import AsciiLower, ByteOrderCharField

MONEY = {"max_digits": 18, "decimal_places": 4}


class Customer(TenantModel):
    organization = organization_field(db_index=False)  # its indexes lead with it
    external_id = models.CharField(max_length=255)
    # Stored lower-case (imports, the API, edits) and compared byte by byte, so that a
    # search for its start is one index range (customers.searchkeys).
    email = ByteOrderCharField(max_length=254, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    birth_date = models.DateField(null=True, blank=True)
    gender = models.CharField(max_length=32, blank=True)
    city = models.CharField(max_length=120, blank=True)
    region = models.CharField(max_length=120, blank=True)
    country = models.CharField(max_length=120, blank=True)
    postal_code = models.CharField(max_length=32, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    signup_at = models.DateTimeField(null=True, blank=True)
    accepts_email = models.BooleanField(default=False)
    accepts_sms = models.BooleanField(default=False)
    email_consent_at = models.DateTimeField(null=True, blank=True)
    email_consent_source = models.CharField(max_length=200, blank=True)
    sms_consent_at = models.DateTimeField(null=True, blank=True)
    sms_consent_source = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    # Kept up to date by imports and bulk writes (see services/stats.py).
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)
    orders_count = models.PositiveIntegerField(default=0)  # purchases, returns excluded
    total_spent = models.DecimalField(default=0, **MONEY)  # net of returns
    # Set when the person's data was erased: the row is an anonymous tombstone whose
    # external_id is a hash of the old one, so later imports naming it are refused.
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Search keys: the names with A–Z lowered, kept by the database, compared byte by
    # byte (customers.searchkeys). Never written by Django, imports or restores.
    first_name_key = models.GeneratedField(
        expression=AsciiLower("first_name"),
        output_field=ByteOrderCharField(max_length=150),
        db_persist=True,
    )
    last_name_key = models.GeneratedField(
        expression=AsciiLower("last_name"),
        output_field=ByteOrderCharField(max_length=150),
        db_persist=True,
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="customer_org_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "email"], name="customer_org_email"),
            # search by the start of a name (customers.selectors._starts)
            models.Index(fields=["organization", "first_name_key"], name="customer_org_first_key"),
            models.Index(fields=["organization", "last_name_key"], name="customer_org_last_key"),
            models.Index(fields=["organization", "country"], name="customer_org_country"),
            # ?updated_since= reads (incremental sync)
            models.Index(fields=["organization", "updated_at"], name="customer_org_updated"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def display_name(self) -> str:
        if self.erased_at:
            return f"Erased customer #{self.pk}"
        return self.full_name or self.email or self.external_id

    @property
    def is_erased(self) -> bool:
        return self.erased_at is not None


class MerchandiseSource(models.TextChoices):
    DETECTED = "detected", "Detected"
    OWNER = "owner", "Set by a person"


class Product(TenantModel):
    sku = models.CharField(max_length=255)
    name = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=255, blank=True)
    price = models.DecimalField(null=True, blank=True, **MONEY)
    url = models.CharField(max_length=1000, blank=True)
    image_url = models.CharField(max_length=1000, blank=True)
    in_stock = models.BooleanField(null=True, blank=True)
    # False for postage, fees, adjustments and vouchers (customers.merchandise):
    # left out of favourites, recommendations and demand.
    merchandise = models.BooleanField(default=True)
    # "detected" until a person (file column, API or product page) states it;
    # detection never overwrites a person's value.
    merchandise_source = models.CharField(
        max_length=16, choices=MerchandiseSource.choices, default=MerchandiseSource.DETECTED
    )
    # Hidden by the owner: left out of favourites, recommendations and demand.
    hidden = models.BooleanField(default=False)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "sku"], name="product_org_sku")
        ]
        indexes = [
            models.Index(fields=["organization", "category"], name="product_org_category"),
            models.Index(fields=["organization", "name"], name="product_org_name"),
            models.Index(fields=["organization", "updated_at"], name="product_org_updated"),
        ]

    def __str__(self) -> str:
        return self.name or self.sku


class OrderStatus(models.TextChoices):
    PAID = "paid", "Paid"
    PENDING = "pending", "Pending"
    CANCELLED = "cancelled", "Cancelled"
    REFUNDED = "refunded", "Refunded"


class Order(TenantModel):
    organization = organization_field(db_index=False)  # its indexes lead with it
    # The business's order id; for rows without one, "h:<content hash>:<occurrence>".
    external_id = models.CharField(max_length=255)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="orders"
    )  # null: a guest order
    ordered_at = models.DateTimeField()
    currency = models.CharField(max_length=3, blank=True)
    channel = models.CharField(max_length=64, blank=True)
    location = models.CharField(max_length=255, blank=True)
    total = models.DecimalField(default=0, **MONEY)  # sum of the line amounts (net)
    # The order's shipping charge and taxes as its file gave them (never in a line's
    # amount); null: not given. Revenue counts them when the owner chooses so
    # (Organization.revenue_basis).
    shipping_amount = models.DecimalField(null=True, blank=True, **MONEY)
    tax_amount = models.DecimalField(null=True, blank=True, **MONEY)
    is_return = models.BooleanField(default=False)
    # The shop's payment status: only paid orders are purchases and revenue; pending
    # ones are kept apart, cancelled (voided, failed) and refunded ones count for nothing.
    status = models.CharField(
        max_length=16, choices=OrderStatus.choices, default="paid", db_default="paid"
    )
    properties = models.JSONField(default=dict, blank=True)
    # Hash of everything the import wrote for this order: equal means unchanged.
    content_hash = models.CharField(max_length=40, blank=True)
    lines_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="order_org_external_id"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "customer", "ordered_at"], name="order_org_customer_time"
            ),
            models.Index(fields=["organization", "ordered_at"], name="order_org_time"),
            models.Index(fields=["organization", "updated_at"], name="order_org_updated"),
        ]

    def __str__(self) -> str:
        return self.external_id


class OrderLine(TenantModel):
    organization = organization_field(db_index=False)  # its indexes lead with it
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product = models.ForeignKey(
        Product, null=True, blank=True, on_delete=models.SET_NULL, related_name="lines"
    )
    sku = models.CharField(max_length=255, blank=True)
    product_name = models.CharField(max_length=500, blank=True)
    category = models.CharField(max_length=255, blank=True)
    quantity = models.IntegerField(default=1)  # negative: returned
    unit_price = models.DecimalField(null=True, blank=True, **MONEY)
    amount = models.DecimalField(default=0, **MONEY)  # line total, net of its discount
    discount_code = models.CharField(max_length=255, blank=True, default="", db_default="")
    discount_amount = models.DecimalField(null=True, blank=True, **MONEY)  # taken off amount
    position = models.PositiveIntegerField(default=0)
    # The integration's own key of the line within its order (`line_id`): a bulk
    # write or file naming it updates that line and keeps the order's others, so
    # an order split across batches is stored whole. Blank: the order's lines are
    # replaced as a whole when it is imported again.
    line_id = models.CharField(max_length=255, blank=True, default="", db_default="")

    class Meta(TenantModel.Meta):
        indexes = [
            models.Index(fields=["organization", "order"], name="line_org_order"),
            models.Index(fields=["organization", "product"], name="line_org_product"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product_name or self.sku}"


class DeletedOrder(TenantModel):
    """An order a person deleted: a re-import of the file it came from skips it
    (reported per row) unless the import is told to bring deleted orders back."""

    external_id = models.CharField(max_length=255)
    deleted_at = models.DateTimeField(default=timezone.now)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="deletedorder_org_external_id"
            )
        ]

    def __str__(self) -> str:
        return f"deleted order {self.external_id}"


# Event types Segmenta writes itself (CONTRACT.md, "Events written by Segmenta"):
# imports and the API may not use them, and they do not move the organisation's
# latest data date (they are dated when Segmenta acts, not when the business traded).
SEGMENTA_EVENT_TYPES = frozenset(
    {
        "message_sent",
        "message_opened",
        "message_clicked",
        "message_bounced",
        "message_complained",
        "unsubscribed",
        "converted",
        "offer_redeemed",
        "tier_changed",
        "survey_answered",
    }
)


class Event(TenantModel):
    organization = organization_field(db_index=False)  # its indexes lead with it
    # The business's event id; for rows without one, "h:<content hash>:<occurrence>".
    external_id = models.CharField(max_length=255, null=True, blank=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="events")
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=40, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    # when an import or bulk call last wrote it (an event sent again with other
    # content is updated in place): ?updated_since= reads
    updated_at = models.DateTimeField(default=timezone.now, db_default=Now())

    class Meta(TenantModel.Meta):
        # NULLs are distinct, so the constraint binds only ids that are set.
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="event_org_external_id"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "customer", "occurred_at"], name="event_org_customer_time"
            ),
            models.Index(
                fields=["organization", "type", "occurred_at"], name="event_org_type_time"
            ),
            models.Index(fields=["organization", "updated_at"], name="event_org_updated"),
        ]

    def __str__(self) -> str:
        return f"{self.type} at {self.occurred_at:%Y-%m-%d %H:%M}"


class ConsentChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class ConsentVia(models.TextChoices):
    """How a change of consent reached Segmenta (services/consent.py)."""

    IMPORT = "import", "Import"
    API = "api", "API"
    SITE = "site", "Edited on the site"
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe link"
    PREFERENCE = "preference", "Preference page"
    SYSTEM = "system", "Segmenta"


class ConsentChange(TenantModel):
    """Every grant or withdrawal of consent, kept after the current value changes.
    Written only by `services/consent.py` (`consent_change`, and `ConsentBatch` for
    imports and bulk records), which applies the precedence rules first."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consent_changes")
    channel = models.CharField(max_length=8, choices=ConsentChannel.choices)
    granted = models.BooleanField()
    # When the person decided: the time the data states (a `*_consent_at` column or
    # field), else when Segmenta heard of it.
    changed_at = models.DateTimeField(default=timezone.now)
    source = models.CharField(max_length=200, blank=True)
    via = models.CharField(max_length=12, choices=ConsentVia.choices, blank=True)
    # Who recorded it (accounts.actor.Actor): a member, an API key or the system.
    actor_kind = models.CharField(max_length=8, blank=True)
    actor_label = models.CharField(max_length=254, blank=True)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        indexes = [
            models.Index(
                fields=["organization", "customer", "changed_at"], name="consent_org_customer"
            )
        ]
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.channel} {'granted' if self.granted else 'withdrawn'}"


class Feedback(TenantModel):
    """Reviews, survey answers and support messages (analysed by research later)."""

    external_id = models.CharField(max_length=255)  # the file's feedback_id, or a content hash
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.SET_NULL, related_name="feedback"
    )
    created_at = models.DateTimeField()  # when the feedback was given
    source = models.CharField(max_length=64, blank=True)
    rating = models.FloatField(null=True, blank=True)
    text = models.TextField(blank=True)
    properties = models.JSONField(default=dict, blank=True)
    content_hash = models.CharField(max_length=40, blank=True)
    imported_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "external_id"], name="feedback_org_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "created_at"], name="feedback_org_time"),
            models.Index(fields=["organization", "customer"], name="feedback_org_customer"),
        ]
        verbose_name_plural = "feedback"

    def __str__(self) -> str:
        return f"{self.source or 'feedback'} {self.external_id}"


class ImportKind(models.TextChoices):
    CUSTOMERS = "customers", "Customers"
    PRODUCTS = "products", "Products"
    ORDERS = "orders", "Orders"
    EVENTS = "events", "Events"
    FEEDBACK = "feedback", "Feedback"


class ImportStatus(models.TextChoices):
    DRAFT = "draft", "Not started"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class Import(TenantModel):
    kind = models.CharField(max_length=16, choices=ImportKind.choices)
    status = models.CharField(
        max_length=10, choices=ImportStatus.choices, default=ImportStatus.DRAFT
    )
    original_filename = models.CharField(max_length=255, blank=True)
    # Relative to MEDIA_ROOT: org_<id>/imports/<file>; blank for command-line imports
    # (the operator's file is read in place) and bulk API calls.
    file = models.CharField(max_length=500, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    source = models.CharField(max_length=16, default="upload")  # upload | command | api
    mapping = models.JSONField(default=dict, blank=True)  # source column -> field
    options = models.JSONField(default=dict, blank=True)  # date_format, delimiter, encoding
    detected = models.JSONField(default=dict, blank=True)  # what the reader found
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)  # the first errors; all are in errors_file
    errors_file = models.CharField(max_length=500, blank=True)
    message = models.CharField(max_length=1000, blank=True)
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "-created_at"], name="import_org_created")]
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} import #{self.pk}"

    @property
    def is_finished(self) -> bool:
        return self.status in (
            ImportStatus.SUCCEEDED,
            ImportStatus.FAILED,
            ImportStatus.CANCELLED,
        )

    @property
    def error_count(self) -> int:
        return self.rejected


class ErasedIdentifier(TenantModel):
    """What erasure keeps of a person: a keyed hash (customers.services.identity) of
    each identifier it removed, so later data naming any of them is refused and the
    stored files can be cleaned, while nothing that names the person is kept."""

    kind = models.CharField(max_length=8)  # id (case-insensitive), email, phone
    digest = models.CharField(max_length=64)
    erased_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "digest"], name="erased_identifier_org_kind_digest"
            )
        ]

    def __str__(self) -> str:
        return f"erased {self.kind} {self.digest[:8]}…"


class CustomerChange(TenantModel):
    """When a pipeline run last changed what integrations see of a customer (their
    segments, their shown predictions), for `?updated_since=` (core.api.params).

    A narrow table beside the customer row, issue 15: marking a million customers
    changed by rewriting their rows cost 224 s a run (each row and 13 indexes), since
    `updated_at` is indexed and so no such update is a HOT update. Here a run writes
    one narrow row a changed customer. `updated_at` stays the customer record's own
    change time (edits, consent, orders)."""

    # No database-level foreign keys (as the other rows a run writes in bulk, see
    # accounts.tenancy.organization_field): a run writes up to a row a customer, each
    # of which PostgreSQL would check. Django's on_delete still cascades, and the rows
    # name customers the run read in the same statement.
    organization = organization_field(db_index=False, db_constraint=False)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="+", db_index=False, db_constraint=False
    )
    changed_at = models.DateTimeField()

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "customer"], name="custchange_org_customer"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "changed_at"], name="custchange_org_changed")
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} changed {self.changed_at:%Y-%m-%d %H:%M}"
