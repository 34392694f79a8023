"""Benchmark: the whole recommendations step (read, compare every candidate on the
hold-out, serve, store) on generated data, against a popularity-only pass measured
in the same run.

    .venv/bin/python bench/recommendations_train.py [--customers 100000] [--products 10000] [--lines 1000000] [--json out.json]

1. Generates `--customers` customers buying from `--products` products, about
   `--lines` order lines in all: each customer has a taste (one of the
   products' themes of 20) and buys from it about half the time, else from the
   whole catalogue by popularity (Zipf); one line in seven is a product the
   customer bought before. Loaded into a fresh SQLite database (the embedded
   default, a temporary directory unless ``--var-dir``) with the predictions'
   multi-row writer. Generating and loading are not timed.
2. The model alone, on arrays already in memory (``recommendations.ml``): the
   hold-out comparison of every candidate, fitting the chosen one on everything
   and ranking 30 products per customer — against the same pass with popularity
   as the only candidate (the baseline, 1.0×).
3. The step through the database, as the job runs it
   (``recommendations.services.recommendations_run``), with its own timings
   (read, compare, serve, write) — against the same step with popularity as the
   only candidate.

No segmentation has run, so "best-sellers in the customer's segment" falls back
to the shop's best-sellers. Prints a table and one JSON object. Target: the step
in under 60 s for 100,000 customers × 10,000 products × 1,000,000 lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AS_OF = dt.date(2024, 6, 30)
THEME = 20


def _setup(var_dir: str) -> None:
    os.environ["SEGMENTA_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)  # always the embedded SQLite default
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import logging

    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    # tables straight from the models (as `pytest --nomigrations` does)
    settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    logging.getLogger("segmenta.jobs").setLevel(logging.WARNING)


def generate(*, n_customers: int, n_products: int, n_lines: int, seed: int = 0):
    """A World (predictions.tests.factories) of themed shoppers; see the module doc."""
    import numpy as np
    import pandas as pd

    from predictions.tests.factories import World

    rng = np.random.default_rng(seed)
    n_themes = max(1, n_products // THEME)
    popularity = 1.0 / np.arange(1, n_products + 1) ** 0.9
    popularity = rng.permutation(popularity)  # popular products spread over the themes
    popularity /= popularity.sum()
    theme_of = rng.integers(0, n_themes, n_customers)
    orders_per = 1 + rng.poisson(2.0, n_customers)
    order_customer = np.repeat(np.arange(n_customers), orders_per)
    n_orders = order_customer.size
    lines_per = 1 + rng.poisson(max(n_lines / n_orders - 1.0, 0.0), n_orders)
    line_order = np.repeat(np.arange(n_orders), lines_per)
    line_customer = order_customer[line_order]
    n = line_order.size
    in_theme = theme_of[line_customer] * THEME + rng.integers(0, THEME, n)
    anywhere = rng.choice(n_products, size=n, p=popularity)
    favourite = theme_of[line_customer] * THEME + line_customer % THEME
    pick = rng.random(n)
    items = np.where(pick < 0.5, in_theme, np.where(pick < 0.857, anywhere, favourite))
    items = np.minimum(items, n_products - 1)
    seconds = rng.integers(0, 730 * 86400, n_orders)
    ordered_at = (
        np.datetime64(AS_OF, "s") + np.timedelta64(86399, "s") - seconds.astype("timedelta64[s]")
    )
    skus = np.array([f"P{i:05d}" for i in range(n_products)], dtype=object)
    quantity = 1 + rng.poisson(0.3, n)
    lines = pd.DataFrame(
        {
            "order": line_order,
            "customer": line_customer,
            "ordered_at": ordered_at[line_order],
            "is_return": np.zeros(n, dtype=bool),
            "sku": skus[items],
            "quantity": quantity,
            "amount": np.round(quantity * (2.0 + (items % 37)), 2),
        }
    )
    return World(n_customers=n_customers, lines=lines, as_of=AS_OF)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines to aim for")
    parser.add_argument("--var-dir", help="keep the database here (default: a temporary dir)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    tmp = None
    if args.var_dir:
        Path(args.var_dir).mkdir(parents=True, exist_ok=True)
        var_dir = args.var_dir
        if (Path(var_dir) / "segmenta.sqlite3").exists():
            sys.exit(f"{var_dir}/segmenta.sqlite3 exists; give an empty --var-dir")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-recommendations-")
        var_dir = tmp.name
    _setup(var_dir)

    import numpy as np
    import pandas as pd

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from customers.history import History
    from customers.models import OrderLine
    from predictions.tests.factories import write_world
    from recommendations import ml
    from recommendations import services as svc
    from recommendations.models import CustomerRecommendation, ProductRelation

    org = Organization.objects.create(name="Bench shop", slug="bench")
    print(f"Generating {args.customers:,} customers …", file=sys.stderr)
    world = generate(n_customers=args.customers, n_products=args.products, n_lines=args.lines)
    print(f"  {len(world.lines):,} order lines; loading into SQLite …", file=sys.stderr)
    t = time.perf_counter()
    write_world(org, world)
    print(f"  loaded in {time.perf_counter() - t:.1f} s", file=sys.stderr)

    figures: dict = {"customers": args.customers, "products": args.products}
    with tenant_context(org):
        figures["order_lines"] = OrderLine.objects.count()

        # the arrays the step builds, for the model-alone timings
        lines = History(org, AS_OF).order_lines()
        lines = lines[(lines["product_id"] >= 0) & (lines["quantity"] > 0)]
        customers = pd.factorize(lines["customer_id"])[0]
        items, _ = pd.factorize(lines["product_id"])
        n_items = int(items.max()) + 1
        days = (
            pd.to_datetime(lines["ordered_at"], utc=True).dt.tz_localize(None).to_numpy()
            .astype("datetime64[D]").astype(np.int64)
        )  # fmt: skip

        def model_pass(kinds: tuple[str, ...]) -> dict:
            marks: list[tuple[str, float]] = []
            t0 = time.perf_counter()
            evaluation = ml.evaluate_candidates(
                customers, items, days, n_items=n_items, kinds=kinds,
                progress=lambda kind: marks.append((kind, time.perf_counter())),
            )  # fmt: skip
            t_eval = time.perf_counter()
            best = ml.choose(evaluation)
            x = ml.interaction_matrix(customers, items, int(customers.max()) + 1, n_items)
            model = ml.fit(best["kind"], x) or ml.fit_popularity(x)
            ml.top_n(model, np.arange(x.shape[0]), svc.TOP_N * 3,
                     exclude_seen=not best["repeats"])  # fmt: skip
            t_end = time.perf_counter()
            ends = [m[1] for m in marks[1:]] + [t_eval]
            return {
                "seconds": t_end - t0,
                "compare": t_eval - t0,
                "fit_and_rank": t_end - t_eval,
                "per_kind": {k: round(e - s, 2) for (k, s), e in zip(marks, ends, strict=True)},
                "served": best["kind"],
                "evaluation": evaluation,
            }

        print("Model alone: popularity only, then every candidate …", file=sys.stderr)
        base_model = model_pass(("popularity",))
        full_model = model_pass(ml.KINDS)

        def step(kinds: tuple[str, ...] | None):
            original = ml.evaluate_candidates
            if kinds is not None:
                ml.evaluate_candidates = functools.partial(original, kinds=kinds)
            try:
                t0 = time.perf_counter()
                run = svc.recommendations_run(organization=org, as_of=AS_OF)
                return time.perf_counter() - t0, run
            finally:
                ml.evaluate_candidates = original

        print("The step through the database: popularity only, then the real one …",
              file=sys.stderr)  # fmt: skip
        t_base_step, base_run = step(("popularity",))
        t_step, run = step(None)
        stored = CustomerRecommendation.objects.filter(run=run).count()
        related = ProductRelation.objects.filter(run=run).count()

    tm = run.timings
    parts = {
        "read": tm["read"],
        "compare candidates": tm["evaluate"],
        "serve (fit, rank, reasons, bought together)": tm["serve"],
        "write rows, swap the live run, prune": round(
            tm["total"] - tm["read"] - tm["evaluate"] - tm["serve"], 3
        ),
    }
    rows = [
        ("model alone, popularity only (baseline)", base_model["seconds"], base_model["seconds"]),
        ("model alone, every candidate", full_model["seconds"], base_model["seconds"]),
        ("  of which: compare on the hold-out", full_model["compare"], base_model["seconds"]),
        ("  of which: fit the served one, rank 30 each", full_model["fit_and_rank"],
         base_model["seconds"]),
        *[(f"    compare: {k}", v, base_model["seconds"]) for k, v in full_model["per_kind"].items()],
        ("step, popularity only (baseline)", t_base_step, t_base_step),
        ("step: read, compare, serve, store (target < 60 s)", t_step, t_base_step),
        *[(f"  of which: {k}", v, t_base_step) for k, v in parts.items()],
    ]  # fmt: skip
    print(f"\n{figures['customers']:,} customers × {figures['products']:,} products, "
          f"{figures['order_lines']:,} order lines; served {run.served} "
          f"(repeats {run.repeats}); {stored:,} customer rows, {related:,} related rows\n")  # fmt: skip
    print(f"{'what':58} {'seconds':>8} {'× baseline':>11}")
    for label, seconds, baseline in rows:
        print(f"{label:58} {seconds:8.2f} {seconds / baseline:10.1f}×")
    figures.update(
        {
            "model_baseline_seconds": round(base_model["seconds"], 3),
            "model_seconds": round(full_model["seconds"], 3),
            "model_per_kind": full_model["per_kind"],
            "step_baseline_seconds": round(t_base_step, 3),
            "step_seconds": round(t_step, 3),
            "step_timings": tm,
            "baseline_step_timings": base_run.timings,
            "served": run.served,
            "repeats": run.repeats,
            "evaluation": run.evaluation,
            "customer_rows": stored,
            "related_rows": related,
        }
    )
    print(json.dumps(figures, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1, default=str))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
