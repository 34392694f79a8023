"""Features: hand-computed small cases, and the generator of planted groups used
by the clustering tests and the benchmark."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from segmentation.ml.features import build_features

AS_OF = dt.date(2024, 6, 30)


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


# --- planted groups ---------------------------------------------------------
@dataclass(frozen=True)
class Group:
    name: str
    share: float
    orders: tuple[int, int]  # inclusive range of purchase orders
    active_days: tuple[int, int]  # days before the cut-off the orders fall in
    lines_per_order: float
    unit_price: float
    categories: dict[str, float]
    channels: dict[str, float]
    email_opens: float  # mean 'email_open' events in the last 90 days


GROUPS = (
    Group("vip regulars", 0.20, (6, 12), (0, 360), 3.0, 40.0,
          {"electronics": 0.8, "home": 0.2}, {"web": 0.9, "app": 0.1}, 8.0),
    Group("lapsed one-timers", 0.35, (1, 1), (300, 700), 0.5, 12.0,
          {"home": 0.7, "fashion": 0.3}, {"shop": 0.8, "web": 0.2}, 0.2),
    Group("new fashion", 0.25, (1, 2), (0, 25), 1.5, 25.0,
          {"fashion": 0.9, "home": 0.1}, {"app": 0.9, "web": 0.1}, 3.0),
    Group("garden shop regulars", 0.20, (5, 8), (0, 500), 1.0, 8.0,
          {"garden": 0.85, "home": 0.15}, {"shop": 0.95, "web": 0.05}, 0.5),
)  # fmt: skip


def planted_data(
    *, n_customers: int, seed: int = 0, as_of: dt.date = AS_OF, groups=GROUPS
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.Series]:
    """Customers drawn from clearly different behaviour groups, simulated as
    order lines, customer records and events. Returns (lines, customers, events,
    true group per customer_id). Vectorised, so the benchmark can use it for a
    million customers."""
    rng = np.random.default_rng(seed)
    cutoff_ns = pd.Timestamp(as_of, tz="UTC").value + 86_400 * 10**9 - 1
    shares = np.array([g.share for g in groups])
    group = rng.choice(len(groups), size=n_customers, p=shares / shares.sum())
    customer_ids = np.arange(1, n_customers + 1, dtype=np.int64)

    lo = np.array([g.orders[0] for g in groups])[group]
    hi = np.array([g.orders[1] for g in groups])[group]
    n_orders = rng.integers(lo, hi + 1)
    order_customer = np.repeat(np.arange(n_customers), n_orders)
    og = group[order_customer]
    a0 = np.array([g.active_days[0] for g in groups])[og]
    a1 = np.array([g.active_days[1] for g in groups])[og]
    days_ago = a0 + rng.random(len(og)) * (a1 - a0)
    order_ns = (cutoff_ns - days_ago * 86_400 * 10**9).astype(np.int64)
    n_lines = 1 + rng.poisson(np.array([g.lines_per_order for g in groups])[og])

    all_cats = sorted({c for g in groups for c in g.categories})
    all_chans = sorted({c for g in groups for c in g.channels})

    def draw(levels: list[str], attr: str, which: np.ndarray) -> np.ndarray:
        out = np.empty(len(which), dtype=np.int64)
        for gi, g in enumerate(groups):
            mask = which == gi
            probs = np.array([getattr(g, attr).get(level, 0.0) for level in levels])
            out[mask] = rng.choice(len(levels), size=int(mask.sum()), p=probs / probs.sum())
        return out

    order_channel = draw(all_chans, "channels", og)
    line_order = np.repeat(np.arange(len(og)), n_lines)
    lg = og[line_order]
    quantity = 1 + rng.poisson(1.0, size=len(lg))
    price = np.array([g.unit_price for g in groups])[lg] * rng.lognormal(0.0, 0.3, size=len(lg))
    # about 2% of lines are returns, never the first line of an order, so every
    # customer keeps at least one purchase
    first_line = np.zeros(len(lg), dtype=bool)
    first_line[np.r_[0, np.cumsum(n_lines)[:-1]]] = True
    sign = np.where((rng.random(len(lg)) < 0.02) & ~first_line, -1, 1)
    lines = pd.DataFrame(
        {
            "customer_id": customer_ids[order_customer[line_order]],
            "order_id": line_order + 1,
            "ordered_at": pd.to_datetime(order_ns[line_order], utc=True),
            "quantity": sign * quantity,
            "amount": np.round(sign * quantity * price, 2),
            "category": pd.Categorical.from_codes(draw(all_cats, "categories", lg), all_cats),
            "channel": pd.Categorical.from_codes(order_channel[line_order], all_chans),
        }
    )
    tenure_extra = rng.integers(0, 60, size=n_customers)
    first_days = np.zeros(n_customers)
    np.maximum.at(first_days, order_customer, days_ago)
    signup_ns = cutoff_ns - ((first_days + tenure_extra) * 86_400 * 10**9).astype(np.int64)
    customers = pd.DataFrame(
        {
            "customer_id": customer_ids,
            "signup_at": pd.to_datetime(signup_ns, utc=True),
            "birth_date": pd.to_datetime("1960-01-01")
            + pd.to_timedelta(rng.integers(0, 40 * 365, n_customers), unit="D"),
            "gender": rng.choice(["female", "male"], size=n_customers),
            "country": rng.choice(["UK", "DE", "FR"], size=n_customers, p=[0.6, 0.25, 0.15]),
        }
    )
    opens = rng.poisson(np.array([g.email_opens for g in groups])[group])
    ev_customer = np.repeat(customer_ids, opens)
    events = pd.DataFrame(
        {
            "customer_id": ev_customer,
            "type": "email_open",
            "occurred_at": pd.to_datetime(
                cutoff_ns - rng.integers(0, 89 * 86_400, len(ev_customer)) * 10**9, utc=True
            ),
        }
    )
    truth = pd.Series(group, index=pd.Index(customer_ids, name="customer_id"), name="group")
    return lines, customers, events, truth


# --- hand-computed cases -----------------------------------------------------
@pytest.fixture
def small():
    lines = pd.DataFrame(
        [
            # customer 1: two orders 10 days apart, one line of the second returned
            (1, 100, ts("2024-06-10 09:30"), 2, 20.0, "books", "web"),
            (1, 100, ts("2024-06-10 09:30"), 1, 10.0, "toys", "web"),
            (1, 101, ts("2024-06-20 18:00"), 1, 50.0, "toys", "shop"),
            (1, 102, ts("2024-06-25 11:00"), -1, -50.0, "toys", "shop"),
            # customer 2: a single order
            (2, 200, ts("2024-04-01 12:00"), 4, 40.0, "books", "web"),
            # customer 3: orders after the cut-off only -> not a customer yet
            (3, 300, ts("2024-07-02 12:00"), 1, 5.0, "books", "web"),
            # customer 4: a single order of the same size as customer 2
            (4, 400, ts("2024-05-31 12:00"), 1, 15.0, None, None),
        ],
        columns=["customer_id", "order_id", "ordered_at", "quantity", "amount", "category",
                 "channel"],
    )  # fmt: skip
    customers = pd.DataFrame(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "signup_at": [ts("2024-01-01"), None, ts("2024-07-01"), None, ts("2024-01-01")],
            "birth_date": ["1990-01-01", "1980-06-30", None, None, None],
            "gender": ["female", "male", "female", "male", "female"],
            "country": ["UK", "UK", "DE", "DE", "DE"],
            "loyalty_tier": ["gold", "silver", "gold", "silver", "gold"],
            "email": ["a@x", "b@x", "c@x", "d@x", "e@x"],
        }
    )
    return lines, customers


def test_recency_frequency_monetary_by_hand(small):
    lines, customers = small
    fs = build_features(lines=lines, customers=customers, events=None, as_of=AS_OF, sensitive=set())
    raw = fs.raw
    assert list(raw.index) == [1, 2, 4]
    # the cut-off is the end of 2024-06-30, i.e. 2024-07-01 00:00 UTC
    assert raw.loc[1, "recency_days"] == pytest.approx(10.25)  # 2024-06-20 18:00
    assert raw.loc[2, "recency_days"] == pytest.approx(90.5)  # 2024-04-01 12:00
    # the return-only order 102 is not an order
    assert raw.loc[1, "frequency"] == 2
    assert raw.loc[2, "frequency"] == 1
    # 20 + 10 + 50 - 50 returned
    assert raw.loc[1, "monetary"] == pytest.approx(30.0)
    assert raw.loc[1, "avg_basket_value"] == pytest.approx(40.0)  # (30 + 50) / 2
    assert raw.loc[1, "avg_basket_size"] == pytest.approx(2.0)  # (3 + 1) / 2
    assert raw.loc[1, "return_share"] == pytest.approx(50 / 80)
    assert raw.loc[1, "mean_days_between_orders"] == pytest.approx(10 + 8.5 / 24)
    assert raw.loc[1, "tenure_days"] == pytest.approx(182.0)  # since sign-up 2024-01-01
    assert raw.loc[2, "tenure_days"] == pytest.approx(90.5)  # no sign-up: first order
    # spend shares: books 20 of 80, toys 60 of 80
    assert raw.loc[1, "category:books"] == pytest.approx(0.25)
    assert raw.loc[1, "category:toys"] == pytest.approx(0.75)
    assert raw.loc[4, "category:other"] == pytest.approx(1.0)
    assert raw.loc[1, "channel:web"] == pytest.approx(0.5)
    assert raw.loc[1, "favourite_weekday"] == 0  # 2024-06-10 was a Monday (tie -> first)
    assert raw.loc[2, "favourite_hour"] == 12
    assert raw.loc[1, "age"] == pytest.approx(34.5, abs=0.01)
    assert list(fs.customers_without_orders) == [3, 5]


def test_one_order_customers_get_a_gap_no_shorter_than_their_silence(small):
    lines, customers = small
    fs = build_features(lines=lines, customers=customers, events=None, as_of=AS_OF, sensitive=set())
    gaps = fs.raw["mean_days_between_orders"]
    # the one repeat buyer reorders every ~10.35 days; customer 2 has been silent
    # 90.5 days, customer 4 30.5 days
    assert gaps.loc[2] == pytest.approx(90.5)
    assert gaps.loc[4] == pytest.approx(30.5)
    assert np.isfinite(fs.X).all()


def test_sensitive_columns_are_reported_and_kept_out_of_the_model(small):
    lines, customers = small
    fs = build_features(
        lines=lines, customers=customers, events=None, as_of=AS_OF, sensitive={"loyalty_tier"}
    )
    model = set(fs.model_columns)
    assert {"age", "gender:female", "gender:male", "loyalty_tier:gold"} <= set(fs.excluded)
    assert not model & set(fs.excluded)
    assert "marked sensitive" in fs.exclusion_reasons["loyalty_tier:gold"]
    assert "email" in fs.skipped_columns  # identifiers are never traits
    assert "country:UK" in model
    allowed = build_features(
        lines=lines,
        customers=customers,
        events=None,
        as_of=AS_OF,
        sensitive=set(),
        allow_gender_and_age=True,
    )
    assert "age" in allowed.model_columns
    assert "loyalty_tier:gold" in allowed.model_columns


def test_only_data_up_to_the_cut_off_is_used(small):
    lines, customers = small
    early = build_features(
        lines=lines, customers=None, events=None, as_of=dt.date(2024, 6, 15), sensitive=set()
    )
    assert early.raw.loc[1, "frequency"] == 1
    assert early.raw.loc[1, "monetary"] == pytest.approx(30.0)
    exact = build_features(
        lines=lines,
        customers=None,
        events=None,
        as_of=dt.datetime(2024, 6, 20, 18, 0, tzinfo=dt.UTC),
        sensitive=set(),
    )
    assert exact.raw.loc[1, "frequency"] == 2
    assert exact.raw.loc[1, "recency_days"] == 0
    with pytest.raises(ValueError, match="timezone-aware"):
        build_features(
            lines=lines,
            customers=None,
            events=None,
            as_of=dt.datetime(2024, 6, 20),
            sensitive=set(),
        )


def test_engagement_counts_only_the_last_90_days():
    lines = pd.DataFrame(
        {
            "customer_id": [1, 2],
            "order_id": [1, 2],
            "ordered_at": [ts("2024-06-01"), ts("2024-06-02")],
            "quantity": [1, 1],
            "amount": [10.0, 10.0],
        }
    )
    events = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "type": ["email_open", "email_open", "email_open", "email_open", "visit"],
            "occurred_at": [
                ts("2024-06-29"),
                ts("2024-04-10"),  # 81 days before the cut-off
                ts("2024-03-01"),  # too old
                ts("2024-07-05"),  # after the cut-off
                ts("2024-06-01"),
            ],
        }
    )
    fs = build_features(lines=lines, customers=None, events=events, as_of=AS_OF, sensitive=set())
    assert fs.raw["events:email_open"].tolist() == [2, 0]
    assert fs.raw["events:visit"].tolist() == [0, 1]


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="amount"):
        build_features(
            lines=pd.DataFrame({"customer_id": [1], "order_id": [1], "ordered_at": [ts("2024-01-01")],
                                "quantity": [1]}),
            customers=None, events=None, as_of=AS_OF, sensitive=set(),
        )  # fmt: skip


def test_skew_is_tamed_in_the_model_matrix():
    lines, customers, events, _ = planted_data(n_customers=3000, seed=3)
    # one customer with an absurd order
    lines.loc[0, "amount"] = 5_000_000.0
    fs = build_features(
        lines=lines, customers=customers, events=events, as_of=AS_OF, sensitive=set()
    )
    monetary = fs.matrix["monetary"]
    assert monetary.abs().max() < 5  # winsorised and logged, not a 50-sigma outlier
    assert fs.matrix.mean().abs().max() < 1e-9
    assert {"gender:female", "age"} <= set(fs.excluded)
    assert len(fs.raw) == 3000


def test_text_order_numbers_are_accepted():
    lines = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "order_id": ["536365", "C536379", "536366"],  # a cancellation invoice
            "ordered_at": [ts("2024-01-01"), ts("2024-01-05"), ts("2024-01-03")],
            "quantity": [2, -1, 1],
            "amount": [20.0, -10.0, 5.0],
        }
    )
    fs = build_features(lines=lines, customers=None, events=None, as_of=AS_OF, sensitive=set())
    assert fs.raw["frequency"].tolist() == [1, 1]
    assert fs.raw["monetary"].tolist() == [10.0, 5.0]
    assert fs.raw.loc[1, "return_share"] == pytest.approx(0.5)
