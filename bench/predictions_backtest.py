"""Back-test figures of the served predictions against their naive baselines.

    .venv/bin/python bench/predictions_backtest.py [--demo PATH] [--cdnow PATH] [--json out.json]

Two real order histories, read straight from their files (no database):

- the demo: the Online Retail sample the demo organisation is built from
  (``customers/demo_data/online_retail_sample.csv.gz``), one order per invoice,
  purchases only (an invoice whose lines are all negative, or whose total is
  negative, is a return and left out, as the importer and the predictions step
  do), as of the newest order day;
- CDNOW: the 2,357-customer sample in ``tests/data/cdnow`` (every purchase,
  1997-01 to 1998-06), as of 1998-06-30.

For each it runs what a prediction run runs (the BG/NBD back-test, then
``predictions.ml.serving.evaluate_and_serve``) and prints, at the back-test
cut-off: orders MAE per customer (served, BG/NBD, gradient boosting, same pace),
90-day value MAE, churn AUC against ranking by recency, propensity Brier against
the base rate, and what is served. docs/predictions.md records the figures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from predictions.ml import serving  # noqa: E402

DEMO = ROOT / "customers" / "demo_data" / "online_retail_sample.csv.gz"
CDNOW = ROOT / "tests" / "data" / "cdnow" / "CDNOW_sample.txt"


def demo_orders(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dt.date]:
    lines = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str})
    lines = lines[lines["CustomerID"].notna()]
    lines["amount"] = lines["Quantity"] * lines["UnitPrice"]
    lines["negative"] = (lines["Quantity"] < 0) | (lines["amount"] < 0)
    orders = lines.groupby("InvoiceNo").agg(
        customer=("CustomerID", "first"),
        at=("InvoiceDate", "first"),
        total=("amount", "sum"),
        all_negative=("negative", "all"),
    )
    orders = orders[~orders["all_negative"] & (orders["total"] >= 0)]
    days = pd.to_datetime(orders["at"]).to_numpy().astype("datetime64[D]")
    return (
        orders["customer"].to_numpy(dtype=np.int64),
        days,
        orders["total"].to_numpy(dtype=np.float64),
        days.max().astype(dt.date),
    )


def cdnow_orders(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dt.date]:
    frame = pd.read_csv(
        path, sep=r"\s+", header=None, names=["id", "sample_id", "date", "cds", "dollars"]
    )
    days = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d").to_numpy()
    return (
        frame["id"].to_numpy(dtype=np.int64),
        days.astype("datetime64[D]"),
        frame["dollars"].to_numpy(dtype=np.float64),
        dt.date(1998, 6, 30),
    )


def measure(name: str, ids, days, amounts, as_of: dt.date) -> dict:
    t = time.perf_counter()
    # as predictions.services.backtest_horizon: the longest of 90/60/30 days with at
    # least as much history before the cut-off
    first = days.min().astype(dt.date)
    horizon = next(h for h in (90, 60, 30) if (as_of - dt.timedelta(days=h) - first).days >= h)
    _, choice = serving.backtest_and_choose(ids, days, amounts, as_of=as_of, horizon_days=horizon)
    seconds = time.perf_counter() - t
    s = choice.scores
    return {
        "data": name,
        "as_of": as_of.isoformat(),
        "horizon_days": horizon,
        "customers_at_cutoff": int(choice.backtest_codes.size),
        "served": choice.served,
        "orders_mae": s["orders"],
        "value_mae": s["value"],
        "churn_auc": s["churn"],
        "propensity_brier": s["propensity"],
        "propensity_auc": s["propensity_auc"],
        "seconds": round(seconds, 2),
    }


def _fmt(scores: dict, served: str) -> str:
    parts = []
    for kind, value in scores.items():
        mark = "*" if kind == served else ""
        parts.append(f"{kind}{mark}={'-' if value is None else f'{value:.3f}'}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=Path, default=DEMO)
    parser.add_argument("--cdnow", type=Path, default=CDNOW)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    results = [
        measure("demo (Online Retail sample)", *demo_orders(args.demo)),
        measure("CDNOW sample", *cdnow_orders(args.cdnow)),
    ]
    for r in results:
        served = r["served"]
        print(
            f"{r['data']}: as of {r['as_of']}, {r['horizon_days']}-day back-test, "
            f"{r['customers_at_cutoff']:,} customers, {r['seconds']} s"
        )
        print(f"  orders MAE      {_fmt(r['orders_mae'], served['orders'])}")
        print(f"  value MAE       {_fmt(r['value_mae'], served['value'])}")
        print(f"  churn AUC       {_fmt(r['churn_auc'], served['churn'])}")
        print(f"  propensity Brier {_fmt(r['propensity_brier'], served['propensity'])}")
        print(f"  served: {served}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
