"""The Django side of the load test (bench/loadtest/run.py calls it; not run by hand).

    python bench/loadtest/prepare.py prepare --out FIXTURES.json [--small-orgs 50]
        [--big-name "Bench 1M"] [--keys var/loadtest/keys.json]
    python bench/loadtest/prepare.py start-jobs --fixtures FIXTURES.json [--small-pipelines N]
    python bench/loadtest/prepare.py report-jobs --since ISO --out JOBS.json
    python bench/loadtest/prepare.py cancel-jobs --since ISO [--force]

`prepare` makes what the load test needs if it is missing, in the database of
DATABASE_URL (the application role; the rows of new organisations are COPYed as the
PostgreSQL superuser by bench/_bigorg.py): the small organisations "Loadtest small NN"
(200..2,000 customers each, an owner `owner-<slug>@bench.local` / `bench-password`),
their first pipeline run (in this process) and an audience, a write API key each (kept
in the keys file, since a key is shown only once), and the big organisation's facts
(found by name: it is made by `bench/_bigorg.py --customers 1000000`, not here). It
writes the fixtures the locustfile reads: ids of customers, orders, products, segments
and audiences per organisation. `start-jobs` queues the pipelines (as `run_pipeline`
without --sync does); `report-jobs` summarises the jobs made since the start;
`cancel-jobs` cancels the load test's unfinished jobs at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SMALL_PREFIX = "Loadtest small"
AUDIENCE_NAME = "Loadtest audience"
PASSWORD = "bench-password"
FIRST_STEPS: list[str] = []  # --first-steps: the set-up's pipeline steps (default: all)


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _log(msg: str) -> None:
    print(f"[prepare {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def small_size(i: int) -> int:
    """Customers of small organisation number i: 200..2,000, the same whatever their count."""
    return random.Random(1000 + i).randint(200, 2000)


def _owner_email(org) -> str:
    from accounts.models import Membership

    m = Membership.objects.filter(organization=org, role="owner").select_related("user").first()
    return m.user.email if m else f"owner-{org.slug}@bench.local"


def _key_for(org, keys: dict) -> str:
    """The organisation's load-test write key: the stored one while it is valid, else new."""
    from accounts.models import ApiKey
    from accounts.services import api_key_create

    key = keys.get(org.slug)
    if (
        key
        and ApiKey.objects.filter(
            organization=org, key_hash=ApiKey.hash(key), revoked_at__isnull=True, scope="write"
        ).exists()
    ):
        return key
    _, key = api_key_create(organization=org, name="loadtest", scope="write")
    keys[org.slug] = key
    return key


def _facts(org, *, big: bool, keys: dict, sample: int) -> dict:
    """Ids the locustfile needs (in the organisation's scope)."""
    from audiences.models import Audience
    from customers.models import Customer, Order, Product
    from segmentation.models import Segment, SegmentationRun

    rng = random.Random(org.pk)
    ids = Customer.objects.filter(erased_at__isnull=True)
    lo = ids.order_by("pk").values_list("pk", flat=True).first()
    hi = ids.order_by("-pk").values_list("pk", flat=True).first()
    customers = []
    if lo is not None:
        picks = {rng.randint(lo, hi) for _ in range(sample * 2)}
        customers = [
            [pk, ext, last, email]
            for pk, ext, last, email in ids.filter(pk__in=picks)
            .filter(orders_count__gt=0)
            .values_list("pk", "external_id", "last_name", "email")[:sample]
        ]
    # orders of the sampled customers (through the customer index: the id range of a
    # small organisation can sit behind millions of a big one's rows)
    orders = list(
        Order.objects.filter(customer_id__in=[c[0] for c in customers])
        .order_by()
        .values_list("pk", flat=True)[:sample]
    )
    products = [
        [pk, sku]
        for pk, sku in Product.objects.order_by("pk").values_list("pk", "sku")[
            : max(50, sample // 2)
        ]
    ]
    live = SegmentationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    segs = Segment.objects.filter(is_active=True)
    if live:
        segs = segs.filter(last_run_id=live) | Segment.objects.filter(is_active=True, kind="rule")
    segments = list(segs.order_by("-size").values_list("pk", flat=True)[:6])
    audiences = list(Audience.objects.order_by("pk").values_list("pk", flat=True)[:3])
    return {
        "id": org.pk,
        "slug": org.slug,
        "name": org.name,
        "big": big,
        "owner": _owner_email(org),
        "password": PASSWORD,
        "key": _key_for(org, keys),
        "customers": customers,
        "orders": orders,
        "products": products,
        "segments": segments,
        "audiences": audiences,
        "live_run": live,
    }


def _ensure_pipeline_and_audience(org, *, allow_sync_pipeline: bool) -> None:
    from audiences.models import Audience
    from audiences.services import audience_create
    from segmentation.models import Segment, SegmentationRun
    from segmentation.pipeline import pipeline_start

    if not SegmentationRun.objects.filter(is_live=True).exists():
        if not allow_sync_pipeline:
            _log(f"{org.slug}: no segmentation run yet (its segment pages are left out)")
            return
        t = time.perf_counter()
        res = pipeline_start(
            organization=org, steps=FIRST_STEPS or None, sync=True, reason="load test set-up"
        )
        _log(f"{org.slug}: first pipeline {res['status']} in {time.perf_counter() - t:.1f} s")
    if not Audience.objects.filter(name=AUDIENCE_NAME).exists():
        seg = Segment.objects.filter(is_active=True, kind="cluster").order_by("-size").first()
        if seg is None:
            return
        t = time.perf_counter()
        audience_create(
            organization=org,
            name=AUDIENCE_NAME,
            definition={"kind": "segments", "include": [seg.pk]},
            sync=True,
        )
        _log(f"{org.slug}: audience built in {time.perf_counter() - t:.1f} s")


def _save_keys(path: Path, keys: dict) -> None:
    """Merge into the keys file (another prepare may have added organisations meanwhile)."""
    try:
        stored = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        stored = {}
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({**stored, **keys}, indent=1))
    tmp.replace(path)  # atomic: a reader never sees half a file


def prepare(a) -> None:
    _setup()
    FIRST_STEPS[:] = [x for x in (a.first_steps or "").split(",") if x]
    from _bigorg import make_org

    from accounts.models import Organization
    from accounts.tenancy import tenant_context

    keys_path = Path(a.keys)
    keys_path.parent.mkdir(parents=True, exist_ok=True)
    keys = {}
    if keys_path.exists():
        try:
            keys = json.loads(keys_path.read_text())
        except ValueError:
            keys = {}
    orgs = []
    big = Organization.objects.filter(name=a.big_name).order_by("pk").first()
    if big is None:
        _log(f"no organisation named {a.big_name!r}: the run has no big organisation")
    else:
        with tenant_context(big):
            _ensure_pipeline_and_audience(big, allow_sync_pipeline=False)
            orgs.append(_facts(big, big=True, keys=keys, sample=a.sample))
            _save_keys(keys_path, keys)
        _log(f"big: {big.slug} ({len(orgs[0]['segments'])} segments)")
    for i in range(a.first, (a.last or a.small_orgs) + 1):
        size = small_size(i)
        name = f"{SMALL_PREFIX} {i:02d}"
        org = Organization.objects.filter(name=name).order_by("pk").first()
        if org is None:
            t = time.perf_counter()
            made = make_org(customers=size, products=300, name=name, seed=1000 + i)
            org = Organization.objects.get(pk=made["organization_id"])
            _log(f"{name}: {size} customers made in {time.perf_counter() - t:.1f} s")
        with tenant_context(org):
            _ensure_pipeline_and_audience(org, allow_sync_pipeline=True)
            orgs.append(_facts(org, big=False, keys=keys, sample=min(a.sample, 100)))
        _save_keys(keys_path, keys)
    from django.conf import settings

    queues = {
        "interactive": getattr(settings, "JOB_QUEUE_INTERACTIVE", "") or "",
        "heavy": getattr(settings, "JOB_QUEUE_HEAVY", "") or "",
    }
    Path(a.out).write_text(json.dumps({"orgs": orgs, "queues": queues}, indent=1))
    _log(f"fixtures: {len(orgs)} organisations -> {a.out}")


def start_jobs(a) -> None:
    _setup()
    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from segmentation.pipeline import pipeline_start

    fx = json.loads(Path(a.fixtures).read_text())
    started = []
    smalls = [o for o in fx["orgs"] if not o["big"]][: a.small_pipelines]
    bigs = [o for o in fx["orgs"] if o["big"]][: a.big_pipelines]
    for o in bigs + smalls:
        org = Organization.objects.get(pk=o["id"])
        with tenant_context(org):
            steps = [x for x in (a.steps or "").split(",") if x] or None
            res = pipeline_start(organization=org, steps=steps, reason="load test")
        started.append({"org": org.slug, "big": o["big"], "jobs": res["jobs"]})
    print(json.dumps(started))
    _log(f"pipelines queued: {len(bigs)} big, {len(smalls)} small")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def report_jobs(a) -> None:
    _setup()
    from accounts.tenancy import unscoped_context
    from core.models import Job

    since = datetime.fromisoformat(a.since)
    groups: dict[tuple[str, str], dict] = {}
    orgs = json.loads(Path(a.fixtures).read_text())["orgs"]
    big_ids = {o["id"] for o in orgs if o["big"]}
    small_ids = {o["id"] for o in orgs if not o["big"]}
    with unscoped_context():
        rows = list(
            Job.all_objects.filter(created_at__gte=since).values_list(
                "organization_id", "kind", "status", "created_at", "started_at", "finished_at"
            )
        )
    for org_id, kind, status, created, started, finished in rows:
        g = groups.setdefault(
            (kind, "big" if org_id in big_ids else "small" if org_id in small_ids else "other"),
            {"statuses": {}, "wait": [], "run": [], "orgs": set()},
        )
        g["statuses"][status] = g["statuses"].get(status, 0) + 1
        g["orgs"].add(org_id)
        if started:
            g["wait"].append((started - created).total_seconds())
        if started and finished:
            g["run"].append((finished - started).total_seconds())
    out = []
    for (kind, size), g in sorted(groups.items()):
        out.append(
            {
                "kind": kind,
                "org": size,
                "organisations": len(g["orgs"]),
                "jobs": sum(g["statuses"].values()),
                "statuses": g["statuses"],
                "wait_p50_s": _pct(g["wait"], 0.5),
                "wait_max_s": round(max(g["wait"]), 1) if g["wait"] else None,
                "run_p50_s": _pct(g["run"], 0.5),
                "run_max_s": round(max(g["run"]), 1) if g["run"] else None,
                "run_total_s": round(sum(g["run"]), 1),
            }
        )
    Path(a.out).write_text(json.dumps(out, indent=1))
    _log(f"jobs since {a.since}: {len(rows)} -> {a.out}")


def _mine(a, since):
    """The load test's jobs: those of its small organisations made since the start, and
    the big organisation's pipeline jobs it queued (others may work on the big one)."""
    from django.db.models import Q

    fx = json.loads(Path(a.fixtures).read_text())
    small = [o["id"] for o in fx["orgs"] if not o["big"]]
    started = (
        json.loads(Path(a.pipelines).read_text())
        if a.pipelines and Path(a.pipelines).exists()
        else []
    )
    big_jobs = [j for x in started if x["big"] for j in x["jobs"].values()]
    return Q(created_at__gte=since, organization_id__in=small) | Q(pk__in=big_jobs)


def cancel_jobs(a) -> None:
    """Cancel the load test's unfinished jobs (the product's cancel: queued ones at once,
    running ones at their next progress report); with --force, also mark the ones still
    running as cancelled (the workers are stopped by then)."""
    _setup()
    from django.utils import timezone

    from accounts.tenancy import tenant_context, unscoped_context
    from core.jobs import job_cancel, job_is_cancellable
    from core.models import Job, JobStatus

    since = datetime.fromisoformat(a.since)
    open_ = [JobStatus.QUEUED, JobStatus.RUNNING]
    mine = _mine(a, since)
    with unscoped_context():
        jobs = list(Job.all_objects.filter(mine, status__in=open_))
    n = 0
    for job in jobs:
        if not job_is_cancellable(job):
            continue
        with tenant_context(job.organization_id):
            try:
                job_cancel(job=job)
                n += 1
            except Exception as exc:  # finished meanwhile
                _log(f"job {job.pk}: {exc}")
    forced = 0
    if a.force:
        with unscoped_context():
            forced = Job.all_objects.filter(mine, status__in=open_, cancel_requested=True).update(
                status=JobStatus.CANCELLED,
                message="Cancelled: the load test ended.",
                finished_at=timezone.now(),
            )
    _log(f"cancelled {n} unfinished jobs ({forced} forced)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("prepare")
    s.add_argument("--out", required=True)
    s.add_argument("--small-orgs", type=int, default=50)
    s.add_argument("--big-name", default="Bench 1M")
    s.add_argument("--keys", default=str(ROOT / "var" / "loadtest" / "keys.json"))
    s.add_argument("--sample", type=int, default=300)
    s.add_argument("--first-steps", help="steps of the set-up's first pipeline (default: all)")
    s.add_argument("--first", type=int, default=1, help="make small organisations from this number")
    s.add_argument("--last", type=int, help="... to this one (default --small-orgs)")
    s = sub.add_parser("start-jobs")
    s.add_argument("--fixtures", required=True)
    s.add_argument("--small-pipelines", type=int, default=50)
    s.add_argument("--big-pipelines", type=int, default=1)
    s.add_argument("--steps", help="pipeline steps to queue (default: all)")
    s = sub.add_parser("report-jobs")
    s.add_argument("--since", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--fixtures", required=True)
    s = sub.add_parser("cancel-jobs")
    s.add_argument("--since", required=True)
    s.add_argument("--fixtures", required=True)
    s.add_argument("--pipelines", help="start-jobs' output: the big organisation's jobs")
    s.add_argument("--force", action="store_true")
    a = p.parse_args()
    {
        "prepare": prepare,
        "start-jobs": start_jobs,
        "report-jobs": report_jobs,
        "cancel-jobs": cancel_jobs,
    }[a.cmd](a)


if __name__ == "__main__":
    main()
