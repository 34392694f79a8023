"""Benchmark: the `research` pipeline step (`research.analysis.research_run`) on
generated feedback of several sizes, phase by phase, against plain VADER over the
same texts measured in the same run.

    .venv/bin/python bench/research_step.py [--sizes 1000,10000,100000] [--json out.json]

Database: the embedded SQLite in a temporary directory (the default), or PostgreSQL
as the application role when DATABASE_URL is a postgres URL (with
DATABASE_OWNER_URL set: the script migrates with it first, as ``manage.py migrate``
does; ``pgenv`` of /work/hx.sh sets both). On PostgreSQL the generated
organisations stay in that database (slug ``bench-research-<size>-<time>``). Each
size runs in its own process, so its peak memory (maximum resident set size) is its
own.

Generated per size N (not timed): N / 4 customers, a live segmentation of them (4
clusters of unequal size, one with a persona, and one rule segment) leaving a
tenth of the customers outside; N feedback items over the 180 days up to
yesterday, 85% from a customer, built from research/demo.py's six planted themes
(praise or complaint; delivery complaints grow in the last 30 days) with one text
in three followed by a sentence of research/tests/generated.py and one in forty
blank; 80% of the reviews carry stars that follow praise or complaint (one in
twenty the other way round), support messages none.

Timed: `research_run` twice — the first run, then again on unchanged data — with
its phases (read, sentiment, cross-validation, training and scoring with the rated
model, themes, assignment of the texts outside the theme sample, key phrases,
trends and the by-segment index, writes, "what changed"). Baseline (1.0x): plain
VADER (`research.text.vader_score`) over the same texts, measured before the runs
(a fresh analyser, no cache).

Prints a table per size and one JSON object (a list, one entry per size).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHUNK = 5_000
PHASES = (
    "read",
    "sentiment",
    "cross_validation",
    "training",
    "themes",
    "assignment",
    "phrases",
    "trends_index",
    "writes",
    "changes",
)
SEGMENTS = (("Loyal Regulars", 0.35), ("Fading Small-Basket Shoppers", 0.25),
            ("New Faces", 0.2), ("Big Spenders", 0.1))  # fmt: skip


def _setup() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    url = os.environ.get("DATABASE_URL", "")
    os.environ["SEGMENTA_VAR_DIR"] = tempfile.mkdtemp(prefix="bench-research-")
    if url.startswith("postgres"):
        if not os.environ.get("DATABASE_OWNER_URL"):
            sys.exit("PostgreSQL needs DATABASE_OWNER_URL (the schema owner) to migrate")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=os.environ, check=True
        )
        engine = "postgresql"
    else:
        os.environ.pop("DATABASE_URL", None)  # the embedded SQLite default
        engine = "sqlite"
    import django

    django.setup()
    import logging

    if engine == "sqlite":
        from django.apps import apps
        from django.conf import settings
        from django.core.management import call_command

        # tables straight from the models (as `pytest --nomigrations` does)
        settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
        call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
    for name in ("segmenta.jobs", "research.analysis", "segmenta.research"):
        logging.getLogger(name).setLevel(logging.WARNING)
    return engine


def texts_and_ratings(n: int, end: dt.datetime, seed: int = 0):
    """(created_at, source, rating, text) for n items (see the module docstring)."""
    from research import demo
    from research.tests import generated

    rng = random.Random(seed)
    extra, _ = generated.feedback(
        {"delivery": 300, "sizing": 300, "price": 300, "staff": 300}, seed=seed, extra=False
    )
    rows = []
    for _ in range(n):
        age = rng.uniform(0, demo.HISTORY_DAYS)
        created = end - dt.timedelta(days=age)
        last = age < demo.WINDOW_DAYS
        theme = demo._pick_theme(last, rng)
        complaint = rng.random() < demo.COMPLAINT_SHARE[theme][1 if last else 0]
        support = rng.random() < (0.45 if complaint else 0.1)
        text = demo._text(theme, complaint, rng)
        if rng.random() < 0.2:
            other = rng.choice([t for t in demo.THEME_WEIGHTS if t != theme])
            text += " " + demo._text(other, rng.random() < 0.3, rng)
        if rng.random() < 1 / 3:
            text += " " + rng.choice(extra)
        text += rng.choice(demo.ENDINGS)
        if rng.random() < 1 / 40:
            text = ""
        rating = None
        if not support and rng.random() < 0.8:
            good = not complaint if rng.random() >= 0.05 else complaint
            rating = float(rng.choice([4, 5, 5]) if good else rng.choice([1, 2, 2]))
        rows.append((created, "support" if support else "review", rating, text))
    return rows


def generate(n: int, seed: int = 0):
    """The organisation, its customers, live segmentation and feedback."""
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from accounts.services import organization_create
    from accounts.tenancy import tenant_context
    from customers.models import Customer, Feedback
    from segmentation.models import Persona, Segment, SegmentationRun, SegmentMembership

    rng = np.random.default_rng(seed)
    stamp = time.strftime("%Y%m%d%H%M%S")
    user = get_user_model().objects.create_user(
        email=f"bench-research-{n}-{stamp}@example.com", password=None
    )
    org = organization_create(
        name=f"Research bench {n}", owner=user, slug=f"bench-research-{n}-{stamp}", currency="GBP"
    )
    end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
        seconds=1
    )  # yesterday's end
    n_customers = max(20, n // 4)
    with tenant_context(org):
        Customer.objects.bulk_create(
            [
                Customer(organization=org, external_id=f"C{i:07d}", email=f"c{i}@example.com")
                for i in range(n_customers)
            ],
            batch_size=CHUNK,
        )
        ids = list(Customer.objects.order_by("pk").values_list("pk", flat=True))
        run = SegmentationRun.objects.create(
            organization=org, as_of=end.date(), chosen_k=len(SEGMENTS), is_live=True
        )
        cut = np.cumsum([0] + [share for _, share in SEGMENTS])
        where = rng.random(n_customers)
        members = []
        for k, (name, _) in enumerate(SEGMENTS):
            chosen = np.flatnonzero((where >= cut[k]) & (where < cut[k + 1]))
            segment = Segment.objects.create(
                organization=org, kind="cluster", name=name, key=f"cluster-{k}", size=len(chosen)
            )
            if k == 1:
                Persona.objects.create(organization=org, segment=segment, name=name)
            members += [
                SegmentMembership(organization=org, run=run, segment=segment, customer_id=ids[i])
                for i in chosen
            ]
        rule_members = np.flatnonzero(rng.random(n_customers) < 0.15)
        rule = Segment.objects.create(
            organization=org, kind="rule", name="Newsletter readers", key="rule-news",
            size=len(rule_members),
        )  # fmt: skip
        members += [
            SegmentMembership(organization=org, run=run, segment=rule, customer_id=ids[i])
            for i in rule_members
        ]
        SegmentMembership.objects.bulk_create(members, batch_size=CHUNK)
        rows = texts_and_ratings(n, end, seed)
        who = rng.integers(0, n_customers, n)
        anonymous = rng.random(n) < 0.15
        items = [
            Feedback(
                organization=org,
                external_id=f"F{j:08d}",
                customer_id=None if anonymous[j] else ids[int(who[j])],
                created_at=created,
                source=source,
                rating=rating,
                text=text,
            )
            for j, (created, source, rating, text) in enumerate(rows)
        ]
        Feedback.objects.bulk_create(items, batch_size=CHUNK)
    texts = [r[3] for r in rows]
    return (
        org,
        end.date(),
        texts,
        {
            "customers": n_customers,
            "rated": sum(r[2] is not None for r in rows),
            "distinct_texts": len({r[3] for r in rows if r[3].strip()}),
            "segment_members": len(members),
        },
    )


def _peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def run_one(n: int) -> dict:
    from django.db import connection

    from accounts.tenancy import tenant_context
    from research.analysis import research_run
    from research.text import vader_score

    started = time.perf_counter()
    org, as_of, texts, counts = generate(n)
    generate_seconds = time.perf_counter() - started
    memory_before = _peak_mb()
    started = time.perf_counter()
    vader_score(texts)
    baseline = time.perf_counter() - started
    runs = []
    with tenant_context(org):
        for label in ("first", "unchanged"):
            started = time.perf_counter()
            phases: dict[str, float] = {}
            out = research_run(organization=org, as_of=as_of, phases=phases)
            seconds = time.perf_counter() - started
            runs.append(
                {
                    "run": label,
                    "seconds": round(seconds, 2),
                    "ratio": round(seconds / baseline, 1) if baseline else None,
                    "model": out["model"],
                    "themes": out["themes"],
                    "phases": {k: round(v, 3) for k, v in phases.items()},
                }
            )
    return {
        "feedback": n,
        "database": connection.vendor,
        **counts,
        "generate_seconds": round(generate_seconds, 1),
        "baseline_vader_seconds": round(baseline, 3),
        "runs": runs,
        "peak_memory_mb": _peak_mb(),
        "memory_before_runs_mb": memory_before,
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def _print(result: dict) -> None:
    err = sys.stderr
    print(f"\n{result['feedback']:,} feedback items on {result['database']} "
          f"({result['customers']:,} customers, {result['rated']:,} rated, "
          f"{result.get('distinct_texts', 0):,} distinct texts); "
          f"plain VADER {result['baseline_vader_seconds']} s; peak memory "
          f"{result['peak_memory_mb']} MB (before the runs {result['memory_before_runs_mb']} MB)",
          file=err)  # fmt: skip
    print(f"{'phase':<18}" + "".join(f"{r['run']:>12}" for r in result["runs"]), file=err)
    for phase in PHASES:
        cells = "".join(f"{r['phases'].get(phase, 0.0):>12.2f}" for r in result["runs"])
        print(f"{phase:<18}{cells}", file=err)
    print(f"{'total':<18}" + "".join(f"{r['seconds']:>12.2f}" for r in result["runs"]), file=err)
    print(f"{'x VADER':<18}" + "".join(f"{r['ratio']:>12}" for r in result["runs"]), file=err)
    print(f"{'model, themes':<18}" + "".join(
        f"{r['model'] + ', ' + str(r['themes']):>12}" for r in result["runs"]), file=err)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--json", default="")
    parser.add_argument("--one", type=int, default=0, help=argparse.SUPPRESS)  # one size, inside
    args = parser.parse_args()
    if args.one:
        _setup()
        print(json.dumps(run_one(args.one)))
        return
    results = []
    for size in [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]:
        out = subprocess.run(
            [sys.executable, __file__, "--one", str(size)],
            cwd=ROOT, env=os.environ, check=True, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        result = json.loads(out.stdout.strip().splitlines()[-1])
        _print(result)
        results.append(result)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
