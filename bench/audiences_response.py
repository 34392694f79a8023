"""The audiences response model on real campaign data: 5-fold AUC on Response.

    .venv/bin/python bench/audiences_response.py [--data PATH] [--json out.json]

Reads ``marketing_campaign.csv`` (Kaggle "Customer Personality Analysis", 2,240
customers of a food and wine retailer, tab-separated; ../shared/data, licence
unconfirmed, so it is read from where it lies and never copied into the project)
straight from the file, no database. Every column except `ID` and `Response` is
a custom customer column (`attr:<name>`, numbers where nine in ten values are,
as the importer stores them), turned into features by the same code the
response audience uses (`audiences.features.profile_and_attributes`), with the
sensitive columns left out as an audience leaves them out by default:
`Year_Birth` and `Marital_Status` (core.sensitive's words) and `Dt_Customer`
(marked by the owner here, as the issue asks). `Response` (accepted the last
campaign) is the label.

Prints, for gradient boosting and logistic regression (``audiences.ml.candidates``),
and the two averaged, the 5-fold stratified AUC (seed 0) beside the issue's reference figures, which
model the response audience would choose, and its held-out AUC.
docs/quality.md ("Audiences: response model") records the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from audiences.features import profile_and_attributes  # noqa: E402
from audiences.ml import BLEND, choose_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "marketing_campaign.csv"
MARKED = ["Dt_Customer"]  # what the issue leaves out beyond core.sensitive's words
REFERENCE = {"gradient_boosting": 0.884, "logistic": 0.863, BLEND: None}


def customers_frame(raw: pd.DataFrame) -> pd.DataFrame:
    """The file as `History.customers()` would return it after an import with every
    column kept as a custom attribute."""
    frame = pd.DataFrame({"customer_id": np.arange(1, len(raw) + 1, dtype=np.int64)})
    for column in raw.columns:
        if column == "Response":
            continue
        values = raw[column]
        numeric = pd.to_numeric(values, errors="coerce")
        if numeric.notna().sum() >= 0.9 * values.notna().sum():
            frame[f"attr:{column}"] = numeric.astype("float64")
        else:
            frame[f"attr:{column}"] = values.astype(object).where(values.notna(), None)
    return frame


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    raw = pd.read_csv(args.data, sep="\t")
    y = raw["Response"].to_numpy(dtype=np.int64)
    customers = customers_frame(raw)
    started = time.perf_counter()
    features = profile_and_attributes(
        customers, cutoff_ns=np.zeros(len(customers), dtype=np.int64), marked=MARKED
    )
    X = features.X
    choice = choose_model(X, y)
    results = choice.cv_auc
    elapsed = time.perf_counter() - started
    print(f"marketing_campaign.csv: {len(y):,} customers, {int(y.sum())} responded")
    print(f"left out as sensitive: {', '.join(features.excluded_sensitive)}")
    print(f"skipped: {', '.join(f'{k} ({v})' for k, v in features.skipped.items())}")
    print(f"features ({len(features.columns)}): {', '.join(features.feature_names())}")
    print()
    print(f"{'model':<28}{'5-fold AUC':>12}{'reference':>12}")
    for name, auc in results.items():
        ref = REFERENCE[name]
        print(f"{name:<28}{auc:>12.3f}{'' if ref is None else f'{ref:.3f}':>12}")
    print()
    print(
        f"chosen: {choice.kind}; held-out AUC {choice.holdout_auc:.3f} "
        f"(a quarter of the customers, stratified, seed 0); {elapsed:.1f} s in all"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "cv_auc": results,
                    "reference": REFERENCE,
                    "chosen": choice.kind,
                    "holdout_auc": choice.holdout_auc,
                    "excluded_sensitive": features.excluded_sensitive,
                    "features": features.feature_names(),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
