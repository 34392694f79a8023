"""Customer lifetime value: BG/NBD purchase model and Gamma-Gamma spend model.

Implemented here rather than taken from ``lifetimes`` (unmaintained, breaks on
current pandas) or ``pymc-marketing`` (needs Python 3.12 and a compiler).

References
- Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way: An
  Alternative to the Pareto/NBD Model", Marketing Science 24(2): 275-284.
- Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (note), and
  Colombo & Jiang (1999), "A stochastic RFM model", J. Interactive Marketing.

Conventions
- Repeat purchases are counted per calendar day (several orders on one day are
  one purchase), as in the paper. ``frequency`` is the number of repeat
  purchase days, ``recency`` the time from the first to the last purchase day,
  ``T`` the time from the first purchase day to ``as_of``. The time unit is
  ``"day"`` or ``"week"`` and is carried in the results so that horizons given
  in days are converted correctly.
- Fitting is maximum likelihood on log-parameters with L-BFGS-B and analytic
  gradients. Identical rows are collapsed into weights first, which is what
  makes a million customers cheap: in day units there are far fewer distinct
  (x, t_x, T) triples than customers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import digamma, expit, gammaln, hyp2f1
from threadpoolctl import threadpool_limits

from predictions.ml.minimum_data import DataCheck, check_minimum_data

TimeUnit = Literal["day", "week"]
DAYS_PER_UNIT: dict[str, float] = {"day": 1.0, "week": 7.0}
DAYS_PER_MONTH = 365.25 / 12

# Churn risk bands on P(no order in the churn horizon). Absolute thresholds, not
# quantiles, so that a shop where nearly everyone is loyal does not see a third
# of its customers called "high risk".
RISK_BAND_THRESHOLDS = (0.5, 0.8)


def _days_per_unit(time_unit: str) -> float:
    try:
        return DAYS_PER_UNIT[time_unit]
    except KeyError:
        raise ValueError(f"time_unit must be 'day' or 'week', not {time_unit!r}") from None


# --------------------------------------------------------------------------
# Dates


def to_day_numbers(timestamps: Any) -> np.ndarray:
    """Calendar day of each timestamp as int64 days since 1970-01-01.

    Timezone-aware pandas values are taken at their own wall-clock date (the
    business's local day), which is what "one purchase per day" means to a shop.
    """
    if isinstance(timestamps, np.ndarray) and np.issubdtype(timestamps.dtype, np.datetime64):
        values = timestamps
    else:
        series = pd.Series(timestamps) if not isinstance(timestamps, pd.Series) else timestamps
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            series = pd.to_datetime(series, format="ISO8601")
        if getattr(series.dt, "tz", None) is not None:
            series = series.dt.tz_localize(None)
        values = series.to_numpy()
    if np.isnat(values).any():
        raise ValueError("timestamps contain missing values")
    return values.astype("datetime64[D]").astype(np.int64)


def to_day(value: Any) -> np.datetime64:
    """One date (date, datetime, ISO string or numpy datetime64) as datetime64[D]."""
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]")
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return np.datetime64(stamp.date(), "D")


# --------------------------------------------------------------------------
# Summary from transactions


@dataclass(frozen=True)
class CustomerSummary:
    """Per-customer (x, t_x, T, monetary) as numpy arrays, one entry per customer."""

    customer_ids: np.ndarray
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    monetary_value: np.ndarray
    first_purchase: np.ndarray
    last_purchase: np.ndarray
    total_spend: np.ndarray
    as_of: np.datetime64
    time_unit: str
    history_start: np.datetime64

    @property
    def n_customers(self) -> int:
        return int(self.frequency.size)

    @property
    def n_repeat_customers(self) -> int:
        return int(np.count_nonzero(self.frequency > 0))

    @property
    def history_days(self) -> int:
        return int((self.as_of - self.history_start).astype(np.int64)) if self.n_customers else 0

    def days_since_last_purchase(self) -> np.ndarray:
        return (self.as_of - self.last_purchase).astype(np.int64)


def summary_from_transactions(
    customer_ids: Any,
    timestamps: Any,
    amounts: Any = None,
    *,
    as_of: Any,
    time_unit: TimeUnit = "day",
) -> CustomerSummary:
    """Build the BG/NBD and Gamma-Gamma inputs from order rows.

    Rows after ``as_of`` (a calendar day, inclusive) are ignored. Several orders
    on one day count as one purchase whose value is their sum. ``monetary_value``
    is the mean value of the repeat purchase days (the first day excluded, as in
    Fader & Hardie), 0 for customers without repeats. Callers pass purchases
    only: returns and cancellations are removed before this point.
    """
    unit_days = _days_per_unit(time_unit)
    as_of_day = to_day(as_of)
    ids = np.asarray(customer_ids)
    days = to_day_numbers(timestamps)
    values = (
        np.zeros(days.size, dtype=np.float64)
        if amounts is None
        else np.asarray(amounts, dtype=np.float64)
    )
    if not (ids.shape[0] == days.size == values.size):
        raise ValueError("customer_ids, timestamps and amounts must have the same length")
    if values.size and not np.isfinite(values).all():
        raise ValueError("amounts contain missing or infinite values")

    keep = days <= as_of_day.astype(np.int64)
    ids, days, values = ids[keep], days[keep], values[keep]
    codes, uniques = pd.factorize(ids, sort=True)
    uniques = np.asarray(uniques)
    if days.size == 0:
        empty_f = np.zeros(0, dtype=np.float64)
        empty_d = np.zeros(0, dtype="datetime64[D]")
        return CustomerSummary(
            customer_ids=uniques,
            frequency=np.zeros(0, dtype=np.int64),
            recency=empty_f,
            T=empty_f,
            monetary_value=empty_f,
            first_purchase=empty_d,
            last_purchase=empty_d,
            total_spend=empty_f,
            as_of=as_of_day,
            time_unit=time_unit,
            history_start=as_of_day,
        )

    day0 = int(days.min())
    span = int(days.max()) - day0 + 1
    # One int64 key per (customer, day): a single sort then gives purchase days
    # grouped by customer in date order, much faster than a two-key groupby.
    key = codes.astype(np.int64) * span + (days - day0)
    day_keys, inverse = np.unique(key, return_inverse=True)
    day_values = np.bincount(inverse, weights=values, minlength=day_keys.size)
    day_customer = day_keys // span
    day_number = day_keys % span + day0

    n = uniques.size
    n_days = np.bincount(day_customer, minlength=n)
    first_idx = np.zeros(n, dtype=np.int64)
    first_idx[1:] = np.cumsum(n_days)[:-1]
    last_idx = first_idx + n_days - 1
    first_day = day_number[first_idx]
    last_day = day_number[last_idx]
    total = np.bincount(day_customer, weights=day_values, minlength=n)
    frequency = (n_days - 1).astype(np.int64)
    repeat_total = total - day_values[first_idx]
    monetary = np.divide(
        repeat_total, frequency, out=np.zeros(n, dtype=np.float64), where=frequency > 0
    )
    as_of_int = int(as_of_day.astype(np.int64))
    return CustomerSummary(
        customer_ids=uniques,
        frequency=frequency,
        recency=(last_day - first_day) / unit_days,
        T=(as_of_int - first_day) / unit_days,
        monetary_value=monetary,
        first_purchase=first_day.astype("datetime64[D]"),
        last_purchase=last_day.astype("datetime64[D]"),
        total_spend=total,
        as_of=as_of_day,
        time_unit=time_unit,
        history_start=np.datetime64(day0, "D"),
    )


# --------------------------------------------------------------------------
# Shared fitting helpers


def collapse_rows(*columns: np.ndarray, weights: np.ndarray | None = None) -> tuple:
    """Distinct rows of the given columns and the summed weight of each.

    Returns ``(*unique_columns, weights, inverse)``.
    """
    stacked = np.column_stack([np.asarray(c, dtype=np.float64) for c in columns])
    n = stacked.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if n == 0:
        return (*[np.zeros(0) for _ in columns], np.zeros(0), np.zeros(0, dtype=np.int64))
    # lexsort + diff is several times faster than np.unique(axis=0) on 1M rows.
    order = np.lexsort(stacked.T[::-1])
    sorted_rows = stacked[order]
    new_group = np.empty(n, dtype=bool)
    new_group[0] = True
    new_group[1:] = np.any(sorted_rows[1:] != sorted_rows[:-1], axis=1)
    group_sorted = np.cumsum(new_group) - 1
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = group_sorted
    unique_rows = sorted_rows[new_group]
    summed = np.bincount(group_sorted, weights=w[order], minlength=unique_rows.shape[0])
    return (*[unique_rows[:, j] for j in range(stacked.shape[1])], summed, inverse)


def _minimize_log_params(fun, start: np.ndarray, bounds: float = 15.0):
    """L-BFGS-B on log-parameters, restarting once from the first optimum.

    The restart costs little and removes the occasional early stop caused by
    the objective's flat valleys (r and alpha trade off strongly).
    """
    options = {"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10, "maxcor": 20}
    box = [(-bounds, bounds)] * start.size
    # scipy's L-BFGS-B makes BLAS calls on 4-element vectors; with OpenBLAS
    # threads each one pays a thread wake-up, which made a CDNOW fit 100x
    # slower (60 ms instead of 0.5 ms per solve) on a busy 2-core machine.
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(fun, start, jac=True, method="L-BFGS-B", bounds=box, options=options)
        again = minimize(fun, result.x, jac=True, method="L-BFGS-B", bounds=box, options=options)
    if again.fun <= result.fun:
        again.nit += result.nit
        result = again
    # L-BFGS-B reports "ABNORMAL" when the line search cannot improve on an
    # optimum that is already exact to rounding; judge by the gradient instead.
    _, grad = fun(result.x)
    result.success = bool(result.success or np.max(np.abs(grad)) < 1e-6)
    return result


# --------------------------------------------------------------------------
# BG/NBD


@dataclass(frozen=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: float
    time_unit: str = "day"
    converged: bool = True
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _validate_rfm(frequency, recency, T, weights):
    x = np.asarray(frequency, dtype=np.float64)
    tx = np.asarray(recency, dtype=np.float64)
    big_t = np.asarray(T, dtype=np.float64)
    if not (x.shape == tx.shape == big_t.shape) or x.ndim != 1:
        raise ValueError("frequency, recency and T must be 1-d arrays of the same length")
    if x.size == 0:
        raise ValueError("no customers to fit")
    if not (np.isfinite(x).all() and np.isfinite(tx).all() and np.isfinite(big_t).all()):
        raise ValueError("frequency, recency and T must be finite")
    if (x < 0).any() or (np.abs(x - np.round(x)) > 1e-9).any():
        raise ValueError("frequency must be a non-negative whole number")
    if (tx < 0).any() or (tx > big_t + 1e-9).any():
        raise ValueError("recency must lie between 0 and T")
    if ((x == 0) & (tx > 0)).any():
        raise ValueError("customers without repeat purchases must have recency 0")
    w = None
    if weights is not None:
        w = np.asarray(weights, dtype=np.float64)
        if w.shape != x.shape or (w < 0).any() or not np.isfinite(w).all():
            raise ValueError("weights must be non-negative and match frequency")
    return np.round(x), tx, big_t, w


class _BGNBDObjective:
    """Weighted mean negative log-likelihood and its gradient in log-parameters.

    Terms that depend on x only (the gamma functions) are evaluated once per
    distinct x; this keeps the special-function cost independent of the number
    of customers.
    """

    def __init__(self, x, tx, big_t, w):
        self.x, self.tx, self.T, self.w = x, tx, big_t, w
        self.total = w.sum()
        self.xu, self.xi = np.unique(x, return_inverse=True)
        self.has_repeat = x > 0
        self.wx = np.bincount(self.xi, weights=w, minlength=self.xu.size)
        # b + x - 1 is 0 when x == 0; that term is masked out, so any positive
        # stand-in avoids log(0) warnings without changing the result.
        self.x_minus_1 = np.where(self.has_repeat, x - 1.0, 0.0)

    def terms(self, theta):
        r, alpha, a, b = theta
        x, tx, big_t = self.x, self.tx, self.T
        xu = self.xu
        # A1 + A2 per distinct x
        a12_u = (
            gammaln(r + xu)
            - gammaln(r)
            + r * math.log(alpha)
            + gammaln(a + b)
            + gammaln(b + xu)
            - gammaln(b)
            - gammaln(a + b + xu)
        )
        log_at = np.log(alpha + big_t)
        log_atx = np.log(alpha + tx)
        a3 = -(r + x) * log_at
        bx1 = b + self.x_minus_1
        a4 = np.where(self.has_repeat, math.log(a) - np.log(bx1) - (r + x) * log_atx, -np.inf)
        # log(exp(A3) + [x>0] exp(A4)) without overflow: A4 - A3 >= log-ratio form.
        m = np.maximum(a3, a4)
        e3 = np.exp(a3 - m)
        e4 = np.exp(a4 - m)
        s = e3 + e4
        ll = a12_u[self.xi] + m + np.log(s)
        return ll, (r, alpha, a, b, log_at, log_atx, bx1, e3 / s, e4 / s)

    def __call__(self, log_theta):
        theta = np.exp(log_theta)
        ll, (r, alpha, a, b, log_at, log_atx, bx1, p3, p4) = self.terms(theta)
        w, x, xu = self.w, self.x, self.xu
        wx = self.wx
        value = -np.dot(w, ll) / self.total

        # Gradient: d ll = dA1 + dA2 + p3 dA3 + p4 dA4 (p3, p4 the softmax weights).
        dr_u = digamma(r + xu) - digamma(r)
        da_u = digamma(a + b) - digamma(a + b + xu)
        db_u = da_u + digamma(b + xu) - digamma(b)
        wp3, wp4 = w * p3, w * p4
        g_r = (
            np.dot(wx, dr_u)
            + self.total * math.log(alpha)
            - np.dot(wp3, log_at)
            - np.dot(wp4, log_atx)
        )
        rx = r + x
        g_alpha = (
            self.total * r / alpha
            - np.dot(wp3, rx / (alpha + self.T))
            - np.dot(wp4, rx / (alpha + self.tx))
        )
        g_a = np.dot(wx, da_u) + wp4.sum() / a
        g_b = np.dot(wx, db_u) - np.dot(wp4, 1.0 / bx1)
        grad = -np.array([g_r, g_alpha, g_a, g_b]) * theta / self.total
        return value, grad


def bgnbd_log_likelihood(
    params: BGNBDParams | Sequence[float], frequency, recency, T
) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6), in the time unit of the inputs."""
    theta = _bgnbd_theta(params)
    x, tx, big_t, _ = _validate_rfm(frequency, recency, T, None)
    objective = _BGNBDObjective(x, tx, big_t, np.ones_like(x))
    return objective.terms(theta)[0]


def _bgnbd_theta(params) -> np.ndarray:
    if isinstance(params, BGNBDParams):
        return np.array([params.r, params.alpha, params.a, params.b])
    return np.asarray(params, dtype=np.float64)


def fit_bgnbd(
    frequency,
    recency,
    T,
    weights=None,
    *,
    time_unit: TimeUnit = "day",
    start: Sequence[float] | None = None,
) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters (r, alpha, a, b).

    ``time_unit`` only labels the result (alpha is in that unit); the inputs
    must already be in it. ``weights`` are counts of identical rows.
    """
    _days_per_unit(time_unit)
    x, tx, big_t, w = _validate_rfm(frequency, recency, T, weights)
    xu, txu, tu, wu, _ = collapse_rows(x, tx, big_t, weights=w)
    keep = wu > 0
    xu, txu, tu, wu = xu[keep], txu[keep], tu[keep], wu[keep]
    if not (tu > 0).any():
        raise ValueError("every customer bought on the as-of day: no time to learn from")
    # Fit on a rescaled clock (mean T = 10) so that alpha starts near the other
    # parameters; scaling changes the log-likelihood by -sum(w x) log(c) only.
    scale = 10.0 / float(np.average(tu, weights=wu))
    objective = _BGNBDObjective(xu, txu * scale, tu * scale, wu)
    if start is None:
        start_theta = np.array([1.0, 1.0, 1.0, 1.0])
    else:
        start_theta = np.asarray(start, dtype=np.float64).copy()
        start_theta[1] *= scale
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = _minimize_log_params(objective, np.log(start_theta))
    theta = np.exp(result.x)
    total = float(wu.sum())
    ll = -float(result.fun) * total + math.log(scale) * float(np.dot(wu, xu))
    near_bound = np.abs(result.x) >= 15.0 - 1e-3
    # a -> 0 or b -> infinity is the no-dropout (plain NBD) limit: a valid
    # answer when the data show no sign of customers leaving. r or alpha at a
    # bound is not.
    at_bound = bool(near_bound[:2].any())
    message = str(result.message)
    if near_bound[2:].any():
        message = "no sign of customers leaving: the dropout probability is about 0"
    return BGNBDParams(
        r=float(theta[0]),
        alpha=float(theta[1] / scale),
        a=float(theta[2]),
        b=float(theta[3]),
        log_likelihood=ll,
        n=total,
        time_unit=time_unit,
        converged=bool(result.success) and not at_bound,
        message="r or alpha hit its bound" if at_bound else message,
    )


def _broadcast_rfm(frequency, recency, T):
    x = np.asarray(frequency, dtype=np.float64)
    tx = np.asarray(recency, dtype=np.float64)
    big_t = np.asarray(T, dtype=np.float64)
    return x, tx, big_t


def _log_odds_dead(params: BGNBDParams, x, tx, big_t):
    """log( a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x) ) for x > 0, -inf for x == 0."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x > 0
    bx1 = np.where(repeat, b + x - 1.0, 1.0)
    z = math.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx))
    return np.where(repeat, z, -np.inf)


def probability_alive(params: BGNBDParams, frequency, recency, T) -> np.ndarray:
    """P(customer still active at T | x, t_x, T) (FHL 2005, eq. 13).

    Written as a logistic of the log-odds so that very frequent customers with a
    long silence do not overflow. Note: BG/NBD lets customers drop out only
    right after a purchase, so customers with no repeat purchase get 1.
    """
    x, tx, big_t = _broadcast_rfm(frequency, recency, T)
    return expit(-_log_odds_dead(params, x, tx, big_t))


def expected_purchases(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """E[number of purchases in (T, T+t] | x, t_x, T] (FHL 2005, eq. 10).

    Uses Euler's transformation 2F1(A,B;C;z) = (1-z)^(C-A-B) 2F1(C-A,C-B;C;z),
    which turns the factor ((alpha+T)/(alpha+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)
    into (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z): bounded for large t and
    about twice as fast. With x = t_x = T = 0 it is the unconditional E[X(t)].
    """
    x, tx, big_t = _broadcast_rfm(frequency, recency, T)
    t = np.asarray(t, dtype=np.float64)
    r, alpha, b = params.r, params.alpha, params.b
    a = params.a
    if abs(a - 1.0) < 1e-7:
        # The formula has a removable singularity at a = 1.
        a = 1.0 + 1e-7
    z = t / (alpha + big_t + t)
    c = a + b + x - 1.0
    tail = (1.0 - z) ** (a - 1.0) * hyp2f1(a + b - 1.0 - r, a - 1.0, c, z)
    numerator = c / (a - 1.0) * (1.0 - tail)
    p_alive = expit(-_log_odds_dead(params, x, tx, big_t))
    return np.maximum(numerator * p_alive, 0.0)


def probability_no_purchase(params: BGNBDParams, t, frequency, recency, T) -> np.ndarray:
    """P(no purchase in (T, T+t] | x, t_x, T).

    A customer who is alive at T stays alive until the next purchase (dropout
    happens only after purchases), and the posterior of the purchase rate of an
    alive customer is Gamma(r+x, alpha+T). Hence
    1 - P(alive) * (1 - ((alpha+T)/(alpha+T+t))^(r+x)).
    """
    x, tx, big_t = _broadcast_rfm(frequency, recency, T)
    t = np.asarray(t, dtype=np.float64)
    p_alive = probability_alive(params, x, tx, big_t)
    survive = np.exp(-(params.r + x) * np.log1p(t / (params.alpha + big_t)))
    return 1.0 - p_alive * (1.0 - survive)


def expected_next_purchase_time(
    params: BGNBDParams, frequency, recency, T, *, conditional_on_alive: bool = False
) -> np.ndarray:
    """Median time from T until the next purchase, in the model's time unit.

    Definition: the t at which P(at least one purchase in (T, T+t]) = 1/2. Since
    that probability tends to P(alive) as t grows, the median is infinite when
    P(alive) <= 1/2 (the customer more likely than not never buys again).
    With ``conditional_on_alive`` the median assumes the customer is still
    active: (alpha+T) (2^(1/(r+x)) - 1).
    """
    x, tx, big_t = _broadcast_rfm(frequency, recency, T)
    s = params.r + x
    k = params.alpha + big_t
    if conditional_on_alive:
        return k * np.expm1(math.log(2.0) / s)
    p_alive = probability_alive(params, x, tx, big_t)
    target = np.where(p_alive > 0.5, 1.0 - 0.5 / np.maximum(p_alive, 0.5 + 1e-15), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = k * np.expm1(-np.log(target) / s)
    return np.where(p_alive > 0.5, t, np.inf)


# --------------------------------------------------------------------------
# Gamma-Gamma


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    gamma: float
    log_likelihood: float
    n: float
    converged: bool = True
    message: str = ""

    @property
    def population_mean_spend(self) -> float:
        """E[spend per purchase] for a customer we know nothing about (needs q > 1)."""
        return self.p * self.gamma / (self.q - 1.0) if self.q > 1.0 else math.nan

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _GammaGammaObjective:
    def __init__(self, x, m, w):
        self.x, self.m, self.w = x, m, w
        self.total = w.sum()
        self.log_m = np.log(m)
        self.log_x = np.log(x)
        self.xm = x * m

    def terms(self, theta):
        p, q, g = theta
        x = self.x
        px = p * x
        log_gxm = np.log(g + self.xm)
        ll = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * math.log(g)
            + (px - 1.0) * self.log_m
            + px * self.log_x
            - (px + q) * log_gxm
        )
        return ll, log_gxm

    def __call__(self, log_theta):
        theta = np.exp(log_theta)
        p, q, g = theta
        ll, log_gxm = self.terms(theta)
        w, x = self.w, self.x
        px = p * x
        psi_pxq = digamma(px + q)
        g_p = np.dot(w, x * (psi_pxq - digamma(px) + self.log_m + self.log_x - log_gxm))
        g_q = np.dot(w, psi_pxq - digamma(q) + math.log(g) - log_gxm)
        g_g = np.dot(w, q / g - (px + q) / (g + self.xm))
        value = -np.dot(w, ll) / self.total
        grad = -np.array([g_p, g_q, g_g]) * theta / self.total
        return value, grad


def _validate_spend(frequency, monetary, weights):
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    if x.shape != m.shape or x.ndim != 1:
        raise ValueError("frequency and monetary must be 1-d arrays of the same length")
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != x.shape:
        raise ValueError("weights must match frequency")
    return x, m, w


def gamma_gamma_log_likelihood(params: GammaGammaParams | Sequence[float], frequency, monetary):
    """Per-customer log density of mean repeat spend (customers with x > 0, spend > 0)."""
    theta = (
        np.array([params.p, params.q, params.gamma])
        if isinstance(params, GammaGammaParams)
        else np.asarray(params, dtype=np.float64)
    )
    x, m, w = _validate_spend(frequency, monetary, None)
    return _GammaGammaObjective(x, m, w).terms(theta)[0]


def fit_gamma_gamma(frequency, monetary, weights=None) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters (p, q, gamma).

    Only customers with at least one repeat purchase and a positive mean repeat
    spend inform the model; the others are skipped rather than rejected so that
    the full customer summary can be passed as it is.
    """
    x, m, w = _validate_spend(frequency, monetary, weights)
    use = (x > 0) & (m > 0) & np.isfinite(m) & (w > 0)
    if use.sum() < 2:
        raise ValueError("at least two customers with repeat purchases and spend are needed")
    xu, mu, wu, _ = collapse_rows(x[use], m[use], weights=w[use])
    # Rescale spend to mean 1: gamma scales with it, the log-likelihood shifts
    # by -sum(w) log(c).
    scale = 1.0 / float(np.average(mu, weights=wu))
    objective = _GammaGammaObjective(xu, mu * scale, wu)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        result = _minimize_log_params(objective, np.zeros(3))
    theta = np.exp(result.x)
    total = float(wu.sum())
    ll = -float(result.fun) * total + math.log(scale) * total
    at_bound = bool(np.any(np.abs(result.x) >= 15.0 - 1e-6))
    return GammaGammaParams(
        p=float(theta[0]),
        q=float(theta[1]),
        gamma=float(theta[2] / scale),
        log_likelihood=ll,
        n=total,
        converged=bool(result.success) and not at_bound,
        message="a parameter hit its bound" if at_bound else str(result.message),
    )


def expected_spend(params: GammaGammaParams, frequency, monetary) -> np.ndarray:
    """E[spend per purchase | x, mean repeat spend] (Fader & Hardie 2013, eq. 5).

    A weighted average of the population mean p*gamma/(q-1) and the customer's
    own mean, the weight on the customer's mean growing with x. Customers with
    no repeats get the population mean.
    """
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    p, q, g = params.p, params.q, params.gamma
    if q <= 1.0:
        raise ValueError("Gamma-Gamma q <= 1: the mean spend per order is not finite")
    m = np.where(x > 0, m, 0.0)
    return p * (g + x * m) / (p * x + q - 1.0)


# --------------------------------------------------------------------------
# Value


def clv(
    bgnbd: BGNBDParams,
    spend: GammaGammaParams,
    frequency,
    recency,
    T,
    monetary,
    *,
    months: int = 12,
    annual_discount_rate: float = 0.10,
) -> np.ndarray:
    """Discounted expected revenue over the next ``months`` months.

    Like lifetimes' ``customer_lifetime_value``: the expected purchases falling
    in each month (of 365.25/12 days) times the expected spend per purchase,
    each month discounted at the monthly rate equivalent to
    ``annual_discount_rate`` ((1+rate)^(1/12) - 1), counting from the end of
    the month.
    """
    if annual_discount_rate <= -1.0:
        raise ValueError("annual_discount_rate must be above -100%")
    x, tx, big_t = _broadcast_rfm(frequency, recency, T)
    spend_per_order = expected_spend(spend, x, monetary)
    total = _discounted_orders(
        bgnbd, x, tx, big_t, months=months, annual_discount_rate=annual_discount_rate
    )
    return total * spend_per_order


def risk_band(churn_probability, *, thresholds: tuple[float, float] = RISK_BAND_THRESHOLDS):
    """'low' / 'medium' / 'high' from a churn probability."""
    p = np.asarray(churn_probability, dtype=np.float64)
    labels = np.array(["low", "medium", "high"], dtype=object)
    return labels[np.searchsorted(np.asarray(thresholds), p, side="right")]


def _fmt_days(days: float) -> str:
    d = round(float(days))
    if d == 0:
        return "today"
    if d == 1:
        return "1 day"
    return f"{d} days"


def churn_reasons(
    *,
    frequency,
    recency_days,
    days_since_last,
    bands,
) -> list[str]:
    """A sentence per customer a shop owner can read next to the churn risk.

    Built from the customer's own history (gap since the last order against
    the usual gap between orders), not from model internals.
    """
    x = np.asarray(frequency, dtype=np.float64)
    usual = np.divide(
        np.asarray(recency_days, dtype=np.float64),
        x,
        out=np.zeros_like(x),
        where=x > 0,
    )
    since = np.asarray(days_since_last, dtype=np.float64)
    out: list[str] = []
    labels = np.asarray(bands, dtype=object).tolist()
    for xi, gap, last, band in zip(x.tolist(), usual.tolist(), since.tolist(), labels, strict=True):
        if xi == 0:
            when = "today" if round(last) == 0 else f"{_fmt_days(last)} ago"
            text = f"Only one order so far, {when}"
        else:
            gap_text = _fmt_days(max(gap, 1.0))
            if last > 1.5 * gap:
                text = f"No order for {_fmt_days(last)}, usually orders every {gap_text}"
            elif round(last) == 0:
                text = f"Ordered today, usually orders every {gap_text}"
            elif band == "low":
                text = f"Last order {_fmt_days(last)} ago, usually orders every {gap_text}"
            else:
                # Not overdue, yet at risk: the customer simply orders seldom.
                text = f"Last order {_fmt_days(last)} ago; orders only about every {gap_text}"
        out.append(text)
    return out


# --------------------------------------------------------------------------
# One call for the service layer


@dataclass
class CustomerPredictions:
    """Per-customer predictions, arrays aligned with ``customer_ids``.

    ``method`` is ``"bgnbd+gamma_gamma"`` or ``"heuristic"``; a heuristic result
    comes with ``data_check.missing`` saying what the data lacks.
    ``churn_probability`` is P(no order in the next ``churn_horizon_days``),
    which is what the back-test can check against what happened.
    ``next_order_days`` is the median number of days from ``as_of`` to the next
    order; ``inf`` (and ``next_order_date`` NaT) when the customer more likely
    than not never orders again, or when the median lies beyond
    ``max_next_order_days`` (a year by default).
    """

    customer_ids: np.ndarray
    method: str
    as_of: np.datetime64
    time_unit: str
    p_alive: np.ndarray
    expected_orders: dict[int, np.ndarray]
    next_order_days: np.ndarray
    next_order_date: np.ndarray
    expected_order_value: np.ndarray
    predicted_value: np.ndarray
    value_months: int
    annual_discount_rate: float
    churn_horizon_days: int
    churn_probability: np.ndarray
    risk_band: np.ndarray
    reasons: list[str]
    data_check: DataCheck
    params: BGNBDParams | None = None
    spend_params: GammaGammaParams | None = None
    warnings: list[str] = field(default_factory=list)

    def model_dict(self) -> dict[str, Any]:
        """The fitted model in the shape of the predictions API (JSON-safe)."""
        return {
            "kind": "bgnbd" if self.method != "heuristic" else "heuristic",
            "method": self.method,
            "time_unit": self.time_unit,
            "params": None
            if self.params is None
            else {k: self.params.__dict__[k] for k in ("r", "alpha", "a", "b")},
            "spend_params": None
            if self.spend_params is None
            else {k: self.spend_params.__dict__[k] for k in ("p", "q", "gamma")},
            "log_likelihood": None if self.params is None else self.params.log_likelihood,
            "as_of": str(self.as_of),
            "data_check": self.data_check.to_dict(),
            "warnings": list(self.warnings),
        }


def predict_customers(
    summary: CustomerSummary,
    *,
    horizons_days: Sequence[int] = (30, 90, 365),
    value_months: int = 12,
    annual_discount_rate: float = 0.10,
    churn_horizon_days: int = 90,
    min_repeat_customers: int = 100,
    min_history_days: int = 90,
    risk_thresholds: tuple[float, float] = RISK_BAND_THRESHOLDS,
    max_next_order_days: float = 365.0,
    with_reasons: bool = True,
) -> CustomerPredictions:
    """Fit BG/NBD + Gamma-Gamma on ``summary`` and score every customer in it.

    Falls back to :func:`heuristic_predictions` (labelled as such) when the
    minimum-data rules are not met or the fit fails.
    """
    check = check_minimum_data(
        n_customers=summary.n_customers,
        n_repeat_customers=summary.n_repeat_customers,
        history_days=summary.history_days,
        min_repeat_customers=min_repeat_customers,
        min_history_days=min_history_days,
    )
    common = {
        "horizons_days": horizons_days,
        "value_months": value_months,
        "annual_discount_rate": annual_discount_rate,
        "churn_horizon_days": churn_horizon_days,
        "risk_thresholds": risk_thresholds,
        "max_next_order_days": max_next_order_days,
        "with_reasons": with_reasons,
    }
    if not check.ok:
        return heuristic_predictions(summary, data_check=check, **common)

    warnings: list[str] = []
    x, tx, big_t = summary.frequency, summary.recency, summary.T
    try:
        params = fit_bgnbd(x, tx, big_t, time_unit=summary.time_unit)  # type: ignore[arg-type]
    except ValueError as exc:
        check = check.with_problem(f"The purchase model could not be fitted: {exc}.")
        return heuristic_predictions(summary, data_check=check, **common)
    if not params.converged:
        check = check.with_problem(
            "The purchase model did not settle on stable values "
            f"({params.message}); showing simple averages instead."
        )
        return heuristic_predictions(summary, data_check=check, **common)
    spend: GammaGammaParams | None
    try:
        spend = fit_gamma_gamma(x, summary.monetary_value)
        if spend.q <= 1.0 or not spend.converged:
            spend = None
    except ValueError:
        spend = None
    if spend is None:
        warnings.append(
            "The spend model could not be fitted; each customer's value uses their own "
            "average repeat order value (or the shop average for one-time customers)."
        )

    # Score each distinct (x, t_x, T) once: with day resolution a million
    # customers have a few hundred thousand distinct rows, and hyp2f1 dominates.
    xu, txu, tu, _, inverse = collapse_rows(x, tx, big_t)
    unit = _days_per_unit(summary.time_unit)
    expected_orders = {
        int(h): expected_purchases(params, h / unit, xu, txu, tu)[inverse] for h in horizons_days
    }
    p_alive = probability_alive(params, xu, txu, tu)[inverse]
    next_days = (expected_next_purchase_time(params, xu, txu, tu) * unit)[inverse]
    churn = probability_no_purchase(params, churn_horizon_days / unit, xu, txu, tu)[inverse]
    discounted = _discounted_orders(
        params, xu, txu, tu, months=value_months, annual_discount_rate=annual_discount_rate
    )[inverse]
    if spend is not None:
        order_value = expected_spend(spend, x, summary.monetary_value)
    else:
        order_value = _fallback_order_value(summary)
    value = discounted * order_value
    return _assemble(
        summary,
        method="bgnbd+gamma_gamma" if spend is not None else "bgnbd",
        p_alive=p_alive,
        expected_orders=expected_orders,
        next_days=next_days,
        order_value=order_value,
        value=value,
        churn=churn,
        check=check,
        params=params,
        spend=spend,
        warnings=warnings,
        **common,
    )


def _discounted_orders(params, x, tx, big_t, *, months, annual_discount_rate):
    monthly_rate = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    unit = DAYS_PER_MONTH / _days_per_unit(params.time_unit)
    total = np.zeros(np.shape(x))
    previous = np.zeros_like(total)
    for month in range(1, months + 1):
        cumulative = expected_purchases(params, month * unit, x, tx, big_t)
        total += (cumulative - previous) / (1.0 + monthly_rate) ** month
        previous = cumulative
    return total


def _fallback_order_value(summary: CustomerSummary) -> np.ndarray:
    x = summary.frequency
    repeat = x > 0
    if repeat.any():
        shop_mean = float(np.average(summary.monetary_value[repeat], weights=x[repeat]))
    else:
        shop_mean = float(np.mean(summary.total_spend)) if summary.n_customers else 0.0
    return np.where(repeat, summary.monetary_value, shop_mean)


def heuristic_predictions(
    summary: CustomerSummary,
    *,
    data_check: DataCheck,
    horizons_days: Sequence[int] = (30, 90, 365),
    value_months: int = 12,
    annual_discount_rate: float = 0.10,
    churn_horizon_days: int = 90,
    risk_thresholds: tuple[float, float] = RISK_BAND_THRESHOLDS,
    max_next_order_days: float = 365.0,
    with_reasons: bool = True,
) -> CustomerPredictions:
    """Simple averages for shops with too little history for the models.

    Each customer's order rate is their own repeat rate shrunk towards the shop
    average (one pseudo-order at the shop rate), orders are assumed to follow a
    Poisson process at that rate, and nobody is assumed to have left: so there
    is no probability alive, and churn is just the chance of a quiet spell.
    """
    unit = _days_per_unit(summary.time_unit)
    x = summary.frequency.astype(np.float64)
    t_days = summary.T * unit
    exposure = float(t_days.sum())
    shop_rate = float(x.sum()) / exposure if exposure > 0 else 0.0
    if shop_rate > 0:
        rate = (x + 1.0) / (t_days + 1.0 / shop_rate)
    else:
        rate = np.zeros_like(x)
    expected_orders = {int(h): rate * h for h in horizons_days}
    with np.errstate(divide="ignore"):
        next_days = np.where(rate > 0, math.log(2.0) / np.where(rate > 0, rate, 1.0), np.inf)
    churn = np.exp(-rate * churn_horizon_days)
    order_value = _fallback_order_value(summary)
    monthly_rate = (1.0 + annual_discount_rate) ** (1.0 / 12.0) - 1.0
    discount = sum((1.0 + monthly_rate) ** -m for m in range(1, value_months + 1))
    value = rate * DAYS_PER_MONTH * discount * order_value
    return _assemble(
        summary,
        method="heuristic",
        p_alive=np.full(x.size, np.nan),
        expected_orders=expected_orders,
        next_days=next_days,
        order_value=order_value,
        value=value,
        churn=churn,
        check=data_check,
        params=None,
        spend=None,
        warnings=[],
        horizons_days=horizons_days,
        value_months=value_months,
        annual_discount_rate=annual_discount_rate,
        churn_horizon_days=churn_horizon_days,
        risk_thresholds=risk_thresholds,
        max_next_order_days=max_next_order_days,
        with_reasons=with_reasons,
    )


def _reasons_for(summary: CustomerSummary, bands: np.ndarray) -> list[str]:
    # Sentences depend on (x, t_x, days since last order, band) only; building
    # them per distinct row keeps a million customers to one string each from
    # a few hundred thousand formats.
    if summary.n_customers == 0:
        return []
    unit = _days_per_unit(summary.time_unit)
    band_code = np.searchsorted(np.array(["high", "low", "medium"]), bands.astype(str))
    since = summary.days_since_last_purchase()
    recency_days = np.round(summary.recency * unit)
    xu, ru, su, bu, _, inverse = collapse_rows(summary.frequency, recency_days, since, band_code)
    labels = np.array(["high", "low", "medium"], dtype=object)[bu.astype(np.int64)]
    unique_reasons = np.array(
        churn_reasons(frequency=xu, recency_days=ru, days_since_last=su, bands=labels),
        dtype=object,
    )
    return unique_reasons[inverse].tolist()


def _assemble(
    summary: CustomerSummary,
    *,
    method,
    p_alive,
    expected_orders,
    next_days,
    order_value,
    value,
    churn,
    check,
    params,
    spend,
    warnings,
    horizons_days,
    value_months,
    annual_discount_rate,
    churn_horizon_days,
    risk_thresholds,
    max_next_order_days,
    with_reasons,
) -> CustomerPredictions:
    bands = risk_band(churn, thresholds=risk_thresholds)
    # A median wait of years (BG/NBD keeps one-time buyers "alive" forever) is
    # not a date an owner can act on: beyond the cap it reads "not expected".
    next_days = np.where(next_days <= max_next_order_days, next_days, np.inf)
    finite = np.isfinite(next_days)
    next_date = np.full(next_days.size, np.datetime64("NaT"), dtype="datetime64[D]")
    next_date[finite] = summary.as_of + np.ceil(next_days[finite]).astype("timedelta64[D]")
    reasons = _reasons_for(summary, bands) if with_reasons else []
    return CustomerPredictions(
        customer_ids=summary.customer_ids,
        method=method,
        as_of=summary.as_of,
        time_unit=summary.time_unit,
        p_alive=p_alive,
        expected_orders=expected_orders,
        next_order_days=next_days,
        next_order_date=next_date,
        expected_order_value=order_value,
        predicted_value=value,
        value_months=value_months,
        annual_discount_rate=annual_discount_rate,
        churn_horizon_days=churn_horizon_days,
        churn_probability=churn,
        risk_band=bands,
        reasons=reasons,
        data_check=check,
        params=params,
        spend_params=spend,
        warnings=warnings,
    )


def simulate_bgnbd(
    *,
    n: int,
    r: float,
    alpha: float,
    a: float,
    b: float,
    T,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw (frequency, recency, T) from the BG/NBD process, for tests and benchmarks.

    Purchases follow a Poisson process with rate lambda ~ Gamma(r, 1/alpha);
    after each repeat purchase the customer leaves with probability
    p ~ Beta(a, b), so the number of repeat purchases before leaving is
    Geometric(p) on 1, 2, ... Given N Poisson events in (0, T], the x-th one
    falls at T * Beta(x, N - x + 1), which avoids drawing every event.
    """
    big_t = np.broadcast_to(np.asarray(T, dtype=np.float64), (n,)).copy()
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=n)
    p = rng.beta(a, b, size=n)
    events = rng.poisson(lam * big_t)
    lifetime_purchases = rng.geometric(np.clip(p, 1e-12, 1.0))
    x = np.minimum(events, lifetime_purchases)
    recency = np.zeros(n)
    has = x > 0
    recency[has] = big_t[has] * rng.beta(x[has], events[has] - x[has] + 1)
    return x.astype(np.int64), recency, big_t
