"""Recommendation candidates on the Online Retail sample, with the issue's hold-out
protocol (recommendations/ml.py): precision, recall and MAP at 10 and coverage per
candidate, and which one the step would serve.

    .venv/bin/python bench/recommendations_holdout.py [--seeds 3] [--data PATH]

Lines with a customer only; cancellation invoices (``C...``) and lines with a
negative quantity or price are returns, not purchases; every product code counts
as an item (postage and fees included, as in the issue's reference figures).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from recommendations import ml  # noqa: E402

DATA = ROOT / "customers" / "demo_data" / "online_retail_sample.csv.gz"


def load(path: Path):
    lines = pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str})
    lines = lines[lines["CustomerID"].notna()]
    returns = lines["InvoiceNo"].str.startswith("C") | (lines["Quantity"] <= 0)
    lines = lines[~returns & (lines["UnitPrice"] >= 0)]
    customers = pd.factorize(lines["CustomerID"])[0]
    items, codes = pd.factorize(lines["StockCode"])
    days = pd.to_datetime(lines["InvoiceDate"]).to_numpy().astype("datetime64[D]").astype(np.int64)
    return customers, items, days, len(codes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    customers, items, days, n_items = load(args.data)
    runs = []
    for seed in range(args.seeds):
        started = time.perf_counter()
        evaluation = ml.evaluate_candidates(customers, items, days, n_items=n_items, seed=seed)
        runs.append(
            {
                "seed": seed,
                "seconds": round(time.perf_counter() - started, 2),
                "evaluation": evaluation,
                "served": ml.choose(evaluation)["kind"],
            }
        )
    kinds = [e["kind"] for e in runs[0]["evaluation"]]
    summary = {
        kind: {
            metric: round(
                float(np.mean([next(e for e in r["evaluation"] if e["kind"] == kind)[metric]
                               for r in runs])), 4)
            for metric in ("precision_at_10", "recall_at_10", "map_at_10", "coverage")
        }
        for kind in kinds
    }  # fmt: skip
    served = [next(e for e in r["evaluation"] if e["kind"] == r["served"]) for r in runs]
    print(
        json.dumps(
            {
                "data": str(args.data),
                "lines": int(len(customers)),
                "customers_evaluated": runs[0]["evaluation"][0]["customers"],
                "items": n_items,
                "implicit_installed": ml.implicit_available(),
                "mean_of_seeds": summary,
                "served": [r["served"] for r in runs],
                "served_precision_at_10_mean": round(
                    float(np.mean([s["precision_at_10"] for s in served])), 4
                ),
                "repeats": {e["kind"]: e["repeats"] for e in runs[0]["evaluation"]},
                "seconds": [r["seconds"] for r in runs],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
