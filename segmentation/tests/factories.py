"""Factories for segments and personas, a writer that puts generated customer data
straight into the database (tests and the benchmark), and `build_world` for the
tenant isolation sweep."""

from __future__ import annotations

import datetime as dt

import factory
import numpy as np
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone

from accounts.tenancy import tenant_context
from core.tests.bulk import insert_rows
from segmentation.models import (
    Persona,
    Segment,
    SegmentationRun,
    SegmentationSettings,
    SegmentKind,
    SegmentMembership,
)


class SegmentationRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SegmentationRun

    as_of = dt.date(2024, 6, 30)
    chosen_k = 2
    quality = factory.LazyFunction(lambda: {"silhouette": 0.5, "candidates": []})
    is_live = False


class SegmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Segment

    kind = SegmentKind.CLUSTER
    name = factory.Sequence(lambda n: f"Segment {n}")
    key = factory.Sequence(lambda n: f"cluster-{n + 1}")
    size = 0


class PersonaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Persona

    name = factory.Sequence(lambda n: f"Persona {n}")
    summary = "A portrait."
    traits = factory.LazyFunction(lambda: ["Buys often"])
    actions = factory.LazyFunction(lambda: ["Reward them"])


def _customer(organization, external_id: str):
    from customers.models import Customer

    return Customer.objects.create(
        organization=organization,
        external_id=external_id,
        email=f"{external_id}@example.com",
        first_name="Ada",
        last_name="Lovelace",
        country="United Kingdom",
        orders_count=1,
        total_spent=10,
    )


def build_world(organization) -> None:
    """One of every segmentation tenant model for `organization` (isolation sweep)."""
    try:
        from customers.tests.factories import build_world as customers_world
    except ImportError:
        customers_world = None
    if customers_world is not None:
        customers_world(organization)
    with tenant_context(organization):
        from customers.models import Customer

        customer = Customer.objects.first() or _customer(organization, "world-1")
        SegmentationSettings.objects.get_or_create(organization=organization)
        run = SegmentationRun.objects.create(
            organization=organization, as_of=dt.date(2024, 6, 30), chosen_k=2, is_live=True
        )
        segment = Segment.objects.create(
            organization=organization,
            kind=SegmentKind.CLUSTER,
            name="World segment",
            key="cluster-world",
            size=1,
            first_run=run,
            last_run=run,
            profile={"sentences": ["buys often"], "features": []},
        )
        rule = Segment.objects.create(
            organization=organization,
            kind=SegmentKind.RULE,
            name="World rule",
            key="rule-world",
            rule={
                "op": "and",
                "conditions": [{"field": "orders_count", "operator": "gte", "value": 1}],
            },
            size=1,
        )
        SegmentMembership.objects.create(
            organization=organization, run=run, segment=segment, customer=customer
        )
        SegmentMembership.objects.create(
            organization=organization, run=run, segment=rule, customer=customer
        )
        Persona.objects.create(
            organization=organization, segment=segment, name="World persona", summary="Someone."
        )
        # a sub-segment (drill-down), so routes that take a parent are swept too
        sub = Segment.objects.create(
            organization=organization,
            kind=SegmentKind.CLUSTER,
            name="World sub-segment",
            key="cluster-world-sub",
            size=1,
            parent=segment,
            first_run=run,
            last_run=run,
            profile={"sentences": ["buys often"], "features": []},
        )
        SegmentMembership.objects.create(
            organization=organization, run=run, segment=sub, customer=customer
        )


# --- generated data into the database -----------------------------------------------------
def write_generated_data(
    *,
    organization,
    lines: pd.DataFrame,
    customers: pd.DataFrame,
    events: pd.DataFrame | None = None,
) -> dict[int, int]:
    """Write frames shaped like `segmentation.tests.ml.test_features.planted_data`
    (customer_id, order_id, ordered_at, quantity, amount, category, channel) into
    Customer, Order, OrderLine and Event rows with multi-row INSERTs, keeping the
    customers' order statistics right. Returns {frame customer_id: Customer pk}.
    """
    from customers.models import Customer, Event, Order, OrderLine

    org_id = organization.pk
    now = timezone.now()
    ops = connection.ops

    def ts(values) -> list:
        return [ops.adapt_datetimefield_value(v.to_pydatetime(warn=False)) for v in values]

    # per-customer statistics, as the importer keeps them
    purchase = lines["quantity"].to_numpy() > 0
    by_customer = lines.assign(
        _purchase_order=np.where(purchase, lines["order_id"].to_numpy(), -1)
    ).groupby("customer_id")
    first = by_customer["ordered_at"].min()
    last = by_customer["ordered_at"].max()
    spent = by_customer["amount"].sum()
    orders_count = lines[purchase].groupby("customer_id")["order_id"].nunique()

    with transaction.atomic():
        cust = customers.set_index("customer_id")
        ids = cust.index.to_numpy()
        signup = cust["signup_at"] if "signup_at" in cust else pd.Series(pd.NaT, index=cust.index)
        country = cust["country"] if "country" in cust else pd.Series("", index=cust.index)
        gender = cust["gender"] if "gender" in cust else pd.Series("", index=cust.index)
        birth = cust["birth_date"] if "birth_date" in cust else pd.Series(pd.NaT, index=cust.index)
        rows = []
        for i, cid in enumerate(ids):
            s = signup.iloc[i]
            b = birth.iloc[i]
            f, la = first.get(cid), last.get(cid)
            rows.append(
                (
                    org_id,
                    f"C{cid:07d}",
                    f"c{cid}@example.com",
                    "",
                    "Customer",
                    str(cid),
                    None if pd.isna(b) else pd.Timestamp(b).date(),
                    str(gender.iloc[i] or ""),
                    "",
                    "",
                    str(country.iloc[i] or ""),
                    "",
                    None
                    if pd.isna(s)
                    else ops.adapt_datetimefield_value(s.to_pydatetime(warn=False)),
                    bool(cid % 3),
                    False,
                    "",
                    "",
                    "{}",
                    None
                    if f is None
                    else ops.adapt_datetimefield_value(f.to_pydatetime(warn=False)),
                    None
                    if la is None
                    else ops.adapt_datetimefield_value(la.to_pydatetime(warn=False)),
                    int(orders_count.get(cid, 0)),
                    float(round(spent.get(cid, 0.0), 2)),
                    ops.adapt_datetimefield_value(now),
                    ops.adapt_datetimefield_value(now),
                )
            )
        insert_rows(
            Customer,
            [
                "organization_id", "external_id", "email", "phone", "first_name", "last_name",
                "birth_date", "gender", "city", "region", "country", "postal_code", "signup_at",
                "accepts_email", "accepts_sms", "email_consent_source", "sms_consent_source",
                "attributes", "first_order_at", "last_order_at", "orders_count", "total_spent",
                "created_at", "updated_at",
            ],
            rows,
        )  # fmt: skip
        pk_by_external = dict(
            Customer.objects.filter(organization_id=org_id).values_list("external_id", "pk")
        )
        pk_of = {int(cid): pk_by_external[f"C{int(cid):07d}"] for cid in ids}

        orders = lines.groupby("order_id", sort=True).agg(
            customer_id=("customer_id", "first"),
            ordered_at=("ordered_at", "min"),
            channel=("channel", "first"),
            total=("amount", "sum"),
            n=("amount", "size"),
        )
        has_channel = "channel" in lines.columns
        order_rows = [
            (
                org_id,
                f"O{oid:09d}",
                pk_of[int(r.customer_id)],
                when,
                "",  # the organisation's currency: other currencies add no spend
                str(r.channel) if has_channel and not pd.isna(r.channel) else "",
                "",
                float(round(r.total, 2)),
                False,
                "{}",
                "",
                int(r.n),
                ops.adapt_datetimefield_value(now),
                ops.adapt_datetimefield_value(now),
            )
            for oid, r, when in zip(
                orders.index, orders.itertuples(index=False), ts(orders["ordered_at"]), strict=True
            )
        ]
        insert_rows(
            Order,
            [
                "organization_id", "external_id", "customer_id", "ordered_at", "currency",
                "channel", "location", "total", "is_return", "properties", "content_hash",
                "lines_count", "created_at", "updated_at",
            ],
            order_rows,
        )  # fmt: skip
        order_pk = dict(
            Order.objects.filter(organization_id=org_id).values_list("external_id", "pk")
        )
        line_order = [order_pk[f"O{int(o):09d}"] for o in lines["order_id"].to_numpy()]
        categories = (
            lines["category"].astype(object).to_numpy()
            if "category" in lines.columns
            else np.full(len(lines), "")
        )
        qty = lines["quantity"].to_numpy()
        amount = lines["amount"].to_numpy()
        columns = [
            "organization_id", "order_id", "sku", "product_name", "category", "quantity",
            "unit_price", "amount", "position",
        ]  # fmt: skip
        # in slices, so a million customers' lines never sit in memory as tuples
        for start in range(0, len(lines), 200_000):
            stop = min(start + 200_000, len(lines))
            insert_rows(
                OrderLine,
                columns,
                [
                    (
                        org_id,
                        line_order[i],
                        f"SKU-{categories[i]}-{i % 7}",
                        f"{str(categories[i]).title()} item {i % 7}",
                        str(categories[i] or ""),
                        int(qty[i]),
                        float(round(amount[i] / qty[i], 4)) if qty[i] else None,
                        float(amount[i]),
                        i,
                    )
                    for i in range(start, stop)
                ],
            )
        if events is not None and len(events):
            event_rows = [
                (
                    org_id,
                    None,
                    pk_of[int(c)],
                    str(t),
                    when,
                    "{}",
                    "",
                    ops.adapt_datetimefield_value(now),
                )
                for c, t, when in zip(
                    events["customer_id"].to_numpy(),
                    events["type"].astype(object).to_numpy(),
                    ts(events["occurred_at"]),
                    strict=True,
                )
            ]
            insert_rows(
                Event,
                [
                    "organization_id", "external_id", "customer_id", "type", "occurred_at",
                    "properties", "content_hash", "created_at",
                ],
                event_rows,
            )  # fmt: skip
    return pk_of


def planted_customers(organization, *, n_customers: int = 400, seed: int = 7) -> pd.Series:
    """Customers of four planted groups written to the database; returns the true
    group per Customer pk."""
    from segmentation.tests.ml.test_features import planted_data

    lines, customers, events, truth = planted_data(n_customers=n_customers, seed=seed)
    with tenant_context(organization):
        pk_of = write_generated_data(
            organization=organization, lines=lines, customers=customers, events=events
        )
    return pd.Series({pk_of[int(cid)]: group for cid, group in truth.items()})


def planted_run(organization, *, n_customers: int = 400, seed: int = 7):
    """Planted customers plus a live segmentation run of them."""
    from segmentation.services.segments import segmentation_run

    truth = planted_customers(organization, n_customers=n_customers, seed=seed)
    with tenant_context(organization):
        run = segmentation_run(organization=organization)
    return run, truth
