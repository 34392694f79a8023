"""Benchmark: the predictions step through the database.

    .venv/bin/python bench/bench_predictions.py [--customers 100000] [--lines 1000000] [--products 3000] [--repeat 2] [--json out.json]

1. Generates customers whose orders follow a BG/NBD process (Gamma-Gamma spend),
   split into order lines over a few thousand products, plus 2% return orders
   and 3% guest orders, and loads them straight into a fresh SQLite database (the
   embedded default; a temporary directory unless ``--var-dir``) with multi-row
   INSERTs. Loading is not timed.
2. Baseline, measured in the same run: the pure in-memory fit and score
   (``prediction_score`` on arrays already in memory: per-customer summary, fit
   BG/NBD + Gamma-Gamma, score every customer with reasons).
3. The scoring step, as the job runs it: ``prediction_run(backtest=False,
   propensity=False, demand=False)`` — load the purchases from the database, fit,
   score, write every customer's predictions and swap the live run in one
   transaction (the second and later repeats also replace a live run and prune).
4. Timed separately, each on the same data: the back-test of every candidate
   against its baseline and the choice of what to serve (90-day horizon; the
   30-day propensity back-tested at as_of − 30), serving the propensity with its
   reasons, and the demand forecast (load units per
   product and day in SQL, forecast 4 weeks for every product).
5. A full run with everything, as the nightly job does it, with its own step
   timings.

Prints seconds and ratios against the baseline. Target: the scoring step for
100,000 customers / 1,000,000 order lines in under 30 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _setup(var_dir: str) -> None:
    os.environ["SEGMENTA_VAR_DIR"] = var_dir
    os.environ.pop("DATABASE_URL", None)  # always the embedded SQLite default
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.apps import apps
    from django.conf import settings
    from django.core.management import call_command

    # Tables straight from the models (as `pytest --nomigrations` does), so the
    # benchmark runs before and after migrations for new models exist.
    settings.MIGRATION_MODULES = {a.label: None for a in apps.get_app_configs()}
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    import logging

    # progress lines of jobs without a Job row would drown the table
    logging.getLogger("segmenta.jobs").setLevel(logging.WARNING)


def _best(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=1_000_000, help="order lines to aim for")
    parser.add_argument("--products", type=int, default=3_000)
    parser.add_argument("--repeat", type=int, default=2, help="best of N for each timing")
    parser.add_argument("--var-dir", help="keep the database here (default: a temporary dir)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()

    tmp = None
    if args.var_dir:
        Path(args.var_dir).mkdir(parents=True, exist_ok=True)
        var_dir = args.var_dir
        db = Path(var_dir) / "segmenta.sqlite3"
        if db.exists():
            sys.exit(f"{db} exists; give an empty --var-dir")
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench-predictions-")
        var_dir = tmp.name
    _setup(var_dir)

    import numpy as np

    from accounts.models import Organization
    from accounts.tenancy import tenant_context
    from customers.models import Customer, Order, OrderLine
    from predictions import services as svc
    from predictions.ml import serving as ml_serving
    from predictions.models import CustomerPrediction, PredictionRun
    from predictions.tests.factories import simulate_world, write_world

    as_of = dt.date(2024, 6, 30)
    org = Organization.objects.create(name="Bench shop", slug="bench")

    print(f"Generating {args.customers:,} customers …", file=sys.stderr)
    t = time.perf_counter()
    # about 4.3 purchases per customer with these parameters over two years
    probe = simulate_world(n_customers=2_000, as_of=as_of, seed=99)
    orders_per_customer = probe.lines["order"].nunique() / 2_000 * 1.05  # + returns, guests
    lines_per_order = max(1.0, args.lines / (args.customers * orders_per_customer))
    world = simulate_world(
        n_customers=args.customers,
        as_of=as_of,
        history_days=730,
        lines_per_order=lines_per_order,
        n_products=args.products,
        return_share=0.02,
        guest_share=0.03,
        seed=1,
    )
    t_generate = time.perf_counter() - t
    print(
        f"  {len(world.lines):,} order lines in {t_generate:.1f} s; loading into SQLite …",
        file=sys.stderr,
    )
    t = time.perf_counter()
    write_world(org, world)
    t_load = time.perf_counter() - t

    with tenant_context(org):
        counts = {
            "customers": Customer.objects.count(),
            "orders": Order.objects.count(),
            "order_lines": OrderLine.objects.count(),
        }
        print(
            f"  loaded {counts['customers']:,} customers, {counts['orders']:,} orders, "
            f"{counts['order_lines']:,} lines in {t_load:.1f} s\n",
            file=sys.stderr,
        )

        # the arrays the service would load, for the in-memory baseline and the parts
        orders = svc.prediction_load_orders(organization_id=org.pk, as_of=as_of)
        rate = 0.10

        t_baseline, predictions = _best(
            lambda: svc.prediction_score(orders, as_of=as_of, annual_discount_rate=rate),
            args.repeat,
        )
        t_load_orders, _ = _best(
            lambda: svc.prediction_load_orders(organization_id=org.pk, as_of=as_of), args.repeat
        )

        runs: list = []

        def scoring_step():
            run = svc.prediction_run(
                organization=org, backtest=False, propensity=False, demand=False
            )
            runs.append(run)
            return run

        t_scoring, run = _best(scoring_step, args.repeat)
        scoring_parts = min((r.timings for r in runs), key=lambda tm: tm["total"])
        assert CustomerPrediction.objects.filter(run=run).count() == predictions.customer_ids.size

        def backtest_and_serve():
            _, stored, _, choice = svc.prediction_backtest_and_serve(
                orders, as_of=as_of, predictions=predictions, annual_discount_rate=rate
            )
            return stored, choice

        t_backtest, (backtest, choice) = _best(backtest_and_serve, args.repeat)
        t_propensity, propensity = _best(lambda: ml_serving.propensity_result(choice), args.repeat)
        t_load_sales, sales = _best(
            lambda: svc.prediction_load_sales(organization_id=org.pk, as_of=as_of), args.repeat
        )
        t_demand, (forecast, _) = _best(
            lambda: svc.prediction_demand(sales, as_of=as_of), args.repeat
        )

        t = time.perf_counter()
        full = svc.prediction_run(organization=org)
        t_full = time.perf_counter() - t
        assert PredictionRun.objects.get(is_live=True) == full

    params = {k: round(getattr(predictions.params, k), 3) for k in ("r", "alpha", "a", "b")}
    n = predictions.customer_ids.size
    rows = [
        ("baseline: fit + score in memory", t_baseline),
        ("scoring step: load, fit, score, store (target < 30 s)", t_scoring),
        ("  of which: load purchases from the database", scoring_parts["load_orders"]),
        ("  of which: fit + score", scoring_parts["fit_score"]),
        ("  of which: write predictions, swap live run", scoring_parts["write"]),
        ("back-test every candidate (90 days, 30 for propensity), choose", t_backtest),
        ("serve purchase propensity (30 days) with reasons", t_propensity),
        ("demand: load units per product-day", t_load_sales),
        ("demand: forecast 4 weeks", t_demand),
        ("full run (everything, one pass)", t_full),
    ]
    print(
        f"Predictions through the database: {n:,} customers, {counts['orders']:,} orders, "
        f"{counts['order_lines']:,} order lines, {0 if forecast is None else len(forecast.table):,} "
        f"products (best of {args.repeat})"
    )
    print(f"{'step':58s} {'seconds':>8s} {'× baseline':>11s}")
    for label, seconds in rows:
        print(f"{label:58s} {seconds:8.2f} {seconds / t_baseline:10.1f}×")
    print(
        f"\nfitted BG/NBD {params} (true r=0.5, alpha=20, a=0.8, b=2.5); method "
        f"{predictions.method}; back-test predicted {backtest['predicted_orders']:,.0f} vs "
        f"actual {backtest['actual_orders']:,} orders; propensity AUC "
        f"{(propensity.auc or float('nan')):.3f}; served {choice.served}; "
        f"full-run step timings {full.timings}"
    )
    out = {
        "customers": n,
        **counts,
        "products": 0 if forecast is None else len(forecast.table),
        "seconds": {label.strip(): round(s, 3) for label, s in rows},
        "ratio_to_baseline": {label.strip(): round(s / t_baseline, 2) for label, s in rows},
        "scoring_parts": scoring_parts,
        "full_run_timings": full.timings,
        "params": params,
        "load_seconds_untimed": round(t_load, 1),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "numpy": np.__version__,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
