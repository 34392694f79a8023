"""Pages and API of a big organisation: p50/p95/max per page against a baseline.

    source /work/hx.sh big; pgenv .venv/bin/python bench/pages_big_org.py \
        --org bench-1000000-7-1796079490 [-n 40] [--seed 1] [--setup] [--json]

Signs in as the organisation's owner (`owner-<slug>@bench.local` / `bench-password`,
the login `bench/_bigorg.py` writes) with Django's test client, DEBUG off as in
production, against the database DATABASE_URL names (PostgreSQL as the application
role, row-level security on; the schema must already be migrated — this command never
migrates). Each page and API endpoint is requested N times over random customers and
search terms (last names, "first last", e-mails, external ids, the start of an e-mail),
after one warm-up request each, and the command prints p50 / p95 / max in milliseconds per
page, the same for a baseline measured in the same run (the user's profile page: signed
in, through the same middleware and tenant scope, no customer data; the settings page
is no baseline, it counts the customers), the ratio of each p95 to the baseline's
p50, the load average before and after, and whether each p95 meets its target (300 ms
for pages and lists, 150 ms for single-record API calls).

Deep member pages of the segment are asked for as a reader reaches them, after a
member at a random depth (the site's Next link, `?after=`; the API's `next`,
`?cursor=`), and by page number as old links and the API's numbered pages still are.

It reads the largest live segment (or `--segment ID`) and the largest audience (or
`--audience ID`). `--setup` first creates, through the services, what is missing: a
rule segment "Bench: 3 or more orders" (about half the customers) and an audience of
that segment, built synchronously. `--json` prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SINGLE_RECORD_TARGET_MS = 150.0
PAGE_TARGET_MS = 300.0


def _setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["DEBUG"] = "0"  # as in production: no query log, no debug tooling
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("DATABASE_URL must name the PostgreSQL database holding the big organisation")
    import logging

    import django

    django.setup()
    from django.conf import settings

    settings.ALLOWED_HOSTS = ["*"]
    logging.getLogger("django.request").setLevel(logging.ERROR)


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def _sample_customers(n: int, rng: random.Random) -> list[dict]:
    from customers.models import Customer

    bounds = Customer.objects.filter(erased_at__isnull=True).order_by("pk")
    first = bounds.values_list("pk", flat=True).first()
    last = bounds.reverse().values_list("pk", flat=True).first()
    if first is None:
        sys.exit("The organisation has no customers")
    fields = ("pk", "external_id", "email", "first_name", "last_name")
    found: dict[int, dict] = {}
    for _ in range(n * 3):
        if len(found) >= n:
            break
        at = rng.randint(first, last)
        row = bounds.filter(pk__gte=at).values(*fields).first()
        if row:
            found[row["pk"]] = row
    return list(found.values())


def _search_terms(customers: list[dict], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, term) pairs: every kind of search people type."""
    terms = []
    for c in customers:
        kind = rng.choice(["last_name", "full_name", "email", "external_id", "email_start"])
        if kind == "last_name" and c["last_name"]:
            terms.append((kind, c["last_name"]))
        elif kind == "full_name" and c["first_name"] and c["last_name"]:
            terms.append((kind, f"{c['first_name']} {c['last_name']}"))
        elif kind == "email" and c["email"]:
            terms.append((kind, c["email"]))
        elif kind == "email_start" and c["email"]:
            terms.append((kind, c["email"][: max(3, len(c["email"].split("@")[0]) // 2)]))
        else:
            terms.append(("external_id", c["external_id"]))
    return terms


def _ensure_setup(organization, owner) -> None:
    """A rule segment of about half the customers and an audience of it, if missing."""
    from audiences.models import Audience
    from audiences.services import audience_create
    from segmentation.models import Segment, SegmentKind
    from segmentation.services.rules import rule_segment_create

    name = "Bench: 3 or more orders"
    segment = Segment.objects.filter(kind=SegmentKind.RULE, name=name).first()
    if segment is None:
        t = time.perf_counter()
        segment = rule_segment_create(
            organization=organization,
            name=name,
            rule={
                "op": "and",
                "conditions": [{"field": "orders_count", "operator": "gte", "value": 3}],
            },
            user=owner,
        )
        print(f"created rule segment {segment.pk} ({segment.size:,}) in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)  # fmt: skip
    audience_name = f"Bench: {name}"
    if not Audience.objects.filter(name=audience_name).exists():
        t = time.perf_counter()
        audience = audience_create(
            organization=organization,
            name=audience_name,
            definition={"kind": "segments", "include": [segment.pk]},
            user=owner,
            sync=True,
        )
        print(f"created audience {audience.pk} ({audience.size:,}) in "
              f"{time.perf_counter() - t:.1f} s", file=sys.stderr)  # fmt: skip


def _member_page_starts(segment) -> list[int]:
    """The first member id of each page of 50 (the member index the pages keep), for
    asking for deep pages the way a reader reaches them: after the last member of the
    page before (`?after=` on the site, `?cursor=` in the API)."""
    from segmentation.selectors import MemberRows

    return list(MemberRows(segment).index()["starts"]) if segment is not None else []


def _targets(
    *, segment, audience, customers, terms, rng, starts: list[int]
) -> list[tuple[str, str, object]]:
    """(name, kind, url maker): kind "page" (300 ms) or "record" (150 ms)."""
    from core.api.pagination import cursor_encode

    seg_pages = max(2, len(starts))

    def deep() -> str:
        # the link "Next" on page k leads to: after its last member, before page k + 1
        return cursor_encode(starts[rng.randint(1, len(starts) - 1)] - 1 if len(starts) > 1 else 0)

    def customer():
        return rng.choice(customers)

    def term():
        return rng.choice(terms)[1]

    out: list[tuple[str, str, object]] = [
        # what an owner sees first, and the predictions page (the load test's slowest)
        ("site dashboard", "page", lambda: "/"),
        ("site predictions", "page", lambda: "/segments/predictions/"),
        ("site customers list", "page", lambda: "/customers/"),
        (
            "site customers list sorted",
            "page",
            lambda: "/customers/?sort=" + rng.choice(["spent", "orders", "name", "id", "newest"]),
        ),
        ("site customers search", "page", lambda: "/customers/?" + _q(search=term())),
        ("site customer", "page", lambda: f"/customers/{customer()['pk']}/"),
        ("api customers list", "page", lambda: "/api/v1/customers/"),
        (
            "api customers list ordered",
            "page",
            lambda: (
                "/api/v1/customers/?ordering="
                + rng.choice(["-total_spent", "-last_order_at", "external_id", "-created_at"])
            ),
        ),
        ("api customers search", "page", lambda: "/api/v1/customers/?" + _q(search=term())),
        ("api customer", "record", lambda: f"/api/v1/customers/{customer()['pk']}/"),
        (
            "api customer by external_id",
            "record",
            lambda: "/api/v1/customers/?" + _q(external_id=customer()["external_id"]),
        ),
    ]
    if segment is not None:
        out += [
            ("site segment", "page", lambda: f"/segments/{segment.pk}/"),
            # a deep page as a reader reaches it, by the Next link (keyset: after a member)
            (
                "site segment members page",
                "page",
                lambda: f"/segments/{segment.pk}/?after={deep()}",
            ),
            # an old numbered link, still served (from the cached member index)
            (
                "site segment members page by number",
                "page",
                lambda: f"/segments/{segment.pk}/?page={rng.randint(2, seg_pages)}",
            ),
            ("api segment", "record", lambda: f"/api/v1/segments/{segment.pk}/"),
            ("api segment members", "page", lambda: f"/api/v1/segments/{segment.pk}/members/"),
            # reading a segment through: a deep page by its `next` cursor
            (
                "api segment members page",
                "page",
                lambda: f"/api/v1/segments/{segment.pk}/members/?cursor={deep()}",
            ),
            (
                "api segment members page by number",
                "page",
                lambda: f"/api/v1/segments/{segment.pk}/members/?page={rng.randint(2, seg_pages)}",
            ),
        ]
    if audience is not None:
        out += [
            ("site audience", "page", lambda: f"/audiences/{audience.pk}/"),
            ("api audience", "record", lambda: f"/api/v1/audiences/{audience.pk}/"),
            ("api audience members", "page", lambda: f"/api/v1/audiences/{audience.pk}/members/"),
        ]
    return out


def _q(**params) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


def _time(client, url: str) -> tuple[float, int]:
    t = time.perf_counter()
    response = client.get(url)
    if getattr(response, "streaming", False):
        b"".join(response.streaming_content)
    else:
        response.content  # noqa: B018 - the body is part of the answer
    return (time.perf_counter() - t) * 1000, response.status_code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--org", required=True, help="the organisation's slug")
    parser.add_argument("-n", type=int, default=40, help="requests per page (default 40)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--segment", type=int, help="segment id (default: the largest live)")
    parser.add_argument("--audience", type=int, help="audience id (default: the largest)")
    parser.add_argument("--only", help="comma-separated words: only pages whose name has one")
    parser.add_argument("--setup", action="store_true", help="create the segment and audience")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    _setup_django()

    from django.test import Client

    from accounts.models import Organization, User
    from accounts.tenancy import tenant_context
    from audiences.models import Audience
    from segmentation.selectors import segments_current

    rng = random.Random(args.seed)
    organization = Organization.objects.get(slug=args.org)
    owner_email = f"owner-{organization.slug}@bench.local"
    with tenant_context(organization):
        if args.setup:
            _ensure_setup(organization, User.objects.get(email=owner_email))
        customers = _sample_customers(max(args.n, 20), rng)
        terms = _search_terms(customers, rng)
        current = segments_current().order_by("-size", "id")
        segment = current.model.objects.get(pk=args.segment) if args.segment else current.first()
        audiences = Audience.objects.order_by("-size", "id")
        audience = audiences.get(pk=args.audience) if args.audience else audiences.first()
        n_customers = organization_customers(organization)
        starts = _member_page_starts(segment)

    client = Client()
    if not client.login(username=owner_email, password="bench-password"):
        sys.exit(f"cannot sign in as {owner_email}")

    load_before = _loadavg()
    targets = [("baseline (profile page)", "baseline", lambda: "/accounts/profile/")]
    targets += _targets(segment=segment, audience=audience, customers=customers,
                        terms=terms, rng=rng, starts=starts)  # fmt: skip
    if args.only:
        words = [w.strip() for w in args.only.split(",") if w.strip()]
        targets = [t for t in targets if t[1] == "baseline" or any(w in t[0] for w in words)]
    results = []
    for name, kind, make in targets:
        _time(client, make())  # warm-up (templates, connections, caches)
        times, statuses = [], set()
        for _ in range(args.n):
            ms, status = _time(client, make())
            times.append(ms)
            statuses.add(status)
        results.append(
            {
                "page": name,
                "kind": kind,
                "p50_ms": round(_pct(times, 0.5), 1),
                "p95_ms": round(_pct(times, 0.95), 1),
                "max_ms": round(max(times), 1),
                "statuses": sorted(statuses),
            }
        )
    base = results[0]["p50_ms"] or 1.0
    for row in results:
        row["ratio_p95_to_baseline_p50"] = round(row["p95_ms"] / base, 1)
        target = {"record": SINGLE_RECORD_TARGET_MS, "page": PAGE_TARGET_MS}.get(row["kind"])
        row["target_ms"] = target
        row["meets_target"] = None if target is None else row["p95_ms"] < target
    report = {
        "organization": organization.slug,
        "customers": n_customers,
        "segment": None
        if segment is None
        else {"id": segment.pk, "kind": segment.kind, "size": segment.size},  # fmt: skip
        "audience": None if audience is None else {"id": audience.pk, "size": audience.size},
        "requests_per_page": args.n,
        "load_average_before": load_before,
        "load_average_after": _loadavg(),
        "pages": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{organization.slug}: {n_customers:,} customers; segment {report['segment']}; "
        f"audience {report['audience']}; {args.n} requests per page"
    )
    print(f"load average before {load_before}, after {report['load_average_after']}")
    print(f"{'page':34} {'p50':>8} {'p95':>8} {'max':>8} {'x base':>7} {'target':>7}  status")
    for row in results:
        ok = "" if row["meets_target"] is None else ("ok" if row["meets_target"] else "SLOW")
        print(
            f"{row['page']:34} {row['p50_ms']:8.1f} {row['p95_ms']:8.1f} {row['max_ms']:8.1f} "
            f"{row['ratio_p95_to_baseline_p50']:7.1f} {ok:>7}  {row['statuses']}"
        )


def organization_customers(organization) -> int:
    from customers.models import Customer

    return Customer.objects.filter(erased_at__isnull=True).count()


if __name__ == "__main__":
    main()
