"""Benchmark: BG/NBD + Gamma-Gamma fitting and scoring.

    .venv/bin/python bench/bench_clv.py [--customers 1000000] [--repeat 3]

1. Our implementation on N simulated customers (default 1,000,000): order rows
   -> per-customer summary -> fit both models -> score every customer
   (probability alive, expected orders for 30/90/365 days, next order, churn
   risk, 12-month discounted value, reason sentence).
2. Side by side with ``lifetimes`` 0.11.3 on the full CDNOW file (23,570
   customers): the same steps on the same data, ours in this process, lifetimes
   in its own throwaway virtualenv by subprocess. Create that once with

       python3.11 -m venv /tmp/lt-venv
       /tmp/lt-venv/bin/pip install Lifetimes==0.11.3 'pandas<2.2' 'numpy<2' 'scipy<1.14'

   (``--baseline-python`` points elsewhere). Without it the baseline is skipped
   with a message. The CDNOW file is read from that environment's copy of the
   lifetimes package (``--cdnow-master`` to override); lifetimes code is never
   imported into this process or this repository.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from predictions.ml import backtest, clv, demand, propensity  # noqa: E402

# The baseline script runs inside the lifetimes virtualenv.
BASELINE_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data

path, as_of, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3])
raw = pd.read_csv(path, sep=r"\s+", header=None, skiprows=1,
                  names=["customer_id", "date", "cds", "dollars"], dtype={"customer_id": str})
raw["date"] = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
times = {"summary": [], "fit_bgnbd": [], "fit_gamma_gamma": [], "score": []}
for _ in range(repeat):
    t0 = time.perf_counter()
    s = summary_data_from_transaction_data(
        raw, "customer_id", "date", monetary_value_col="dollars",
        observation_period_end=as_of, freq="D", freq_multiplier=7)
    t1 = time.perf_counter()
    bgf = BetaGeoFitter(penalizer_coef=0.0).fit(s["frequency"], s["recency"], s["T"])
    t2 = time.perf_counter()
    rep = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
    ggf = GammaGammaFitter(penalizer_coef=0.0).fit(rep["frequency"], rep["monetary_value"])
    t3 = time.perf_counter()
    alive = bgf.conditional_probability_alive(s["frequency"], s["recency"], s["T"])
    e90 = bgf.conditional_expected_number_of_purchases_up_to_time(
        90 / 7, s["frequency"], s["recency"], s["T"])
    value = ggf.customer_lifetime_value(
        bgf, s["frequency"], s["recency"], s["T"], s["monetary_value"],
        time=12, discount_rate=1.1 ** (1 / 12) - 1, freq="W")
    t4 = time.perf_counter()
    for k, a, b in (("summary", t0, t1), ("fit_bgnbd", t1, t2),
                    ("fit_gamma_gamma", t2, t3), ("score", t3, t4)):
        times[k].append(b - a)
print(json.dumps({
    "times": {k: min(v) for k, v in times.items()},
    "n": int(len(s)),
    "bgnbd": {k: float(bgf.params_[k]) for k in ("r", "alpha", "a", "b")},
    "bgnbd_ll": float(-bgf._negative_log_likelihood_ * len(s)) if hasattr(bgf, "_negative_log_likelihood_") else None,
    "gamma_gamma": {k: float(ggf.params_[k]) for k in ("p", "q", "v")},
    "alive_sum": float(np.sum(alive)), "e90_sum": float(np.sum(e90)),
    "value_sum": float(np.sum(value)),
}))
"""


def simulate_orders(n: int, rng: np.random.Generator):
    """Order rows for n customers drawn from BG/NBD + Gamma-Gamma, daily resolution.

    Repeat purchase days are placed between the first day and the last one,
    which is all the summary step needs.
    """
    as_of = np.datetime64("2026-06-30")
    t_days = rng.integers(1, 731, n).astype(np.float64)
    x, tx, _ = clv.simulate_bgnbd(n=n, r=0.25, alpha=20.0, a=0.8, b=2.5, T=t_days, rng=rng)
    tx = np.floor(tx)
    x = np.where(tx > 0, np.minimum(x, tx.astype(np.int64)), 0)  # at most one purchase a day
    first = as_of.astype(np.int64) - t_days.astype(np.int64)
    # Customer c: first day, then x purchase days ending on first + t_x.
    counts = x + 1
    cust = np.repeat(np.arange(n), counts)
    k = np.arange(cust.size) - np.repeat(np.cumsum(counts) - counts, counts)
    last_step = np.repeat(x, counts)
    offset = np.where(
        k == 0,
        0,
        np.where(
            k == last_step,
            np.repeat(tx, counts),
            np.floor(rng.random(cust.size) * np.maximum(np.repeat(tx, counts) - 1, 1)) + 1,
        ),
    )
    days = (np.repeat(first, counts) + offset.astype(np.int64)).astype("datetime64[D]")
    nu = rng.gamma(3.7, 1.0 / 15.0, n)
    amounts = np.round(rng.gamma(6.0, 1.0 / nu[cust]), 2)
    return cust, days, amounts, as_of


def timed(fn, repeat: int):
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_large(n: int, repeat: int) -> dict:
    rng = np.random.default_rng(2026)
    t0 = time.perf_counter()
    cust, days, amounts, as_of = simulate_orders(n, rng)
    print(
        f"simulated {n:,} customers, {cust.size:,} order rows in {time.perf_counter() - t0:.1f} s"
    )

    t_summary, summary = timed(
        lambda: clv.summary_from_transactions(cust, days, amounts, as_of=as_of), repeat
    )
    t_fit_bg, params = timed(
        lambda: clv.fit_bgnbd(summary.frequency, summary.recency, summary.T, time_unit="day"),
        repeat,
    )
    t_fit_gg, spend = timed(
        lambda: clv.fit_gamma_gamma(summary.frequency, summary.monetary_value), repeat
    )
    t_all, pred = timed(lambda: clv.predict_customers(summary), repeat)
    print(f"  order rows -> summary:                       {t_summary:6.2f} s")
    print(f"  fit BG/NBD:                                  {t_fit_bg:6.2f} s")
    print(f"  fit Gamma-Gamma:                             {t_fit_gg:6.2f} s")
    print(f"  fit both + score everything (with reasons):  {t_all:6.2f} s")
    print(f"  total, order rows to scores:                 {t_summary + t_all:6.2f} s")
    print(
        f"  planted r=0.25 alpha=20 a=0.8 b=2.5 -> r={params.r:.3f} alpha={params.alpha:.2f} "
        f"a={params.a:.3f} b={params.b:.3f}; p={spend.p:.2f} q={spend.q:.2f} "
        f"gamma={spend.gamma:.2f} ({pred.method})"
    )
    return {
        "customers": n,
        "order_rows": int(cust.size),
        "summary_s": t_summary,
        "fit_bgnbd_s": t_fit_bg,
        "fit_gamma_gamma_s": t_fit_gg,
        "fit_and_score_s": t_all,
    }


def simulate_process(n: int, rng: np.random.Generator, *, start_span: int, end: int):
    """Order rows of a BG/NBD process run forward to day ``end`` (for back-tests)."""
    lam = rng.gamma(0.6, 1.0 / 40.0, n)
    p = rng.beta(0.8, 4.0, n)
    t = rng.integers(0, start_span, n).astype(float)
    cust, when = [np.arange(n)], [t.copy()]
    alive = np.ones(n, dtype=bool)
    while alive.any():
        t = t + rng.exponential(1.0 / np.maximum(lam, 1e-12))
        alive &= t < end
        cust.append(np.flatnonzero(alive))
        when.append(t[alive])
        alive &= rng.random(n) >= p
    c = np.concatenate(cust)
    days = np.datetime64("2024-01-01") + np.floor(np.concatenate(when)).astype("timedelta64[D]")
    return c, days, np.round(rng.gamma(4.0, 10.0, c.size), 2)


def bench_other_models(n_customers: int, n_products: int) -> dict:
    """Back-test, propensity and demand, each timed on its own."""
    rng = np.random.default_rng(7)
    cust, days, amounts = simulate_process(n_customers, rng, start_span=365, end=730)
    cutoff, horizon = np.datetime64("2025-09-01"), 90
    print(f"\nOther models ({n_customers:,} customers, {cust.size:,} order rows):")
    t_bt, bt = timed(
        lambda: backtest.run_backtest(
            cust, days, amounts, cutoff=cutoff, horizon_days=horizon, data_end="2025-12-31"
        ),
        1,
    )
    print(
        f"  back-test (fit to cut-off, 13 weekly forecasts, calibration): {t_bt:6.2f} s  "
        f"predicted {bt.predicted_orders:,.0f} vs actual {bt.actual_orders:,} orders"
    )

    def run_propensity():
        past = propensity.order_features(
            cust, days, amounts, as_of=cutoff - np.timedelta64(horizon, "D")
        )
        labels = propensity.labels_from_orders(
            cust,
            days,
            start=cutoff - np.timedelta64(horizon, "D"),
            horizon_days=horizon,
            index=past.index,
        )
        now = propensity.order_features(cust, days, amounts, as_of=cutoff)
        return propensity.fit_propensity(
            train_features=past, train_labels=labels, current_features=now, horizon_days=horizon
        )

    t_pr, pr = timed(run_propensity, 1)
    print(
        f"  propensity (features, labels, fit, calibrate, importance, reasons): {t_pr:6.2f} s  "
        f"AUC {pr.auc:.3f}, {pr.n_train + pr.n_holdout:,} training customers"
    )

    weeks = pd.date_range("2024-01-01", "2025-12-31", freq="D")
    base = rng.gamma(2.0, 2.0, n_products)
    units = rng.poisson(np.tile(base[:, None], (1, weeks.size)))
    i, j = np.nonzero(units)
    sales = pd.DataFrame(
        {"sku": np.char.add("S", i.astype(str)), "date": weeks[j], "units": units[i, j]}
    )
    t_dm, _ = timed(lambda: demand.forecast_demand(sales), 1)
    print(
        f"  demand forecast ({n_products:,} products, {len(sales):,} daily rows, 2 years): "
        f"{t_dm:6.2f} s"
    )
    return {"backtest_s": t_bt, "propensity_s": t_pr, "demand_s": t_dm}


def find_cdnow(baseline_python: str, override: str | None) -> str | None:
    if override:
        return override
    # Not resolve(): the venv's python is a symlink to the base interpreter.
    venv = Path(baseline_python).parent.parent if baseline_python else None
    candidates = []
    if venv:
        candidates += glob.glob(
            str(
                venv
                / "lib"
                / "python*"
                / "site-packages"
                / "lifetimes"
                / "datasets"
                / "CDNOW_master.txt"
            )
        )
    candidates += glob.glob("/tmp/lt/x/lifetimes/datasets/CDNOW_master.txt")
    return candidates[0] if candidates else None


def ours_on_cdnow(path: str, as_of: str, repeat: int) -> dict:
    raw = pd.read_csv(
        path,
        sep=r"\s+",
        header=None,
        skiprows=1,  # the file's own header has a space inside a column name
        names=["customer_id", "date", "cds", "dollars"],
        dtype={"customer_id": str, "date": str},
    )
    ids = raw["customer_id"].to_numpy()
    days = pd.to_datetime(raw["date"], format="%Y%m%d").to_numpy()
    amounts = raw["dollars"].to_numpy()
    times: dict[str, float] = {}
    times["summary"], s = timed(
        lambda: clv.summary_from_transactions(ids, days, amounts, as_of=as_of, time_unit="week"),
        repeat,
    )
    times["fit_bgnbd"], bg = timed(
        lambda: clv.fit_bgnbd(s.frequency, s.recency, s.T, time_unit="week"), repeat
    )
    times["fit_gamma_gamma"], gg = timed(
        lambda: clv.fit_gamma_gamma(s.frequency, s.monetary_value), repeat
    )

    def score():
        alive = clv.probability_alive(bg, s.frequency, s.recency, s.T)
        e90 = clv.expected_purchases(bg, 90 / 7, s.frequency, s.recency, s.T)
        value = clv.clv(bg, gg, s.frequency, s.recency, s.T, s.monetary_value)
        return alive, e90, value

    times["score"], (alive, e90, value) = timed(score, repeat)
    return {
        "times": times,
        "n": s.n_customers,
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b},
        "bgnbd_ll": bg.log_likelihood,
        "gamma_gamma": {"p": gg.p, "q": gg.q, "v": gg.gamma},
        "alive_sum": float(alive.sum()),
        "e90_sum": float(e90.sum()),
        "value_sum": float(value.sum()),
    }


def bench_cdnow(baseline_python: str, cdnow: str | None, repeat: int) -> dict | None:
    as_of = "1998-06-30"
    if cdnow is None or not os.path.exists(cdnow):
        print(
            "CDNOW_master.txt not found: create the baseline environment (see the docstring) "
            "or pass --cdnow-master. Skipping the CDNOW comparison."
        )
        return None
    ours = ours_on_cdnow(cdnow, as_of, repeat)
    theirs = None
    if baseline_python and os.path.exists(baseline_python):
        with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
            fh.write(BASELINE_SCRIPT)
            script = fh.name
        try:
            done = subprocess.run(
                [baseline_python, script, cdnow, as_of, str(repeat)],
                capture_output=True,
                text=True,
                timeout=1800,
                check=False,
            )
        finally:
            os.unlink(script)
        if done.returncode == 0:
            theirs = json.loads(done.stdout.strip().splitlines()[-1])
        else:
            print("lifetimes baseline failed:\n" + done.stderr[-2000:])
    else:
        print(
            f"No lifetimes environment at {baseline_python}: baseline skipped "
            "(see the docstring for the two commands that create it)."
        )

    print(f"\nCDNOW master file, {ours['n']:,} customers, as of {as_of}, weeks, per day:")
    header = f"  {'step':<18}{'ours (s)':>10}"
    if theirs:
        header += f"{'lifetimes (s)':>15}{'speed-up':>10}"
    print(header)
    total_ours = total_theirs = 0.0
    for step in ("summary", "fit_bgnbd", "fit_gamma_gamma", "score"):
        a = ours["times"][step]
        total_ours += a
        line = f"  {step:<18}{a:>10.3f}"
        if theirs:
            b = theirs["times"][step]
            total_theirs += b
            line += f"{b:>15.3f}{b / a:>9.1f}x"
        print(line)
    line = f"  {'total':<18}{total_ours:>10.3f}"
    if theirs:
        line += f"{total_theirs:>15.3f}{total_theirs / total_ours:>9.1f}x"
    print(line)
    print(
        "  ours:      r={r:.4f} alpha={alpha:.4f} a={a:.4f} b={b:.4f}".format(**ours["bgnbd"])
        + "  p={p:.4f} q={q:.4f} gamma={v:.4f}".format(**ours["gamma_gamma"])
        + f"  LL={ours['bgnbd_ll']:.2f}"
    )
    if theirs:
        print(
            "  lifetimes: r={r:.4f} alpha={alpha:.4f} a={a:.4f} b={b:.4f}".format(**theirs["bgnbd"])
            + "  p={p:.4f} q={q:.4f} gamma={v:.4f}".format(**theirs["gamma_gamma"])
        )
        worst = max(
            abs(ours[m][k] - theirs[m][k]) / abs(theirs[m][k])
            for m in ("bgnbd", "gamma_gamma")
            for k in theirs[m]
        )
        print(f"  largest relative parameter difference: {worst:.2e}")
        for key, name in (
            ("alive_sum", "sum of P(alive)"),
            ("e90_sum", "expected orders, next 90 days"),
            ("value_sum", "12-month value"),
        ):
            rel = abs(ours[key] - theirs[key]) / abs(theirs[key])
            print(
                f"  {name:<32} ours {ours[key]:>14,.2f}  lifetimes {theirs[key]:>14,.2f}  ({rel:.1e})"
            )
    return {"ours": ours, "lifetimes": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=1_000_000, help="0 skips this part")
    parser.add_argument(
        "--other-customers", type=int, default=100_000, help="back-test/propensity size; 0 skips"
    )
    parser.add_argument("--products", type=int, default=3000, help="demand forecast size")
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    parser.add_argument("--baseline-python", default="/tmp/lt-venv/bin/python")
    parser.add_argument("--cdnow-master", default=None)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    print(f"numpy {np.__version__}, pandas {pd.__version__}, {os.cpu_count()} CPUs")
    large = bench_large(args.customers, max(1, args.repeat - 1)) if args.customers > 0 else None
    cdnow = bench_cdnow(
        args.baseline_python, find_cdnow(args.baseline_python, args.cdnow_master), args.repeat
    )
    other = (
        bench_other_models(args.other_customers, args.products) if args.other_customers else None
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps({"large": large, "cdnow": cdnow, "other": other}, indent=2)
        )


if __name__ == "__main__":
    main()
