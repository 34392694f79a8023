"""The whole nightly pipeline at scale: each step's wall time and peak memory per size.

    source /work/hx.sh big; pgenv .venv/bin/python bench/pipeline_scale.py \\
        [--orgs SLUG ...] [--sizes 10000 100000 ...] [--steps segments,predictions]
        [--skip-baseline] [--concurrency 2] [--json out.json]

Against the database DATABASE_URL names (PostgreSQL as the application role, as the
workers run), for each organisation (`--orgs`, by slug; default: every organisation
whose slug starts with `bench-` and that has at least 10,000 customers, i.e.
segmenta_big's 10k, 100k and 1M ones; `--min-customers` changes the bound), or for
organisations created here with `bench/_bigorg.py`'s `make_org` (`--sizes`; needs
DATABASE_OWNER_URL and the PostgreSQL superuser, see that file), every pipeline step
(segments, predictions, recommendations, audiences, offers, loyalty, research — the
capability steps of segmentation/pipeline.py) runs as the job runs it:
`manage.py run_pipeline --org SLUG --steps STEP --sync`, each in a fresh process, so
that the step's wall time and its peak resident memory (`os.wait4`'s ru_maxrss) are
its own. The process start (Python + Django, measured once as `startup`) is included
in each step's wall time.

Baselines measured in the same run:
- `sql_pass`: one SQL aggregate pass over the organisation's order lines joined to
  their orders, grouped per customer and fetched (what any pipeline reading every line
  pays at least), also in a fresh process as the application role;
- the smallest size: seconds per 1,000 customers at each size against it (1.0 means
  the cost per customer does not grow with size).

With `--concurrency N` the steps run as N heavy workers run an organisation's queued
steps (in pipeline order, N at a time; `ORG_MAX_HEAVY_JOBS` is 2 by default): the
total is then the wall time from the first step's start to the last one's end, and
the peak memory adds up the steps that overlapped.

The table gives, per size: customers, order lines, per-step seconds and peak GB, the
total, seconds per 1,000 customers, total / sql_pass, per-customer cost against the
smallest size, and the load average (1 min) before and after (the machine is shared).
`--json` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def _setup() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def _timed(cmd: list[str]) -> dict:
    """Run `cmd` in a fresh process; wall seconds, peak RSS (GB), exit code, output."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    # read the pipes in full first (a full pipe would block the child), then reap it
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    return {
        "seconds": round(seconds, 2),
        "cpu": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_gb": round(usage.ru_maxrss / 1024 / 1024, 3),  # KiB on Linux
        "rc": proc.returncode,
        "stdout": out.decode(errors="replace"),
        "stderr": err.decode(errors="replace")[-2000:],
    }


# --- what a child runs ---------------------------------------------------------------
def _child_sql_pass(slug: str) -> None:
    """The baseline: every order line of the organisation, aggregated per customer."""
    _setup()
    from django.db import connection

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from customers.history import float_sql, table_name
    from customers.models import Order, OrderLine

    org = Organization.objects.get(slug=slug)
    with tenant_context(org), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT o.customer_id, COUNT(*), SUM({float_sql('l.amount')}), MAX(o.ordered_at) "  # noqa: S608 - tables from model metadata
            f"FROM {table_name(OrderLine)} l JOIN {table_name(Order)} o ON o.id = l.order_id "
            "WHERE l.organization_id = %s AND o.organization_id = %s "
            "AND o.customer_id IS NOT NULL GROUP BY o.customer_id",
            [org.pk, org.pk],
        )
        n = 0
        while rows := cursor.fetchmany(100_000):
            n += len(rows)
    print(json.dumps({"customers": n}))


def _child_startup() -> None:
    _setup()
    print("{}")


# --- the parent ----------------------------------------------------------------------
def _steps() -> list[str]:
    _setup()
    from segmentation.pipeline import available_steps

    return [s.name for s in available_steps()]


def _org_facts(slug: str) -> dict:
    from django.db import connection

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from customers.history import table_name
    from customers.models import Customer, OrderLine

    org = Organization.objects.get(slug=slug)
    with tenant_context(org), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {table_name(Customer)} WHERE organization_id = %s",  # noqa: S608
            [org.pk],
        )
        customers = int(cursor.fetchone()[0])
        cursor.execute(
            f"SELECT COUNT(*) FROM {table_name(OrderLine)} WHERE organization_id = %s",  # noqa: S608
            [org.pk],
        )
        lines = int(cursor.fetchone()[0])
    return {"slug": slug, "organization_id": org.pk, "customers": customers, "lines": lines}


def _default_orgs() -> list[str]:
    from accounts.models import Organization

    return list(
        Organization.objects.filter(slug__startswith="bench-")
        .order_by("pk")
        .values_list("slug", flat=True)
    )


def _run_steps(slug: str, steps: list[str], concurrency: int) -> dict[str, dict]:
    """Each step in its own process, in pipeline order, at most `concurrency` at once
    (as the heavy workers take an organisation's queued steps: `ORG_MAX_HEAVY_JOBS`,
    default 2). Each result also has its start and end, seconds from the first start."""
    import threading

    todo = list(steps)
    done: dict[str, dict] = {}
    lock = threading.Lock()
    t0 = time.perf_counter()

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                step = todo.pop(0)
            began = time.perf_counter() - t0
            cmd = [PY, "manage.py", "run_pipeline", "--org", slug, "--steps", step, "--sync"]
            res = _timed(cmd)
            res["start"], res["end"] = round(began, 2), round(time.perf_counter() - t0, 2)
            with lock:
                done[step] = res

    threads = [threading.Thread(target=worker) for _ in range(max(1, concurrency))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {step: done[step] for step in steps}


def _measure(facts: dict, steps: list[str], *, baseline: bool, concurrency: int = 1) -> dict:
    slug = facts["slug"]
    row: dict = {**facts, "load_before": round(os.getloadavg()[0], 2), "steps": {}}
    if baseline:
        base = _timed([PY, __file__, "--child-sql-pass", slug])
        row["sql_pass"] = {k: base[k] for k in ("seconds", "peak_gb", "rc")}
        print(f"  {slug} sql_pass {base['seconds']:.1f}s", file=sys.stderr, flush=True)
    results = _run_steps(slug, steps, concurrency)
    for step in steps:
        res = results[step]
        inner = None
        try:
            inner = json.loads(res["stdout"].strip().splitlines()[-1]).get("seconds")
        except (ValueError, IndexError):
            pass
        row["steps"][step] = {
            "seconds": res["seconds"],
            "peak_gb": res["peak_gb"],
            "ok": res["rc"] == 0,
            "step_seconds": inner,
            "cpu": res["cpu"],
            "start": res["start"],
            "end": res["end"],
        }
        if res["rc"]:
            row["steps"][step]["error"] = res["stderr"].strip().splitlines()[-1:]
        print(
            f"  {slug} {step} {res['seconds']:.1f}s {res['peak_gb']:.2f} GB"
            + ("" if res["rc"] == 0 else f" FAILED {row['steps'][step].get('error')}"),
            file=sys.stderr,
            flush=True,
        )
    ran = list(row["steps"].values())
    row["concurrency"] = concurrency
    # one after another: the sum; side by side: from the first start to the last end
    row["total"] = round(
        sum(s["seconds"] for s in ran) if concurrency <= 1 else max(s["end"] for s in ran),
        2,
    )
    # side by side, the memory of the steps running at the same moment adds up (each
    # one's peak, so an upper bound); the most is reached as some step starts
    row["peak_gb"] = round(
        max(
            (sum(o["peak_gb"] for o in ran if o["start"] <= s["start"] < o["end"]) for s in ran),
            default=0.0,
        ),
        3,
    )
    row["per_1k"] = round(row["total"] / max(facts["customers"], 1) * 1000, 4)
    row["load_after"] = round(os.getloadavg()[0], 2)
    return row


def _table(rows: list[dict], steps: list[str], startup: float) -> str:
    smallest = min(rows, key=lambda r: r["customers"])
    head = ["customers", "lines"] + steps + ["total", "peak GB", "s/1k cust", "x sql_pass"]
    head += ["x per-cust vs smallest", "load"]
    out = [" | ".join(head), " | ".join("---" for _ in head)]
    for r in rows:
        cells = [f"{r['customers']:,}", f"{r['lines']:,}"]
        for step in steps:
            s = r["steps"].get(step)
            cells.append(
                "-"
                if s is None
                else f"{s['seconds']:.1f} s ({s['step_seconds'] or 0:.1f} in step, "
                f"{s['cpu']:.1f} cpu) / {s['peak_gb']:.2f} GB" + ("" if s["ok"] else " FAILED")
            )
        base = r.get("sql_pass", {}).get("seconds")
        cells += [
            f"{r['total']:.1f} s",
            f"{r['peak_gb']:.2f}",
            f"{r['per_1k']:.3f}",
            f"{r['total'] / base:.1f}" if base else "-",
            f"{r['per_1k'] / smallest['per_1k']:.2f}" if smallest["per_1k"] else "-",
            f"{r['load_before']} → {r['load_after']}",
        ]
        out.append(" | ".join(cells))
    bases = ", ".join(
        f"{r['customers']:,}: {r['sql_pass']['seconds']:.1f} s" for r in rows if "sql_pass" in r
    )
    out.append(
        f"\nstartup (Python + Django, in each step's time): {startup:.1f} s; "
        f"sql_pass baseline: {bases or 'skipped'}"
    )
    return "\n".join(out)


def main() -> None:
    if "--child-sql-pass" in sys.argv:
        return _child_sql_pass(sys.argv[sys.argv.index("--child-sql-pass") + 1])
    if "--child-startup" in sys.argv:
        return _child_startup()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orgs", nargs="*", help="organisation slugs (default: bench-*)")
    p.add_argument("--sizes", nargs="*", type=int, help="create organisations of these sizes")
    p.add_argument("--steps", help="comma-separated steps (default: every step)")
    p.add_argument(
        "--min-customers", type=int, default=10_000, help="default organisations' smallest size"
    )
    p.add_argument("--skip-baseline", action="store_true", help="no sql_pass baseline")
    p.add_argument(
        "--concurrency",
        type=int,
        default=1,
        help="steps run side by side, as that many heavy workers would (default 1: one "
        "after another, each step's time its own)",
    )
    p.add_argument("--json", help="write every figure to this file")
    a = p.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        sys.exit("bench/pipeline_scale.py measures PostgreSQL: set DATABASE_URL (see pgenv)")
    steps = _steps()
    if a.steps:
        wanted = [s.strip() for s in a.steps.split(",") if s.strip()]
        steps = [s for s in steps if s in wanted]
    if a.sizes:
        sys.path.insert(0, str(ROOT / "bench"))
        from _bigorg import make_org

        slugs = [make_org(customers=n)["slug"] for n in a.sizes]
    else:
        slugs = a.orgs or _default_orgs()
    facts = sorted((_org_facts(s) for s in slugs), key=lambda f: f["customers"])
    if not (a.sizes or a.orgs):
        facts = [f for f in facts if f["customers"] >= a.min_customers]
    startup = _timed([PY, __file__, "--child-startup"])["seconds"]
    rows = []
    for f in facts:
        print(f"{f['slug']}: {f['customers']:,} customers, {f['lines']:,} lines", file=sys.stderr)
        rows.append(_measure(f, steps, baseline=not a.skip_baseline, concurrency=a.concurrency))
    print(f"uptime: {os.popen('uptime').read().strip()}")  # noqa: S605,S607
    if a.concurrency > 1:
        print(
            f"steps side by side, {a.concurrency} at a time: total is the wall time from the "
            "first step's start to the last one's end; peak GB adds up overlapping steps"
        )
    print(_table(rows, steps, startup))
    if a.json:
        Path(a.json).write_text(
            json.dumps({"startup": startup, "steps": steps, "rows": rows}, indent=2)
        )


if __name__ == "__main__":
    main()
