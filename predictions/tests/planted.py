"""Order histories with planted structure, for checking the served predictions on
known answers.

Regular customers buy on their own rhythm (every 10 to 60 days, with some jitter);
a share of them stop for good at a random moment, so "long overdue on their own
rhythm" really means gone. Occasional customers buy once or twice at random. Two
planted customers are always there:

- index 0: a valuable regular on a 25-day rhythm whose last order was 100 days
  before ``as_of`` (stopped): high churn risk is the right answer;
- index 1: a regular on a 25-day rhythm who last ordered 10 days before ``as_of``
  and keeps going: low churn risk is the right answer.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from predictions.tests.factories import World

OVERDUE = 0
ON_RHYTHM = 1


def planted_orders(
    *,
    as_of: dt.date,
    n_regulars: int = 900,
    n_occasional: int = 600,
    history_days: int = 540,
    stop_share: float = 0.4,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per order: customer (index), day (datetime64[D]) and value."""
    rng = np.random.default_rng(seed)
    end = int(np.datetime64(as_of, "D").astype(np.int64))
    start = end - history_days
    customers: list[int] = []
    days: list[int] = []
    values: list[float] = []

    def add(i: int, day_list, mean_value: float) -> None:
        for d in day_list:
            customers.append(i)
            days.append(int(d))
            values.append(round(float(rng.gamma(8.0, mean_value / 8.0)) + 0.01, 2))

    # the two planted regulars: 25-day rhythm, 300 per order
    add(OVERDUE, range(end - 100 - 25 * 17, end - 100 + 1, 25), 300.0)
    add(ON_RHYTHM, range(end - 10 - 25 * 20, end - 10 + 1, 25), 300.0)
    i = 2
    for _ in range(n_regulars):
        gap = rng.uniform(10, 60)
        first = start + rng.uniform(0, history_days - 2 * gap)
        stop = rng.uniform(first + 2 * gap, end + 2 * gap) if rng.random() < stop_share else np.inf
        t, when = first, []
        while t <= end and t <= stop:
            when.append(int(t))
            t += gap * max(0.3, rng.normal(1.0, 0.15))
        add(i, when, rng.uniform(20, 200))
        i += 1
    for _ in range(n_occasional):
        n = 1 + int(rng.random() < 0.3)
        add(i, start + rng.integers(0, history_days, size=n), rng.uniform(20, 120))
        i += 1
    return pd.DataFrame(
        {
            "customer": np.asarray(customers, dtype=np.int64),
            "day": np.asarray(days, dtype=np.int64).astype("datetime64[D]"),
            "value": np.asarray(values),
        }
    )


def planted_world(*, as_of: dt.date, **kwargs) -> World:
    """The same orders as a `World` for `write_world` (one line per order)."""
    orders = planted_orders(as_of=as_of, **kwargs)
    n = len(orders)
    rng = np.random.default_rng(1)
    lines = pd.DataFrame(
        {
            "order": np.arange(n),
            "customer": orders["customer"].to_numpy(),
            "ordered_at": orders["day"].to_numpy().astype("datetime64[s]")
            + rng.integers(8 * 3600, 18 * 3600, size=n).astype("timedelta64[s]"),
            "is_return": np.zeros(n, dtype=bool),
            "sku": np.char.add("SKU-", rng.integers(0, 30, size=n).astype(str)).astype(object),
            "quantity": np.ones(n, dtype=np.int64),
            "amount": orders["value"].to_numpy(),
        }
    )
    return World(n_customers=int(orders["customer"].max()) + 1, lines=lines, as_of=as_of)
