"""Product demand: units per product for the next weeks, with a range and a trend flag.

Kept simple on purpose, and honest about it:
- Sales are summed into 7-day weeks ending on ``as_of`` (so the forecast is
  weekly and day-of-week patterns do not matter).
- Candidates per product: simple exponential smoothing at four smoothing
  levels, a damped-trend (Holt) model, and, once a product has two years of
  history, "the same weeks last year, scaled to this year's level".
- Each product gets the candidate with the smallest error on its own last
  weeks (back-tested from two origins, 4 and 8 weeks back); plain smoothing is
  kept unless another method beats it by more than 5%, so noise alone rarely
  picks a fancier model.
- The range is that of a count (negative binomial) centred on the forecast,
  whose spread beyond Poisson noise is what the chosen method missed by when
  run from every week of the last year (rolling back-test): a product that
  sells steadily gets a narrow range, one bought in lumps by a few wholesale
  customers a wide one. The range always holds the forecast itself.
- The trend compares the two figures shown side by side: the units expected
  in the next weeks against the units sold in the last as many weeks. It is
  "rising" or "falling" only when the change is at least ``trend_threshold``
  and the last weeks' sales lie outside the forecast's range, and never the
  opposite of what the last weeks' sales did against the weeks before them.
  (It used to compare the last 8 weeks with the 8 before, and so could call
  a product "rising 481%" while its forecast fell below its latest sales.)
- Products with fewer than ``min_weeks`` weeks since their first sale get the
  average of the weeks they have, labelled as such.

Every product is handled in the same array operation (a products x weeks
matrix), so a few thousand products take well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import nbinom, poisson

from predictions.ml.clv import to_day, to_day_numbers

MAX_WEEKS = 156
SES_ALPHAS = (0.1, 0.2, 0.3, 0.5)
DEFAULT_ALPHA_INDEX = 1
HOLT = {"alpha": 0.3, "beta": 0.1, "phi": 0.98}
SEASON = 52

METHOD_LABELS = {
    "ses_0.1": "exponential smoothing (slow)",
    "ses_0.2": "exponential smoothing",
    "ses_0.3": "exponential smoothing (quick)",
    "ses_0.5": "exponential smoothing (very quick)",
    "damped_trend": "damped trend",
    "seasonal": "same weeks last year, scaled",
    "short_history": "average of the weeks so far (short history)",
}


@dataclass
class DemandForecast:
    """``table``: one row per product; ``weekly``: one row per product and future week."""

    as_of: np.datetime64
    horizon_weeks: int
    interval: float
    table: pd.DataFrame
    weekly: pd.DataFrame
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        def clean(frame: pd.DataFrame) -> list[dict[str, Any]]:
            records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
            for row in records:
                for k, v in row.items():
                    if isinstance(v, float) and not math.isfinite(v):
                        row[k] = None
            return records

        return {
            "as_of": str(self.as_of),
            "horizon_weeks": self.horizon_weeks,
            "interval": self.interval,
            "products": clean(self.table),
            "weekly": clean(self.weekly),
            "notes": list(self.notes),
        }


def _weekly_matrix(sales: pd.DataFrame, as_of_int: int, max_weeks: int):
    missing = {"sku", "date", "units"} - set(sales.columns)
    if missing:
        raise ValueError(f"sales needs the columns sku, date, units; missing: {sorted(missing)}")
    days = to_day_numbers(sales["date"])
    units = pd.to_numeric(sales["units"], errors="coerce").to_numpy(dtype=np.float64)
    if np.isnan(units).any():
        row = int(np.flatnonzero(np.isnan(units))[0])
        raise ValueError(f"row {row}: units is not a number ({sales['units'].iloc[row]!r})")
    keep = days <= as_of_int
    weeks_back = (as_of_int - days[keep]) // 7
    recent = weeks_back < max_weeks
    codes, skus = pd.factorize(sales["sku"].to_numpy()[keep][recent], sort=True)
    wb = weeks_back[recent]
    n_weeks = int(wb.max()) + 1 if wb.size else 0
    matrix = np.zeros((len(skus), n_weeks))
    np.add.at(matrix, (codes, n_weeks - 1 - wb), units[keep][recent])
    # First week with a sale: the product did not exist (or was not sold) before.
    nonzero = matrix != 0
    start = np.where(nonzero.any(axis=1), nonzero.argmax(axis=1), n_weeks)
    return np.asarray(skus), matrix, start


def _ses_levels(y: np.ndarray, start: np.ndarray, alpha: float) -> np.ndarray:
    """Level after each week (column), starting at the first sale's week."""
    n, w = y.shape
    levels = np.zeros((n, w))
    level = np.zeros(n)
    for t in range(w):
        level = np.where(t <= start, y[:, t], alpha * y[:, t] + (1 - alpha) * level)
        levels[:, t] = level
    return levels


def _holt_states(y: np.ndarray, start: np.ndarray, alpha: float, beta: float, phi: float):
    n, w = y.shape
    levels, trends = np.zeros((n, w)), np.zeros((n, w))
    level, trend = np.zeros(n), np.zeros(n)
    for t in range(w):
        new_level = alpha * y[:, t] + (1 - alpha) * (level + phi * trend)
        new_trend = beta * (new_level - level) + (1 - beta) * phi * trend
        first = t <= start
        level = np.where(first, y[:, t], new_level)
        trend = np.where(first, 0.0, new_trend)
        levels[:, t], trends[:, t] = level, trend
    return levels, trends


def _seasonal_forecast(y: np.ndarray, origin: int, horizon: int) -> np.ndarray:
    """Weeks origin..origin+horizon-1 from the same weeks a year earlier, scaled.

    The scale is the last 8 weeks against the same 8 weeks a year before,
    clipped to [0.5, 2] so one odd week cannot double a forecast.
    """
    recent = y[:, origin - 8 : origin].sum(axis=1)
    year_ago = y[:, origin - 8 - SEASON : origin - SEASON].sum(axis=1)
    ratio = np.clip(np.divide(recent + 1.0, year_ago + 1.0), 0.5, 2.0)
    cols = np.arange(origin, origin + horizon) - SEASON
    return y[:, cols] * ratio[:, None]


def _candidate_forecasts(y, start, origin, horizon, ses_levels, holt):
    """{method: (n, horizon) forecasts made with data before column ``origin``}."""
    out = {}
    for alpha, levels in zip(SES_ALPHAS, ses_levels, strict=True):
        out[f"ses_{alpha}"] = np.repeat(levels[:, origin - 1 : origin], horizon, axis=1)
    levels, trends = holt
    phi = HOLT["phi"]
    damp = np.cumsum(phi ** np.arange(1, horizon + 1))
    out["damped_trend"] = np.maximum(
        levels[:, origin - 1 : origin] + trends[:, origin - 1 : origin] * damp[None, :], 0.0
    )
    if origin - 8 - SEASON >= 0:
        out["seasonal"] = _seasonal_forecast(y, origin, horizon)
    return out


def forecast_demand(
    sales: pd.DataFrame,
    *,
    as_of: Any = None,
    horizon_weeks: int = 4,
    interval: float = 0.8,
    min_weeks: int = 8,
    trend_threshold: float = 0.2,
) -> DemandForecast:
    """Forecast units per product for the next ``horizon_weeks`` weeks.

    ``sales`` is long format with columns ``sku``, ``date`` and ``units`` (daily
    or weekly rows, any number per day). Returns (negative units) lower a
    week's total. ``as_of`` defaults to the last date in the data.

    Trend: the next ``horizon_weeks`` weeks' expected units against the units
    sold in the last ``horizon_weeks`` weeks (see ``_trend``); ``trend_change``
    is that relative change.
    """
    if horizon_weeks < 1:
        raise ValueError("horizon_weeks must be at least 1")
    if len(sales) == 0:
        raise ValueError("there are no sales to forecast from")
    as_of_day = to_day(as_of) if as_of is not None else to_day(pd.Series(sales["date"]).max())
    as_of_int = int(as_of_day.astype(np.int64))
    skus, y, start = _weekly_matrix(sales, as_of_int, MAX_WEEKS)
    n, w = y.shape
    y = np.maximum(y, 0.0)  # a week of net returns is a week without demand
    history = w - start
    h = horizon_weeks

    ses = [_ses_levels(y, start, a) for a in SES_ALPHAS]
    holt = _holt_states(y, start, HOLT["alpha"], HOLT["beta"], HOLT["phi"])

    # Back-test from two origins where the history allows; errors are the mean
    # absolute error per week over the held-out weeks.
    methods = [f"ses_{a}" for a in SES_ALPHAS] + ["damped_trend", "seasonal"]
    errors = np.zeros((len(methods), n))
    counts = np.zeros((len(methods), n))
    for back in (8, 4):
        origin = w - back
        if origin < 2:
            continue
        usable = (origin - start) >= min_weeks
        actual = y[:, origin : origin + min(h, back)]
        cands = _candidate_forecasts(y, start, origin, actual.shape[1], ses, holt)
        for m, name in enumerate(methods):
            if name not in cands:
                continue
            ok = usable & (history >= 2 * SEASON) if name == "seasonal" else usable
            err = np.abs(cands[name] - actual).mean(axis=1)
            errors[m] += np.where(ok, err, 0.0)
            counts[m] += ok
    mean_err = np.where(counts > 0, errors / np.maximum(counts, 1), np.inf)
    default = DEFAULT_ALPHA_INDEX
    best = np.argmin(mean_err, axis=0)
    keep_default = mean_err[best, np.arange(n)] >= 0.95 * mean_err[default]
    best = np.where(keep_default | ~np.isfinite(mean_err[default]), default, best)
    backtest_mae = mean_err[best, np.arange(n)]

    finals = _candidate_forecasts(y, start, w, h, ses, holt) if w >= 1 else {}
    forecast = np.zeros((n, h))
    for m, name in enumerate(methods):
        if name in finals:
            pick = best == m
            forecast[pick] = finals[name][pick]

    short = history < min_weeks
    if short.any():
        avg = y[short].sum(axis=1) / np.maximum(history[short], 1)
        forecast[short] = avg[:, None]
    forecast = np.maximum(forecast, 0.0)

    # The range: a negative binomial count for the next weeks' units, centred on
    # the forecast, whose extra spread (beyond Poisson noise) is what the chosen
    # method actually missed by when it was run from every week of the last year
    # and compared with the weeks that followed (rolling back-test). A product
    # without such a record takes the spread of the products that have one.
    total = forecast.sum(axis=1)
    disp_total, disp_week = _backtest_dispersion(y, start, ses, holt, best, methods, h, min_weeks)
    q_low, q_high = (1.0 - interval) / 2.0, (1.0 + interval) / 2.0
    total_lower, total_upper = _count_range(total, disp_total, q_low, q_high)
    lower, upper = _count_range(forecast, disp_week, q_low, q_high)

    last4 = y[:, max(0, w - h) :].sum(axis=1)
    before4 = y[:, max(0, w - 2 * h) : max(0, w - h)].sum(axis=1)
    trend, change = _trend(
        total, total_lower, total_upper, last4, before4, history, short, h, trend_threshold
    )
    method_names = np.where(short, "short_history", np.array(methods, dtype=object)[best])
    table = pd.DataFrame(
        {
            "sku": skus,
            "method": method_names,
            "method_label": [METHOD_LABELS[m] for m in method_names],
            "history_weeks": history.astype(int),
            "units_last_4_weeks": last4,
            "forecast": total,
            "lower": total_lower,
            "upper": total_upper,
            "trend": trend,
            "trend_change": change,
            "backtest_mae_per_week": np.where(short, np.nan, backtest_mae),
        }
    )
    table["label"] = [_label(row, h, interval) for row in table.itertuples(index=False)]
    week_starts = [str(as_of_day + np.timedelta64(1 + 7 * k, "D")) for k in range(h)]
    weekly = pd.DataFrame(
        {
            "sku": np.repeat(skus, h),
            "week_start": np.tile(week_starts, n),
            "forecast": forecast.ravel(),
            "lower": lower.ravel(),
            "upper": upper.ravel(),
        }
    )
    notes = [
        f"Weeks run for 7 days and end on {as_of_day}; the range is a "
        f"{round(100 * interval)}% range.",
    ]
    if short.any():
        notes.append(
            f"{int(short.sum())} product(s) have fewer than {min_weeks} weeks of sales: "
            "their forecast is the average of the weeks so far."
        )
    return DemandForecast(
        as_of=as_of_day,
        horizon_weeks=h,
        interval=interval,
        table=table,
        weekly=weekly,
        notes=notes,
    )


def _backtest_dispersion(y, start, ses, holt, best, methods, h, min_weeks):
    """Extra spread of each product's units over ``h`` weeks (and in one week).

    The chosen method is run from every week of the last year (as if that week
    were today) and compared with the ``h`` weeks that followed. For a negative
    binomial count with mean ``mu`` the variance is ``mu + d * mu**2``; ``d`` is
    estimated from those misses as ``sum(error**2 - forecast) / sum(forecast**2)``
    (zero: no more spread than Poisson noise). Estimates from a short record are
    pulled towards the shop's typical value (the median over products with at
    least 8 origins); products without one (under ``min_weeks`` of history)
    take that value (on the demo shop's own history this held the next 4 weeks
    in 76-82% of such products, for an 80% range). Per-week values grow with
    the week ahead, never shrink.

    Returns ``(d_total (n,), d_week (n, h))``.
    """
    n, w = y.shape
    best_names = np.array(methods, dtype=object)[best]
    num_t, den_t, origins = np.zeros(n), np.zeros(n), np.zeros(n)
    num_w, den_w = np.zeros((n, h)), np.zeros((n, h))
    for origin in range(max(2, w - 52 - h + 1), w - h + 1):
        usable = (origin - start) >= min_weeks
        if not usable.any():
            continue
        cands = _candidate_forecasts(y, start, origin, h, ses, holt)
        fc = np.zeros((n, h))
        have = np.zeros(n, dtype=bool)
        for name, values in cands.items():
            pick = best_names == name
            fc[pick] = values[pick]
            have |= pick
        ok = usable & have
        fc = np.maximum(fc, 0.0)
        actual = y[:, origin : origin + h]
        err_w = (actual - fc) ** 2 - fc
        num_w += np.where(ok[:, None], err_w, 0.0)
        den_w += np.where(ok[:, None], fc**2, 0.0)
        ft, at = fc.sum(axis=1), actual.sum(axis=1)
        num_t += np.where(ok, (at - ft) ** 2 - ft, 0.0)
        den_t += np.where(ok, ft**2, 0.0)
        origins += ok

    def estimate(num, den):
        return np.divide(np.maximum(num, 0.0), den, out=np.zeros_like(num), where=den > 0)

    d_t = estimate(num_t, den_t)
    d_w = estimate(num_w, den_w)
    known = (origins >= 8) & (den_t > 0)
    if known.any():
        typical_t = float(np.median(d_t[known]))
        typical_w = np.median(d_w[known], axis=0)
    else:  # no record anywhere: assume lumpy sales (a unit coefficient of variation)
        typical_t, typical_w = 1.0, np.full(h, 1.0)
    # Shrink a short record towards the typical value (4 origins' worth of weight).
    k = 4.0
    weight = origins / (origins + k)
    d_t = weight * d_t + (1 - weight) * typical_t
    d_w = weight[:, None] * d_w + (1 - weight[:, None]) * typical_w[None, :]
    return d_t, np.maximum.accumulate(d_w, axis=1)


def _count_range(mu, dispersion, q_low: float, q_high: float):
    """Quantiles of a negative binomial count with mean ``mu`` and variance
    ``mu + dispersion * mu**2`` (Poisson when ``dispersion`` is 0), widened if
    need be so that the range always holds ``mu`` itself."""
    mu = np.asarray(mu, dtype=np.float64)
    d = np.broadcast_to(np.asarray(dispersion, dtype=np.float64), mu.shape)
    m = np.maximum(mu, 1e-9)
    tiny = d < 1e-6
    r = 1.0 / np.where(tiny, 1.0, d)
    p = r / (r + m)
    lo = np.where(tiny, poisson.ppf(q_low, m), nbinom.ppf(q_low, r, p))
    hi = np.where(tiny, poisson.ppf(q_high, m), nbinom.ppf(q_high, r, p))
    lo = np.where(mu > 0, np.minimum(lo, mu), 0.0)
    hi = np.where(mu > 0, np.maximum(hi, mu), 0.0)
    return lo, hi


def _trend(total, lower, upper, last, before, history, short, h, threshold):
    """Next ``h`` weeks' expected units against the last ``h`` weeks' sales: the
    two figures shown side by side, so the label can never contradict them.

    "rising": the forecast is at least ``threshold`` above the last weeks and
    the last weeks fall below its whole range (more than noise); "falling" the
    mirror image. A direction the recent sales clearly contradict (the last
    ``h`` weeks fell by ``threshold`` or more, and by more than noise, against
    the ``h`` before, yet the forecast is above them: a smoothing that lags
    behind a fall) is "steady", never the opposite of what the sales did.
    """
    n = total.size
    rel = np.divide(total - last, last, out=np.full(n, np.nan), where=last > 0)
    rel = np.where((last == 0) & (total > 0), np.inf, rel)
    rel = np.where((last == 0) & (total == 0), 0.0, rel)
    noise = 2.0 * np.sqrt(last + before)
    fell = (before - last > noise) & (last <= (1 - threshold) * before)
    rose = (last - before > noise) & (last >= (1 + threshold) * before)
    up = (rel >= threshold) & (last < lower) & ~fell
    down = (rel <= -threshold) & (last > upper) & ~rose
    state = np.where(up, "rising", np.where(down, "falling", "steady")).astype(object)
    enough = ~short & (history >= 2 * h)
    trend = np.where(enough, state, "not enough history").astype(object)
    change = np.where(enough, rel, np.nan)
    return trend, change


def _units(x: float) -> str:
    v = round(float(x))
    return f"{v:,} unit" + ("" if v == 1 else "s")


def _label(row, h: int, interval: float) -> str:
    text = (
        f"Expected {_units(row.forecast)} in the next {h} weeks "
        f"({round(100 * interval)}% range {round(row.lower):,}–{round(row.upper):,})"
    )
    if row.method == "short_history":
        weeks = int(row.history_weeks)
        text += f"; only {weeks} week{'s' if weeks != 1 else ''} of sales, so this is the average"
        return text
    sold = f"{round(float(row.units_last_4_weeks)):,} sold in the last {h} weeks"
    if row.trend in ("rising", "falling"):
        if math.isfinite(row.trend_change):
            way = "up" if row.trend == "rising" else "down"
            text += f"; {way} {abs(row.trend_change):.0%} on the {sold}"
        else:
            text += f"; none sold in the last {h} weeks"
    elif row.trend == "steady":
        text += f"; about the same as the {sold}"
    else:
        text += f"; {sold}"
    return text
