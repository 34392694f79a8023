"""Writes to single customers and products (the site's forms and the API's PATCH)."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.exceptions import ApplicationError
from core.web import web_url_problem

from .. import fields as customer_fields
from ..merchandise import is_merchandise
from ..models import Customer, MerchandiseSource, Product
from .consent import CHANNELS, CONSENT_FIELDS, consent_change
from .limits import moment_problem

CUSTOMER_EDITABLE = tuple(customer_fields.names(editable=True))
PRODUCT_EDITABLE = (
    "name",
    "category",
    "price",
    "url",
    "image_url",
    "in_stock",
    "merchandise",
    "hidden",
    "attributes",
)
PRODUCT_URLS = ("url", "image_url")


def _check_product_urls(data: dict) -> dict:
    """Product links are shown as links: only http(s) addresses (no `javascript:`)."""
    data = dict(data)
    for name in PRODUCT_URLS:
        if isinstance(data.get(name), str):
            data[name] = data[name].strip()
            problem = web_url_problem(data[name])
            if problem:
                raise ApplicationError(
                    f"The product's {name} {problem}.", {"fields": {name: problem.capitalize()}}
                )
    return data


def _cleared(model, name: str):
    f = model._meta.get_field(name)
    if f.null:
        return None
    return f.get_default()


@transaction.atomic
def _refuse_erased(*, customer: Customer, name: str, value: str) -> None:
    # Erasure refuses the person by every identifier it removed, edits included.
    from .privacy import erased_identifier_exists

    if erased_identifier_exists(organization_id=customer.organization_id, kind=name, value=value):
        what = "email address" if name == "email" else "phone number"
        raise ApplicationError(
            f"This {what} belonged to a customer whose data was erased; it cannot be used again.",
            {"fields": {name: "Belongs to an erased customer."}},
        )


@transaction.atomic
def customer_update(
    *, customer: Customer, data: dict, source: str = "", actor=None, via: str = ""
) -> Customer:
    """Set the given fields; `None` clears a field. Consent goes through the consent
    service (history, precedence): a change it refuses raises, and nothing is saved."""
    if customer.erased_at is not None:
        raise ApplicationError("This customer's data was erased; it cannot be changed.")
    now = timezone.now()
    changed = []
    consent = {}
    for name, value in data.items():
        if name not in CUSTOMER_EDITABLE:
            raise ApplicationError(f"'{name}' cannot be changed.")
        if name in CONSENT_FIELDS:
            consent[name] = value
            continue
        if value is None:
            value = _cleared(Customer, name)
        if name in ("signup_at", "birth_date"):
            problem = moment_problem(value)
            if problem:
                raise ApplicationError(f"{name}: {problem}", {"fields": {name: problem}})
        if name == "email" and value:
            value = value.strip().lower()
        if getattr(customer, name) == value:
            continue
        if name in ("email", "phone") and value:
            _refuse_erased(customer=customer, name=name, value=value)
        setattr(customer, name, value)
        changed.append(name)
    if changed:
        customer.updated_at = now
        customer.save(update_fields=[*changed, "updated_at"])
    for channel in CHANNELS:
        if f"accepts_{channel}" in consent:
            consent_change(
                customer=customer,
                channel=channel,
                granted=bool(consent[f"accepts_{channel}"]),
                actor=actor,
                via=via,
                source=source,
                strict=True,
            )
    return customer


def product_create(*, data: dict) -> Product:
    sku = (data.get("sku") or "").strip()
    if not sku:
        raise ApplicationError("A product needs a sku.", {"fields": {"sku": "Required."}})
    if Product.objects.filter(sku=sku).exists():
        raise ApplicationError(
            f"A product with sku '{sku}' already exists; change it with PATCH or products/bulk/.",
            {"fields": {"sku": "Already exists."}},
        )
    data = _check_product_urls(data)
    values = {k: v for k, v in data.items() if k in PRODUCT_EDITABLE and v is not None}
    if "merchandise" in values:
        values["merchandise_source"] = MerchandiseSource.OWNER
    else:
        values["merchandise"] = is_merchandise(
            sku=sku, name=values.get("name", ""), category=values.get("category", "")
        )
    return Product.objects.create(sku=sku, **values)


def product_update(*, product: Product, data: dict) -> Product:
    data = _check_product_urls(data)
    changed = []
    for name, value in data.items():
        if name not in PRODUCT_EDITABLE:
            raise ApplicationError(f"'{name}' cannot be changed.")
        if value is None:
            value = _cleared(Product, name)
        if getattr(product, name) != value:
            setattr(product, name, value)
            changed.append(name)
    if "merchandise" in data:
        # A person said so: detection leaves it alone from now on. Clearing it
        # (null) hands it back to detection.
        source = (
            MerchandiseSource.DETECTED if data["merchandise"] is None else MerchandiseSource.OWNER
        )
        if product.merchandise_source != source:
            product.merchandise_source = source
            changed.append("merchandise_source")
    if product.merchandise_source == MerchandiseSource.DETECTED and {
        "merchandise_source",
        "name",
        "category",
    } & set(changed):
        detected = is_merchandise(sku=product.sku, name=product.name, category=product.category)
        if product.merchandise != detected:
            product.merchandise = detected
            changed.append("merchandise")
    if changed:
        changed = list(dict.fromkeys(changed))
        product.updated_at = timezone.now()
        product.save(update_fields=[*changed, "updated_at"])
    return product


def customers_touch(*, customer_ids, when=None) -> int:
    """Mark customers as changed (`updated_at`) when something derived about them
    changed — their segments, their predictions, their order totals — so that an
    integration reading `?updated_since=` sees them. Returns how many."""
    ids = sorted({int(i) for i in customer_ids if i is not None})
    when = when or timezone.now()
    touched = 0
    for start in range(0, len(ids), 1000):
        touched += Customer.objects.filter(pk__in=ids[start : start + 1000]).update(updated_at=when)
    return touched


def changed_keys(before, after) -> set[int]:
    """Customer ids whose rows differ between two iterables of (customer_id, *values)."""
    old, new = set(before), set(after)
    return {row[0] for row in old ^ new}
