"""CDNOW: the segments and one level of drill-down, on 23,570 real customers.

    .venv/bin/python bench/cdnow_drilldown.py PATH/TO/Lifetimes-0.11.3-py3-none-any.whl

The full CDNOW master file (every purchase of the 23,570 customers who first
bought in the first quarter of 1997, to June 1998: customer id, date, number of
CDs, dollar value) ships inside the Lifetimes 0.11.3 wheel. This script
downloads nothing: fetch the wheel yourself (``pip download --no-deps
Lifetimes==0.11.3 -d /tmp/lt``) and pass its path. It is read straight from the
archive; nothing is installed and nothing is written.

It runs the numerical part of a segmentation exactly as a run does — features
(orders only: no categories, channels or events), k chosen in 2..8 with the
minimum segment size (2% / 10 customers), then ``drill_down`` on every segment
— and prints the groups with their sizes, silhouette, stability and the plain
explanation. The result is recorded in docs/segmentation.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from segmentation.ml.clustering import cluster_customers, drill_down  # noqa: E402
from segmentation.ml.features import build_features  # noqa: E402
from segmentation.ml.personas import write_personas  # noqa: E402
from segmentation.ml.profiles import ProfileSet, build_profiles  # noqa: E402

MASTER = "lifetimes/datasets/CDNOW_master.txt"
AS_OF = dt.date(1998, 6, 30)


def cdnow_lines(wheel: Path) -> pd.DataFrame:
    """The master file as order lines (one order per row of the file)."""
    with zipfile.ZipFile(wheel) as archive:
        text = archive.read(MASTER).decode()
    frame = pd.read_csv(
        io.StringIO(text),
        sep=r"\s+",
        header=0,  # customer_id date number_of_cds dollar_value
        names=["customer_id", "date", "cds", "dollars"],
        dtype={"customer_id": np.int64, "date": str},
    )
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(),
            "order_id": np.arange(len(frame), dtype=np.int64),
            "ordered_at": pd.to_datetime(frame["date"], format="%Y%m%d", utc=True)
            + pd.Timedelta(hours=12),
            "quantity": frame["cds"].astype(np.float64),
            "amount": frame["dollars"].astype(np.float64),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="path to Lifetimes-0.11.3-py3-none-any.whl")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    lines = cdnow_lines(args.wheel)
    t0 = time.perf_counter()
    features = build_features(lines=lines, customers=None, events=None, as_of=AS_OF)
    t_features = time.perf_counter() - t0
    n = len(features.raw)
    print(f"CDNOW: {n:,} customers, {len(lines):,} orders, as of {AS_OF}")
    print(f"model columns: {', '.join(features.model_columns)}")

    t0 = time.perf_counter()
    top = cluster_customers(matrix=features.matrix, seed=args.seed)
    t_top = time.perf_counter() - t0
    t0 = time.perf_counter()
    drills = drill_down(matrix=features.matrix, labels=top.labels, min_size=top.min_size)
    t_drill = time.perf_counter() - t0

    names = [
        p.name
        for p in write_personas(profiles=build_profiles(features=features, labels=top.labels))
    ]
    print(f"\nminimum segment size: {top.min_size:,} customers")
    print(f"top level: k={top.k}, silhouette {top.silhouette}, stability {top.stability}")
    for c in top.candidates:
        print(f"  k={c.k}: silhouette {c.silhouette}, stability {c.stability}, sizes {c.sizes}")
    print(f"  why: {top.explanation}")

    groups: list[tuple[str, int]] = []
    for d in drills:
        name = names[d.parent]
        print(f"\nsegment {d.parent + 1} '{name}': {len(d.rows):,} customers")
        if d.result is None:
            print(f"  not split: {d.reason}")
            groups.append((name, len(d.rows)))
            continue
        r = d.result
        # as a run does: sub-segments described against the whole base
        keys = np.full(n, "-", dtype=object)
        keys[d.rows] = r.labels.astype(str)
        profiles = build_profiles(features=features, labels=keys)
        sub_profiles = ProfileSet(
            profiles=[p for p in profiles.profiles if p.key != "-"], base=profiles.base
        )
        sub_names = {
            p.key: q.name
            for p, q in zip(
                sub_profiles.profiles, write_personas(profiles=sub_profiles), strict=True
            )
        }
        sub_names = [sub_names[str(j)] for j in range(r.k)]
        print(f"  split into {r.k}: silhouette {r.silhouette}, stability {r.stability}")
        print(f"  why: {r.explanation}")
        for j, size in enumerate(r.sizes):
            raw = features.raw.iloc[d.rows[r.labels == j]]
            print(
                f"    {name} / {sub_names[j]}: {size:,} customers; mean orders "
                f"{raw['frequency'].mean():.1f}, spend ${raw['monetary'].mean():.0f}, "
                f"last order {raw['recency_days'].mean():.0f} days ago"
            )
            groups.append((f"{name} / {sub_names[j]}", size))

    print(
        f"\nafter one level of drill-down: {len(groups)} groups, smallest {min(s for _, s in groups):,} "
        f"(minimum {top.min_size:,})"
    )
    print(f"seconds: features {t_features:.2f}, top level {t_top:.2f}, drill-down {t_drill:.2f}")


if __name__ == "__main__":
    main()
