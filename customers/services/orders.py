"""Corrections and deletions of single orders by a person (the site and the API).

Both keep the customer's order statistics right. A deletion leaves a
`DeletedOrder` behind so that re-importing the file the order came from does not
bring it back unless asked; a correction keeps the order's import hash, so the
same file imported again leaves it as corrected (a file with different content
for the order replaces it, as any re-import does).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation

from django.db import models, transaction
from django.utils import timezone

from core.exceptions import ApplicationError, NotFound

from ..merchandise import is_merchandise
from ..models import Customer, DeletedOrder, Order, OrderLine, Product
from .customers import customers_touch
from .imports.db import BulkDb
from .imports.kinds import Q4, CustomerTotals, _decimal
from .limits import moment_problem, money_problem
from .stats import customer_stats_refresh

ORDER_EDITABLE = ("ordered_at", "customer_id", "currency", "channel", "location", "properties")
LINE_FIELDS = ("sku", "product_name", "category", "quantity", "unit_price", "amount")


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", {"fields": {field: message}})


def _line(index: int, data: dict) -> dict:
    """One corrected line: quantity (default 1) and unit_price and/or amount, as in a file."""
    where = f"lines[{index}]"
    quantity = data.get("quantity")
    quantity = 1 if quantity is None else quantity
    if not isinstance(quantity, int) or abs(quantity) > 2_000_000_000:
        raise _invalid(f"{where}.quantity", "must be a whole number up to 2,000,000,000")
    money: dict[str, Decimal | None] = {}
    for name in ("unit_price", "amount"):
        value = data.get(name)
        if value is None or value == "":
            money[name] = None
            continue
        try:
            value = Decimal(str(value))
        except InvalidOperation:
            raise _invalid(f"{where}.{name}", "must be a number") from None
        problem = money_problem(value)
        if problem:
            raise _invalid(f"{where}.{name}", problem)
        money[name] = value.quantize(Q4)
    unit_price, amount = money["unit_price"], money["amount"]
    if amount is None:
        if unit_price is None:
            raise _invalid(f"{where}.unit_price", "give unit_price or amount")
        product = unit_price * quantity
        problem = money_problem(product)
        if problem:
            raise _invalid(f"{where}.amount", f"quantity × unit_price = {problem}")
        amount = product.quantize(Q4)
    elif unit_price is None:
        unit_price = (amount / quantity).quantize(Q4) if quantity else None
    sku = str(data.get("sku") or "")[:255]
    return {
        "sku": sku,
        "product_name": str(data.get("product_name") or "")[:500],
        "category": str(data.get("category") or "")[:255],
        "quantity": quantity,
        "unit_price": unit_price,
        "amount": amount,
    }


@transaction.atomic
def order_update(*, order: Order, data: dict, actor=None, request=None) -> Order:
    """Correct an order: its fields (`customer_id` is the customer's own id, null for
    a guest) and, when `lines` is given, all its lines. Checked against the same
    limits as imports; the customers' statistics follow."""
    from accounts.services import audit_log

    before_customer, before_total = (
        order.customer_id,
        _decimal(Order.objects.filter(pk=order.pk).values_list("total", flat=True).first()),
    )
    changed: list[str] = []
    for name, value in data.items():
        if name == "lines":
            continue
        if name not in ORDER_EDITABLE:
            raise _invalid(name, "cannot be changed")
        if name == "ordered_at":
            if not isinstance(value, dt.datetime):
                raise _invalid(name, "must be a date and time")
            problem = moment_problem(value)
            if problem:
                raise _invalid(name, problem)
        elif name == "customer_id":
            value = _customer_for(value)
            name = "customer"
        elif name == "currency":
            value = (value or "").strip().upper()
            if value and (len(value) != 3 or not value.isalpha()):
                raise _invalid("currency", "is not a 3-letter currency code such as EUR")
        elif name == "properties":
            if value is not None and not isinstance(value, dict):
                raise _invalid(name, "must be an object of names and values")
            value = value or {}
        else:
            field = Order._meta.get_field(name)
            max_length = field.max_length if isinstance(field, models.Field) else None
            value = str(value or "")[:max_length]
        setattr(order, name, value)
        changed.append(name)
    lines = None
    if "lines" in data:
        if not isinstance(data["lines"], list) or not data["lines"]:
            raise _invalid(
                "lines", "must be a list of at least one line (delete the order instead)"
            )
        lines = [_line(i, ln if isinstance(ln, dict) else {}) for i, ln in enumerate(data["lines"])]
        total = sum((ln["amount"] for ln in lines), Decimal(0))
        problem = money_problem(total)
        if problem:
            raise _invalid("lines", f"the order total {problem}")
        order.total = total
        order.lines_count = len(lines)
        order.is_return = all(ln["quantity"] < 0 or ln["amount"] < 0 for ln in lines)
        changed += ["total", "lines_count", "is_return"]
    problem = CustomerTotals(
        BulkDb(order.organization_id), [before_customer, order.customer_id]
    ).move(old=(before_customer, before_total), new=(order.customer_id, order.total))
    if problem:
        raise _invalid("lines", f"the customer's total spent would become {problem}")
    if not changed:
        return order
    order.updated_at = timezone.now()
    order.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
    if lines is not None:
        OrderLine.objects.filter(order=order).delete()
        skus = {ln["sku"] for ln in lines if ln["sku"]}
        products = dict(Product.objects.filter(sku__in=skus).values_list("sku", "pk"))
        for sku in skus - set(products):
            name = next(ln["product_name"] for ln in lines if ln["sku"] == sku)
            products[sku] = Product.objects.create(
                sku=sku, name=name, merchandise=is_merchandise(sku=sku, name=name)
            ).pk
        OrderLine.objects.bulk_create(
            OrderLine(
                organization_id=order.organization_id,
                order=order,
                product_id=products.get(ln["sku"]),
                position=i,
                **ln,
            )
            for i, ln in enumerate(lines)
        )
    customer_stats_refresh(
        organization_id=order.organization_id, customer_ids=[before_customer, order.customer_id]
    )
    customers_touch(customer_ids=[before_customer, order.customer_id])
    audit_log(
        organization=order.organization,
        action="order.corrected",
        actor=actor,
        target=order.external_id,
        details={"fields": sorted(set(changed) - {"lines_count", "is_return"})},
        request=request,
    )
    _refresh_results(order.organization, actor)
    return order


def _refresh_results(organization, actor) -> None:
    """Segments and predictions follow the corrected data, as after an import."""

    def start():
        from segmentation.pipeline import pipeline_after_data_change

        try:
            pipeline_after_data_change(organization=organization, user=actor)
        except ApplicationError:
            pass  # nothing to run (no steps), or refused: the data is saved either way

    transaction.on_commit(start)


def _customer_for(external_id) -> Customer | None:
    if external_id in (None, ""):
        return None
    customer = Customer.objects.filter(external_id=str(external_id), erased_at__isnull=True).first()
    if customer is None:
        raise _invalid("customer_id", f"no customer with the id '{external_id}'")
    return customer


@transaction.atomic
def order_delete(*, order_id: int, actor=None, request=None) -> None:
    """Delete an order and its lines, remember the deletion (a re-import skips the
    order unless asked) and recompute its customer's statistics. Works on rows
    whose stored values cannot be read (the raw deletes load no amounts)."""
    from accounts.actor import Actor
    from accounts.services import audit_log

    row = (
        Order.objects.filter(pk=order_id)
        .values("external_id", "customer_id", "organization_id")
        .first()
    )
    if row is None:
        raise NotFound("No such order.")
    db = BulkDb(row["organization_id"])
    db.delete_in("customers_orderline", "order_id", [order_id])
    db.delete_in("customers_order", "id", [order_id])
    DeletedOrder.objects.update_or_create(
        external_id=row["external_id"],
        defaults={
            "deleted_at": timezone.now(),
            "deleted_by": Actor.of(actor, request=request).user,
        },
    )
    customer_stats_refresh(organization_id=db.org, customer_ids=[row["customer_id"]])
    customers_touch(customer_ids=[row["customer_id"]])
    from accounts.models import Organization

    organization = Organization.objects.get(pk=db.org)
    audit_log(
        organization=organization,
        action="order.deleted",
        actor=actor,
        target=row["external_id"],
        request=request,
    )
    _refresh_results(organization, actor)
