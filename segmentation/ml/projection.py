"""A 2-D map of customers for the segments page.

Principal components of the model matrix (a linear projection, so distances on
the map mean something), fitted on every row (a d × d covariance is cheap even
for a million customers) and drawn for a seeded sample of at most
``max_points`` rows. Small segments get a minimum number of points so they stay
visible on the map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass
class Projection:
    x: np.ndarray
    y: np.ndarray
    label: np.ndarray
    row: np.ndarray  # position of each point in the model matrix
    customer_id: np.ndarray | None
    explained_variance_ratio: tuple[float, float]
    # the features that weigh most on each axis, for axis titles
    axes: list[list[dict[str, Any]]]

    def to_dict(self) -> dict[str, Any]:
        def plain(values: np.ndarray) -> list:
            return [v.item() if hasattr(v, "item") else v for v in values]

        return {
            "x": [round(float(v), 4) for v in self.x],
            "y": [round(float(v), 4) for v in self.y],
            "label": [str(v) for v in self.label],
            "row": [int(v) for v in self.row],
            "customer_id": None if self.customer_id is None else plain(self.customer_id),
            "explained_variance_ratio": [float(v) for v in self.explained_variance_ratio],
            "axes": self.axes,
        }


def project_2d(
    *,
    matrix: np.ndarray | pd.DataFrame,
    labels: np.ndarray | pd.Series | list,
    max_points: int = 2_000,
    min_per_segment: int = 20,
    seed: int = 0,
    top_loadings: int = 3,
) -> Projection:
    """Project the model matrix on its first two principal components.

    ``labels`` has one segment label per row. When ``matrix`` is a DataFrame its
    index (customer ids) is returned with the points and its columns name the
    axis loadings.
    """
    X = np.asarray(matrix, dtype=np.float64)
    label_arr = np.asarray(labels)
    n, d = X.shape
    if len(label_arr) != n:
        raise ValueError(f"labels has {len(label_arr)} rows, matrix has {n}")
    columns = (
        [str(c) for c in matrix.columns]
        if isinstance(matrix, pd.DataFrame)
        else [f"x{i}" for i in range(d)]
    )
    ids = matrix.index.to_numpy() if isinstance(matrix, pd.DataFrame) else None

    mean = X.mean(axis=0)
    cov = np.cov(X - mean, rowvar=False) if n > 1 else np.zeros((d, d))
    cov = np.atleast_2d(cov)
    eigval, eigvec = np.linalg.eigh(cov)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = eigval[order], eigvec[:, order]
    components = np.zeros((d, 2))
    m = min(2, d)
    components[:, :m] = eigvec[:, :m]
    # eigenvectors have no inherent sign; fix it so reruns draw the same map
    for j in range(m):
        if components[np.argmax(np.abs(components[:, j])), j] < 0:
            components[:, j] *= -1
    total = float(eigval.clip(min=0).sum())
    ratio = [float(eigval[j] / total) if total > 0 and j < m else 0.0 for j in range(2)]

    rows = _sample_rows(
        label_arr, max_points=max_points, min_per_segment=min_per_segment, seed=seed
    )
    coords = (X[rows] - mean) @ components
    axes = []
    for j in range(2):
        strongest = np.argsort(-np.abs(components[:, j]), kind="stable")[:top_loadings]
        axes.append(
            [
                {"feature": columns[i], "loading": round(float(components[i, j]), 4)}
                for i in strongest
                if components[i, j] != 0
            ]
        )
    return Projection(
        x=coords[:, 0],
        y=coords[:, 1],
        label=label_arr[rows],
        row=rows,
        customer_id=None if ids is None else ids[rows],
        explained_variance_ratio=(ratio[0], ratio[1]),
        axes=axes,
    )


def _sample_rows(
    labels: np.ndarray, *, max_points: int, min_per_segment: int, seed: int
) -> np.ndarray:
    n = len(labels)
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    uniq, codes = np.unique(labels, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(uniq))
    quota = np.maximum(
        np.minimum(sizes, min_per_segment), np.floor(max_points * sizes / n).astype(int)
    )
    while quota.sum() > max_points:
        quota[np.argmax(quota)] -= 1
    picked = [
        np.sort(rng.choice(np.flatnonzero(codes == j), size=int(quota[j]), replace=False))
        for j in range(len(uniq))
    ]
    return np.sort(np.concatenate(picked))
