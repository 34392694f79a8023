"""Benchmark: the segmentation step end to end from the database.

    .venv/bin/python bench/bench_segments.py [--sizes 10000,100000,1000000] [--write-doc]

For each size, customers of four planted behaviour groups (about ten order lines
each, with categories, channels and e-mail events) are written straight into the
database with multi-row INSERTs (not the importer). Then `segmentation_run()` —
read the data with SQL, features, k chosen in 2..8 with the minimum segment size,
RFM groups, profiles, personas, 2-D map, match to the live run, write segments,
personas and one membership row per customer and segment in one transaction — is
timed twice: the first run (nothing to match) and a second run on the same data
(matching against the first, as every nightly run does).

Baselines measured in the same run: the data load of the same size (writing the
rows in bulk, the least any pipeline touching every row must pay) and the
smallest size (for the scaling column, against the size ratio). ARI is the
adjusted Rand index of the segments against the planted groups.

By default a fresh SQLite database is made in a temporary directory (the embedded
default). With DATABASE_URL set the benchmark uses that database: it creates
organisations named bench-* and deletes them at the end.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TEMP_DIR = None
if not os.environ.get("DATABASE_URL") and not os.environ.get("SEGMENTA_VAR_DIR"):
    TEMP_DIR = tempfile.mkdtemp(prefix="segmenta-bench-")
    os.environ["SEGMENTA_VAR_DIR"] = TEMP_DIR
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
os.environ.setdefault("DEBUG", "false")  # no query log: it would hold every INSERT

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from accounts.models import Organization  # noqa: E402
from accounts.tenancy import tenant_context, unscoped_context  # noqa: E402
from segmentation.models import SegmentKind, SegmentMembership  # noqa: E402
from segmentation.services.segments import segmentation_run  # noqa: E402
from segmentation.tests.factories import write_generated_data  # noqa: E402
from segmentation.tests.ml.test_features import planted_data  # noqa: E402

DOC = ROOT / "docs" / "performance.md"


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def bench_size(n: int, seed: int = 3) -> dict:
    lines, customers, events, truth = planted_data(n_customers=n, seed=seed)
    org = Organization.objects.create(name=f"Bench {n}", slug=f"bench-{n}-{os.getpid()}")
    t0 = time.perf_counter()
    with tenant_context(org):
        pk_of = write_generated_data(
            organization=org, lines=lines, customers=customers, events=events
        )
    load = time.perf_counter() - t0
    n_lines, n_events = len(lines), len(events)
    del lines, customers, events

    with tenant_context(org):
        t0 = time.perf_counter()
        first = segmentation_run(organization=org)
        first_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = segmentation_run(organization=org)
        second_s = time.perf_counter() - t0
        # ARI of the top-level segments; ids kept at both levels (sub-segments too)
        members = dict(
            SegmentMembership.objects.filter(
                run=second, segment__kind=SegmentKind.CLUSTER, segment__parent__isnull=True
            ).values_list("customer_id", "segment_id")
        )

        def pairs(run) -> set:
            return set(
                SegmentMembership.objects.filter(
                    run=run, segment__kind=SegmentKind.CLUSTER
                ).values_list("customer_id", "segment_id")
            )

        same_ids = pairs(second) == pairs(first)
        n_sub = sum(1 for d in second.quality.get("drill_down", []) for _ in d.get("sizes", []))
    true = np.array([truth[cid] for cid in pk_of])
    found = np.array([members.get(pk_of[cid], -1) for cid in pk_of])
    timings = second.quality.get("timings", {})
    return {
        "customers": n,
        "lines": n_lines,
        "events": n_events,
        "load": load,
        "first": first_s,
        "second": second_s,
        "read": timings.get("load", 0.0),
        "features": timings.get("features", 0.0),
        "clustering": timings.get("clustering", 0.0),
        "profiles": timings.get("profiles", 0.0),
        "projection": timings.get("projection", 0.0),
        "drill_down": timings.get("drill_down", 0.0),
        "sub_segments": n_sub,
        "k": second.chosen_k,
        "ari": adjusted_rand_score(true, found),
        "same_ids": same_ids,
        "org": org,
        "rss": peak_rss_gb(),
    }


def table(rows: list[dict]) -> str:
    base = rows[0]
    out = [
        "| customers | order lines | load (s) | 1st run (s) | 2nd run (s) | read | features "
        "| clustering | drill-down | profiles+personas | map | write+match | run / load | run vs "
        f"{base['customers']:,} (size ×) | k | sub-segments | ARI | ids kept | peak RSS (GB) |",
        "|" + "---|" * 19,
    ]
    for r in rows:
        write = r["second"] - (
            r["read"]
            + r["features"]
            + r["clustering"]
            + r["drill_down"]
            + r["profiles"]
            + r["projection"]
        )
        out.append(
            f"| {r['customers']:,} | {r['lines']:,} | {r['load']:.1f} | {r['first']:.1f} "
            f"| {r['second']:.1f} | {r['read']:.1f} | {r['features']:.1f} | {r['clustering']:.1f} "
            f"| {r['drill_down']:.1f} | {r['profiles']:.1f} | {r['projection']:.2f} | {write:.1f} "
            f"| {r['second'] / r['load']:.2f} "
            f"| {r['second'] / base['second']:.1f}× ({r['customers'] / base['customers']:.0f}×) "
            f"| {r['k']} | {r['sub_segments']} | {r['ari']:.3f} | {'yes' if r['same_ids'] else 'NO'} | {r['rss']:.1f} |"
        )
    return "\n".join(out)


def _create_missing_tables() -> None:
    """Tables of models that have no migration yet (as pytest --nomigrations does)."""
    from django.apps import apps

    existing = set(connection.introspection.table_names())
    with connection.schema_editor() as editor:
        for model in apps.get_models():
            if model._meta.managed and model._meta.db_table not in existing:
                editor.create_model(model)
                existing.add(model._meta.db_table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", default="10000,100000", help="customers per run, comma-separated"
    )
    parser.add_argument("--write-doc", action="store_true", help=f"write the table into {DOC}")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]

    call_command("migrate", run_syncdb=True, verbosity=0)
    _create_missing_tables()
    print(
        f"database: {connection.vendor} {connection.settings_dict['NAME']} · cores: {os.cpu_count()}",
        file=sys.stderr,
    )
    rows = []
    try:
        for n in sizes:
            print(f"… {n:,} customers", file=sys.stderr, flush=True)
            row = bench_size(n)
            rows.append(row)
            print(
                f"{n:>9,} customers {row['lines']:>11,} lines: load {row['load']:6.1f}s  "
                f"run {row['first']:6.1f}s / {row['second']:6.1f}s  "
                f"run/load {row['second'] / row['load']:.2f}  k={row['k']} ARI={row['ari']:.3f} "
                f"clustering {row['clustering']:.1f}s drill-down {row['drill_down']:.1f}s "
                f"sub-segments {row['sub_segments']}",
                flush=True,
            )
    finally:
        if rows:
            print()
            print(table(rows))
        if TEMP_DIR:
            # a throwaway database: removing the file beats deleting millions of rows
            connection.close()
            shutil.rmtree(TEMP_DIR, ignore_errors=True)
        else:
            with unscoped_context():
                for row in rows:
                    row["org"].delete()
    if args.write_doc:
        text = DOC.read_text() if DOC.exists() else ""
        start, end = "<!-- bench:start -->", "<!-- bench:end -->"
        block = f"{start}\n{table(rows)}\n{end}"
        if start in text and end in text:
            text = text.split(start)[0] + block + text.split(end, 1)[1]
        else:
            text += "\n" + block + "\n"
        DOC.write_text(text)
        print(f"\nwritten to {DOC}", file=sys.stderr)


if __name__ == "__main__":
    main()
