"""Fair scheduling: how long a small shop's import waits while big organisations'
pipelines run, with one shared queue (the baseline) and with the `interactive` and
`heavy` queues served by workers of their own (core/jobs.py `job_queue`).

    source /work/hx.sh 4      # any PostgreSQL + Redis environment (its own Redis db)
    pgenv .venv/bin/python bench/fair_scheduling.py [--big 100000] [--others 2]
        [--others-size 20000] [--timeout 900]

Needs PostgreSQL (DATABASE_URL as the application role, DATABASE_OWNER_URL) and Redis
(REDIS_URL naming a database of its own: the run empties it before each layout).

1. Migrates, then makes (or reuses, found by name) the big organisations with
   bench/_bigorg.py (`make_org`: ~10 order lines per customer over two years, 5,000
   products): one of --big customers and --others of --others-size, and a small shop
   with an owner.
2. For each layout it starts real worker processes (`celery -A config worker`, the
   Redis broker, prefork pool):
   - baseline: one worker of concurrency 2 consuming one shared queue (every job is
     routed to it: JOB_QUEUE_HEAVY is set to the interactive queue's name);
   - fair: one worker `-Q heavy` and one `-Q interactive`, concurrency 1 each (the
     same two pool processes in total).
   It queues every big organisation's whole pipeline (`pipeline_start`, as the nightly
   run does; the per-organisation limit of heavy jobs applies), waits until pipeline
   steps are running, then the small shop uploads a 50-row customer CSV through the
   services the site's import wizard calls (`import_create`, `import_start`). From the
   import's Job row it measures the wait (created_at → started_at) and the time to
   the end (created_at → finished_at).
3. Kills the workers (SIGKILL to their process groups: a warm shutdown would wait for
   the model fits), marks the jobs left unfinished as cancelled, and prints both
   layouts, the ratios (baseline / fair) and the load average.

Measured 2026-12-01 on the shared 2-core machine (load average 11–20 from other runs):
`--big 20000 --others 0`: baseline wait 115.37 s / done 120.26 s, fair 0.44 s / 3.32 s
(262x, 36x); `--big 100000 --others 1 --others-size 20000 --timeout 600`: baseline
> 600 s (not started), fair 0.36 s / 2.69 s.

Each layout is bounded by --timeout seconds; an import not started or not finished by
then is reported as "> timeout" (a lower bound). Workers' logs stay in the run's
temporary var folder until the end (printed on failure).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _django_setup import cleanup  # noqa: E402

SMALL_ROWS = 50
BIG_NAME = "Fair scheduling {n:,} customers #{i}"


def _setup() -> None:
    """Django as in production (DEBUG off) on a temporary var folder (the workers'
    too: they read the uploaded file from it); migrates only when a migration is
    pending (a no-op `migrate` takes minutes on a loaded machine)."""
    import tempfile

    import _django_setup

    var = tempfile.mkdtemp(prefix="segmenta-fair-")
    _django_setup._TEMP_DIRS.append(var)
    os.environ["SEGMENTA_VAR_DIR"] = var
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections["default"])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)
    # A SIGTERM (timeout, Ctrl+C's cousin) unwinds through `finally`: workers killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped (SIGTERM)"))


def _loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _orgs(big: int, others: int, others_size: int) -> list:
    """The big organisations (made once, then found by name) and their sizes."""
    from _bigorg import make_org

    from accounts.models import Organization
    from accounts.tenancy import unscoped_context
    from customers.models import Customer

    wanted = [(1, big)] + [(i + 2, others_size) for i in range(others)]
    orgs = []
    for i, n in wanted:
        name = BIG_NAME.format(n=n, i=i)
        with unscoped_context():
            org = Organization.objects.filter(name=name).order_by("pk").first()
            have = Customer.all_objects.filter(organization=org).count() if org else 0
        if org is None or have < n:
            t0 = time.perf_counter()
            made = make_org(customers=n, name=name, seed=10 + i)
            print(f"  made {name} in {time.perf_counter() - t0:.0f} s", flush=True)
            org = Organization.objects.get(pk=made["organization_id"])
        orgs.append(org)
    return orgs


def _small_shop():
    from django.contrib.auth import get_user_model

    from accounts.models import Organization
    from accounts.services import organization_create

    email = "owner-fair-small-shop@bench.local"
    user = get_user_model().objects.filter(email=email).first()
    if user is None:
        user = get_user_model().objects.create_user(
            email=email, password="bench-password", email_verified=True
        )
    org = Organization.objects.filter(slug="fair-small-shop").first()
    if org is None:
        org = organization_create(name="Fair small shop", owner=user, slug="fair-small-shop")
    return org, user


def _csv(layout: str) -> bytes:
    stamp = int(time.time())
    rows = ["external_id,email,first_name,last_name,country"]
    rows += [
        f"{layout}-{stamp}-{i},{layout}.{stamp}.{i}@small-shop.example,Ada,Lovelace,GB"
        for i in range(SMALL_ROWS)
    ]
    return ("\n".join(rows) + "\n").encode()


class Workers:
    """Worker processes of one layout, each in a process group of its own."""

    def __init__(self, var: Path, env: dict):
        self.var, self.env, self.procs = var, env, []

    def start(self, name: str, queues: str, concurrency: int) -> None:
        log = self.var / f"worker-{name}.log"
        cmd = [
            str(ROOT / ".venv" / "bin" / "celery"),
            "-A",
            "config",
            "worker",
            "-Q",
            queues,
            "-n",
            f"{name}@%h",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-mingle",
            "--without-gossip",
        ]
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.procs.append((name, proc, log))

    def wait_ready(self, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        for name, proc, log in self.procs:
            while b" ready." not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.stderr.write(log.read_text(errors="replace")[-3000:])
                    raise SystemExit(f"worker {name} did not start")
                time.sleep(0.5)

    def kill(self) -> None:
        for _, proc, _ in self.procs:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for _, proc, _ in self.procs:
            proc.wait(timeout=30)
        self.procs = []


def _stop_unfinished(org_ids: list[int]) -> int:
    from django.utils import timezone

    from accounts.tenancy import unscoped_context
    from core.models import FINISHED, Job, JobStatus

    with unscoped_context():
        return (
            Job.all_objects.filter(organization_id__in=org_ids)
            .exclude(status__in=FINISHED)
            .update(
                status=JobStatus.CANCELLED,
                cancel_requested=True,
                finished_at=timezone.now(),
                message="Stopped by bench/fair_scheduling.py.",
            )
        )


def _flush_redis() -> None:
    import redis

    redis.Redis.from_url(os.environ["REDIS_URL"]).flushdb()


def _run_layout(name: str, *, orgs, shop, owner, timeout: float, var: Path) -> dict:
    from django.conf import settings
    from django.core.files.uploadedfile import SimpleUploadedFile

    from accounts.tenancy import tenant_context, unscoped_context
    from core.jobs import job_queue
    from core.models import Job, JobStatus
    from customers.services.importing import import_create, import_start
    from segmentation.pipeline import pipeline_start

    interactive, heavy = "interactive", "heavy"
    env = {**os.environ, "JOB_QUEUE_INTERACTIVE": interactive, "JOB_QUEUE_HEAVY": heavy}
    if name == "baseline":
        env["JOB_QUEUE_HEAVY"] = interactive  # one shared queue for every job
    settings.JOB_QUEUE_INTERACTIVE = env["JOB_QUEUE_INTERACTIVE"]
    settings.JOB_QUEUE_HEAVY = env["JOB_QUEUE_HEAVY"]
    all_ids = [o.pk for o in orgs] + [shop.pk]
    _stop_unfinished(all_ids)
    _flush_redis()

    workers = Workers(var, env)
    if name == "baseline":
        workers.start("shared", interactive, 2)
        slots = 2
    else:
        workers.start("heavy", heavy, 1)
        workers.start("interactive", interactive, 1)
        slots = 1
    try:
        workers.wait_ready()
        pipeline_jobs: list[int] = []
        queues_used = {}
        for org in orgs:
            with tenant_context(org):
                started = pipeline_start(organization=org, reason="fair scheduling bench")
            pipeline_jobs += list(started["jobs"].values())
            with unscoped_context():
                first = Job.all_objects.get(pk=next(iter(started["jobs"].values())))
            with tenant_context(org):
                queues_used[org.name] = job_queue(first)
        # Upload once the big organisations' steps hold the worker slots.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with unscoped_context():
                running = Job.all_objects.filter(
                    pk__in=pipeline_jobs, status=JobStatus.RUNNING
                ).count()
            if running >= slots:
                break
            time.sleep(0.5)
        time.sleep(2)  # let them get into their work
        with unscoped_context():
            ahead = Job.all_objects.filter(pk__in=pipeline_jobs)
            running = ahead.filter(status=JobStatus.RUNNING).count()
            queued = ahead.filter(status=JobStatus.QUEUED).count()
        load_at_upload = _loadavg()
        with tenant_context(shop):
            imp = import_create(
                organization=shop,
                kind="customers",
                uploaded_file=SimpleUploadedFile(
                    f"{name}-customers.csv", _csv(name), content_type="text/csv"
                ),
                user=owner,
            )
            job = import_start(imp=imp, user=owner)
            import_queue = job_queue(job)
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            with unscoped_context():
                job.refresh_from_db()
            if job.status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
                break
            time.sleep(0.2)
        with unscoped_context():
            job.refresh_from_db()
            done = Job.all_objects.filter(pk__in=pipeline_jobs, status=JobStatus.SUCCEEDED)
            steps_done = done.count()
        waited = (job.started_at - job.created_at).total_seconds() if job.started_at else None
        took = (job.finished_at - job.created_at).total_seconds() if job.finished_at else None
        return {
            "layout": name,
            "workers": [f"{n} (-Q {q}, concurrency {c})" for n, q, c in _layout(name)],
            "pipeline_jobs": len(pipeline_jobs),
            "pipeline_queues": queues_used,
            "import_queue": import_queue,
            "steps_running_at_upload": running,
            "steps_queued_at_upload": queued,
            "steps_succeeded_by_end": steps_done,
            "import_status": job.status,
            "import_message": job.message,
            "wait_seconds": round(waited, 2) if waited is not None else None,
            "total_seconds": round(took, 2) if took is not None else None,
            "timeout": timeout,
            "load_at_upload": load_at_upload,
            "load_at_end": _loadavg(),
        }
    finally:
        workers.kill()
        _stop_unfinished(all_ids)
        _flush_redis()


def _layout(name: str) -> list[tuple[str, str, int]]:
    if name == "baseline":
        return [("shared", "interactive (every job)", 2)]
    return [("heavy", "heavy", 1), ("interactive", "interactive", 1)]


def _fmt(seconds, timeout) -> str:
    return f"{seconds:.2f} s" if seconds is not None else f"> {timeout:.0f} s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--big", type=int, default=100_000, help="customers of the big organisation")
    p.add_argument("--others", type=int, default=2, help="other big organisations")
    p.add_argument("--others-size", type=int, default=20_000)
    p.add_argument("--timeout", type=float, default=900, help="seconds per layout, at most")
    p.add_argument(
        "--min-customers",
        type=int,
        default=None,
        help="JOB_HEAVY_QUEUE_MIN_CUSTOMERS for this run (default: the setting's)",
    )
    p.add_argument("--json", action="store_true", help="also print the figures as JSON")
    a = p.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not os.environ.get(
        "REDIS_URL"
    ):
        sys.exit("bench/fair_scheduling.py needs PostgreSQL and Redis: run it under pgenv")
    if a.min_customers is not None:
        os.environ["JOB_HEAVY_QUEUE_MIN_CUSTOMERS"] = str(a.min_customers)
    _setup()
    from django.conf import settings

    var = Path(os.environ["SEGMENTA_VAR_DIR"])
    started = time.monotonic()
    print(f"load average at start: {_loadavg()}", flush=True)
    try:
        orgs = _orgs(a.big, a.others, a.others_size)
        shop, owner = _small_shop()
        print(
            "organisations: "
            + ", ".join(o.name for o in orgs)
            + f"; small shop #{shop.pk}; heavy queue from "
            f"{settings.JOB_HEAVY_QUEUE_MIN_CUSTOMERS:,} customers",
            flush=True,
        )
        results = {}
        for name in ("baseline", "fair"):
            print(f"\n--- {name} ---", flush=True)
            r = _run_layout(name, orgs=orgs, shop=shop, owner=owner, timeout=a.timeout, var=var)
            results[name] = r
            print(
                f"workers: {'; '.join(r['workers'])}\n"
                f"pipeline jobs queued: {r['pipeline_jobs']} (queues: {r['pipeline_queues']}); "
                f"at upload {r['steps_running_at_upload']} running, "
                f"{r['steps_queued_at_upload']} queued; load {r['load_at_upload']}\n"
                f"small import (queue {r['import_queue']}): waited "
                f"{_fmt(r['wait_seconds'], a.timeout)}, finished after "
                f"{_fmt(r['total_seconds'], a.timeout)} — {r['import_status']}: "
                f"{r['import_message']}",
                flush=True,
            )
        b, f = results["baseline"], results["fair"]
        print("\n=== fair scheduling: the small shop's 50-row import ===")
        print(f"{'layout':<10} {'wait (created→started)':>24} {'done (created→finished)':>25}")
        for r in (b, f):
            print(
                f"{r['layout']:<10} {_fmt(r['wait_seconds'], a.timeout):>24} "
                f"{_fmt(r['total_seconds'], a.timeout):>25}"
            )
        for label, key in (("wait", "wait_seconds"), ("done", "total_seconds")):
            if f[key]:
                bound = "" if b[key] is not None else "at least "
                ratio = (b[key] if b[key] is not None else a.timeout) / f[key]
                print(f"ratio baseline/fair ({label}): {bound}{ratio:.1f}x")
        print(f"load average at end: {_loadavg()}  (2-core machine; `uptime`)")
        print(f"run took {time.monotonic() - started:.0f} s")
        if a.json:
            print(json.dumps(results, indent=2, default=str))
    finally:
        cleanup()


if __name__ == "__main__":
    main()
