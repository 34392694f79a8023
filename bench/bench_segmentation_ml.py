"""Benchmark: the numerical segmentation step, from data frames to personas.

    .venv/bin/python bench/bench_segmentation_ml.py --sizes 10000,100000,1000000

For each size, simulated customers from four planted behaviour groups (about
ten order lines each, with categories, channels, products and e-mail events)
go through: build_features -> cluster_customers (k chosen in 2..8 with the
minimum segment size) -> rfm_scores -> build_profiles (with favourite
products) -> write_personas -> project_2d. Data generation is not timed.

Baselines, measured in the same run on the same model matrix with the same
single-thread setting: (1) plain scikit-learn ``KMeans(n_clusters=5,
n_init=1)``, no choice of k, the floor; (2) the naive way to choose k: KMeans
(n_init=4) on every row for k = 2..8 and ``silhouette_score`` on a 5,000-row
sample. Printed ratios: total pipeline time / baseline (1), our clustering
step / naive search (2), and total / total of the previous size (against the
size ratio, to show how it scales). ARI is the adjusted Rand index of the
segments against the planted groups.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, silhouette_score
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segmentation.ml.clustering import cluster_customers  # noqa: E402
from segmentation.ml.features import build_features  # noqa: E402
from segmentation.ml.personas import write_personas  # noqa: E402
from segmentation.ml.profiles import build_profiles  # noqa: E402
from segmentation.ml.projection import project_2d  # noqa: E402
from segmentation.ml.rfm import rfm_scores  # noqa: E402
from segmentation.tests.ml.test_features import AS_OF, planted_data  # noqa: E402


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def naive_k_search(X: np.ndarray) -> int:
    """The straightforward way to choose k: KMeans on every row for each k and
    scikit-learn's silhouette on a 5,000-row sample (no size rule)."""
    best, best_k = -1.0, 2
    for k in range(2, 9):
        labels = KMeans(n_clusters=k, n_init=4, random_state=0).fit_predict(X)
        score = silhouette_score(X, labels, sample_size=min(5000, len(X)), random_state=0)
        if score > best:
            best, best_k = score, k
    return best_k


def run(n: int, seed: int) -> dict:
    (lines, customers, events, truth), gen_s = timed(planted_data, n_customers=n, seed=seed)
    rng = np.random.default_rng(seed)
    cat = lines["category"]
    n_cat = len(cat.cat.categories)
    # ten products per category
    codes = cat.cat.codes.to_numpy() * 10 + rng.integers(0, 10, len(lines))
    names = [f"{c}-{i}" for c in cat.cat.categories for i in range(10)]
    products = pd.DataFrame(
        {
            "customer_id": lines["customer_id"],
            "product": pd.Categorical.from_codes(codes, names[: n_cat * 10]),
            "amount": lines["amount"],
        }
    )

    fs, t_features = timed(
        build_features,
        lines=lines,
        customers=customers,
        events=events,
        as_of=AS_OF,
        sensitive=set(),
    )
    clustering, t_cluster = timed(cluster_customers, matrix=fs.matrix, seed=0)
    _, t_rfm = timed(rfm_scores, features=fs.raw)
    profiles, t_profiles = timed(
        build_profiles, features=fs, labels=clustering.labels, product_lines=products
    )
    personas, t_personas = timed(write_personas, profiles=profiles)
    _, t_map = timed(project_2d, matrix=fs.matrix, labels=clustering.labels, seed=0)

    # same thread setting as cluster_customers, so the comparison is fair
    with threadpool_limits(limits=1):
        _, t_base = timed(KMeans(n_clusters=5, n_init=1, random_state=0).fit, fs.X)
        _, t_naive = timed(naive_k_search, fs.X)

    total = t_features + t_cluster + t_rfm + t_profiles + t_personas + t_map
    return {
        "customers": n,
        "lines": len(lines),
        "generate_s": gen_s,
        "features_s": t_features,
        "clustering_s": t_cluster,
        "rfm_s": t_rfm,
        "profiles_s": t_profiles,
        "personas_s": t_personas,
        "map_s": t_map,
        "total_s": total,
        "baseline_s": t_base,
        "naive_s": t_naive,
        "k": clustering.k,
        "ari": adjusted_rand_score(truth.loc[fs.raw.index], clustering.labels),
        "names": [p.name for p in personas],
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated customer counts")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    header = (
        "| customers | order lines | features s | clustering s | rfm s | profiles s "
        "| personas s | map s | total s | baseline KMeans(k=5) s | total / baseline "
        "| naive k search s | clustering / naive | total / previous size | k | ARI "
        "| peak RSS MB |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    previous = None
    for n in sizes:
        r = run(n, args.seed)
        scale = (
            ""
            if previous is None
            else (
                f"{r['total_s'] / previous['total_s']:.1f}× (size {n / previous['customers']:.0f}×)"
            )
        )
        print(
            f"| {n:,} | {r['lines']:,} | {r['features_s']:.2f} | {r['clustering_s']:.2f} "
            f"| {r['rfm_s']:.2f} | {r['profiles_s']:.2f} | {r['personas_s']:.3f} "
            f"| {r['map_s']:.2f} | {r['total_s']:.2f} | {r['baseline_s']:.2f} "
            f"| {r['total_s'] / r['baseline_s']:.1f}× | {r['naive_s']:.2f} "
            f"| {r['clustering_s'] / r['naive_s']:.2f}× | {scale} | {r['k']} "
            f"| {r['ari']:.3f} | {r['max_rss_mb']:.0f} |",
            flush=True,
        )
        previous = r
    print("\npersonas (last size):", "; ".join(previous["names"]) if previous else "")


if __name__ == "__main__":
    main()
