"""Time the audience preview (`audiences.services.audience_preview`) for each kind on a
big organisation, as the builder's live preview and `POST audiences/preview/` run it.

    source /work/hx.sh big
    pgenv .venv/bin/python bench/audiences_preview.py --org bench-100000- [--repeat 2] [--json]

What a kind needs and the bench organisations lack (a segment, a live prediction run)
is planted inside one transaction that is rolled back at the end: nothing is left
behind in the organisation. Each kind is timed `--repeat` times (the first call is
cold: caches of attribute keys and channel evidence are filled then); the figures
report each call's seconds and what the preview said (size, estimated, sample size).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from _django_setup import Rollback, setup_django_big_org  # noqa: E402


def _plant(org) -> dict:
    """A rule segment, a cluster-like segment of a live run (members: a third of the
    customers) and a live prediction run with a prediction for every customer."""
    from django.db import connection
    from django.utils import timezone

    from customers.models import Customer
    from predictions.models import CustomerPrediction, PredictionRun
    from segmentation.models import Segment, SegmentationRun, SegmentKind, SegmentMembership
    from segmentation.services.rules import rule_segment_create

    rule_segment = rule_segment_create(
        organization=org,
        name="Bench preview: 3 or more orders",
        rule={
            "op": "and",
            "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}],
        },
    )
    today = timezone.now().date()
    run = SegmentationRun.objects.create(organization=org, as_of=today, is_live=True)
    cluster = Segment.objects.create(
        organization=org, kind=SegmentKind.CLUSTER, name="Bench preview cluster", key="bench-c"
    )
    prun = PredictionRun.objects.create(organization=org, as_of=today, method="bgnbd", is_live=True)
    members = SegmentMembership._meta.db_table
    predictions = CustomerPrediction._meta.db_table
    customers = Customer._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {members} (organization_id, run_id, segment_id, customer_id) "  # noqa: S608
            f"SELECT %s, %s, %s, id FROM {customers} WHERE organization_id = %s AND id %% 3 = 0",
            [org.pk, run.pk, cluster.pk, org.pk],
        )
        cursor.execute(
            f"INSERT INTO {predictions} (organization_id, run_id, customer_id, p_alive, "  # noqa: S608
            "expected_orders_30d, expected_orders_90d, expected_orders_365d, "
            "predicted_clv_365d, expected_order_value, churn_probability, churn_risk, "
            "propensity, propensity_reason, reason, method) "
            "SELECT %s, %s, id, 0.5, (id %% 7) / 10.0, (id %% 7) / 4.0, (id %% 7), "
            "(id %% 13) * 20.0, 40.0, (id %% 10) / 10.0, 'low', (id %% 9) / 10.0, '', '', "
            f"'bgnbd' FROM {customers} WHERE organization_id = %s",
            [org.pk, prun.pk, org.pk],
        )
    return {"rule_segment": rule_segment.pk, "cluster": cluster.pk}


PLANTED = ("segments", "goal order_soon", "goal high_value_at_risk")


def _cases(planted: dict | None, seed_ids: list[str]) -> list[tuple[str, dict]]:
    cases = [
        ("segments (cluster)", {"kind": "segments", "include": [(planted or {}).get("cluster")]}),
        (
            "segments (rule)",
            {"kind": "segments", "include": [(planted or {}).get("rule_segment")]},
        ),
        (
            "rules",
            {
                "kind": "rules",
                "rule": {
                    "op": "and",
                    "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}],
                },
            },
        ),
        ("goal order_soon", {"kind": "goal", "goal": "order_soon", "days": 30}),
        ("goal high_value_at_risk", {"kind": "goal", "goal": "high_value_at_risk"}),
        (
            "goal buy_category",
            {"kind": "goal", "goal": "buy_category", "category": "Coffee", "days": 90},
        ),
        (
            "response",
            {"kind": "response", "event": "order", "exposure_event": "email_open"},
        ),
        ("lookalike", {"kind": "lookalike", "seed_customer_ids": seed_ids}),
        ("location", {"kind": "location", "countries": ["GB"]}),
    ]
    if planted is None:
        cases = [(name, d) for name, d in cases if not name.startswith(PLANTED)]
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--org", required=True, help="slug or slug prefix")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", help="comma-separated case names (prefixes)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--no-plant",
        action="store_true",
        help="skip the kinds that need a planted segment or prediction run",
    )
    args = parser.parse_args()
    setup_django_big_org()
    from django.db import transaction

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from audiences.services import audience_preview
    from core.exceptions import ApplicationError
    from customers.models import Customer

    org = Organization.objects.filter(slug__startswith=args.org).order_by("pk").first()
    if org is None:
        sys.exit(f"no organisation {args.org!r}")
    report: dict = {"org": org.slug, "cases": {}}
    try:
        with tenant_context(org), transaction.atomic():
            customers = Customer.objects.filter(erased_at__isnull=True).count()
            report["customers"] = customers
            planted = None if args.no_plant else _plant(org)
            seed_ids = list(
                Customer.objects.filter(orders_count__gte=8)
                .order_by("pk")
                .values_list("external_id", flat=True)[:500]
            )
            for name, definition in _cases(planted, seed_ids):
                if args.only and not any(name.startswith(o) for o in args.only.split(",")):
                    continue
                seconds: list[float] = []
                outcome: dict = {}
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    try:
                        figures = audience_preview(organization=org, definition=definition)
                    except ApplicationError as exc:
                        outcome = {"error": exc.message}
                        break
                    seconds.append(round(time.perf_counter() - started, 3))
                    outcome = {
                        "size": figures["size"],
                        "estimated": figures.get("estimated"),
                        "sample_size": figures.get("sample_size"),
                    }
                report["cases"][name] = {"seconds": seconds, **outcome}
                if not args.json:
                    median = statistics.median(seconds) if seconds else None
                    print(f"{name:28} {seconds} median {median} {outcome}", flush=True)
            raise Rollback
    except Rollback:
        pass
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
