"""Small worlds for audience tests: customers, a live run with two cluster segments
and a rule segment."""

from __future__ import annotations

import datetime as dt

from accounts.tenancy import tenant_context


def segments_world(org, *, n: int = 40):
    """`n` customers: the first half in segment A, the second half in segment B;
    even-numbered ones consent to email, every fourth to SMS; a rule segment of
    those with 3+ orders (every third customer)."""
    from customers.models import Customer
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership

    with tenant_context(org):
        run = SegmentationRun.objects.create(
            organization=org, as_of=dt.date(2024, 6, 30), chosen_k=2, is_live=True
        )
        a = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Loyal", key="cluster-a",
            size=n // 2, first_run=run, last_run=run,
        )  # fmt: skip
        b = Segment.objects.create(
            organization=org, kind=SegmentKind.CLUSTER, name="Fading", key="cluster-b",
            size=n - n // 2, first_run=run, last_run=run,
        )  # fmt: skip
        customers = []
        for i in range(n):
            c = Customer.objects.create(
                organization=org,
                external_id=f"C{i:03d}",
                email=f"c{i}@example.com",
                phone=f"+4470000{i:05d}",
                accepts_email=i % 2 == 0,
                accepts_sms=i % 4 == 0,
                orders_count=3 if i % 3 == 0 else 1,
                total_spent=10 * (i + 1),
            )
            customers.append(c)
            SegmentMembership.objects.create(
                organization=org, run=run, segment=a if i < n // 2 else b, customer=c
            )
        rule = Segment.objects.create(
            organization=org,
            kind=SegmentKind.RULE,
            name="Three or more orders",
            key="rule-3",
            rule={
                "op": "and",
                "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}],
            },
        )
    return {"a": a, "b": b, "rule": rule, "customers": customers, "run": run}
