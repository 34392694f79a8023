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
- The range comes from the larger of the spread of one-step smoothing errors
  over the last half year and the chosen method's back-test errors, never
  narrower than Poisson noise, widened with the horizon as exponential
  smoothing implies.
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
from scipy.stats import norm

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

    Trend: the last 8 weeks against the 8 before (against the same 8 weeks a
    year earlier for products forecast seasonally); "rising" or "falling" when
    the change is at least ``trend_threshold`` and larger than Poisson noise
    (twice the standard deviation of the difference), else "steady".
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
    sq_errors = np.zeros((len(methods), n))
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
            sq_errors[m] += np.where(ok, ((cands[name] - actual) ** 2).mean(axis=1), 0.0)
            counts[m] += ok
    mean_err = np.where(counts > 0, errors / np.maximum(counts, 1), np.inf)
    default = DEFAULT_ALPHA_INDEX
    best = np.argmin(mean_err, axis=0)
    keep_default = mean_err[best, np.arange(n)] >= 0.95 * mean_err[default]
    best = np.where(keep_default | ~np.isfinite(mean_err[default]), default, best)
    backtest_mae = mean_err[best, np.arange(n)]
    backtest_mse = np.where(
        counts[best, np.arange(n)] > 0,
        sq_errors[best, np.arange(n)] / np.maximum(counts[best, np.arange(n)], 1),
        0.0,
    )

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

    # One-step errors of plain smoothing over the last 26 weeks give the spread.
    levels = ses[default]
    one_step = y[:, 1:] - levels[:, :-1]
    recent_cols = np.arange(1, w) >= max(1, w - 26)
    valid = (np.arange(1, w)[None, :] > start[:, None]) & recent_cols[None, :]
    sq = np.where(valid, one_step**2, 0.0)
    n_valid = valid.sum(axis=1)
    mse = np.divide(sq.sum(axis=1), n_valid, out=np.zeros(n), where=n_valid > 0)
    # The chosen method's own back-test errors also count: they carry any bias
    # (a trend it lags behind) that one-step smoothing errors do not show.
    sigma2 = np.maximum(np.maximum(mse, backtest_mse), np.maximum(forecast.mean(axis=1), 1.0 / 7.0))
    alpha_used = np.array(
        [
            float(methods[b].split("_")[1]) if methods[b].startswith("ses_") else HOLT["alpha"]
            for b in best
        ]
    )
    steps = np.arange(h)
    week_var = sigma2[:, None] * (1.0 + steps[None, :] * alpha_used[:, None] ** 2)
    total_var = sigma2 * ((1.0 + steps[None, :] * alpha_used[:, None]) ** 2).sum(axis=1)
    # Short histories have no error record: double the Poisson variance.
    week_var[short] *= 2.0
    total_var[short] *= 2.0
    z = float(norm.ppf(0.5 + interval / 2.0))
    lower = np.maximum(forecast - z * np.sqrt(week_var), 0.0)
    upper = forecast + z * np.sqrt(week_var)
    total = forecast.sum(axis=1)
    total_lower = np.maximum(total - z * np.sqrt(total_var), 0.0)
    total_upper = total + z * np.sqrt(total_var)

    trend, change = _trend(y, history, best, methods, trend_threshold)
    method_names = np.where(short, "short_history", np.array(methods, dtype=object)[best])
    last4 = y[:, max(0, w - 4) :].sum(axis=1)
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


def _trend(y, history, best, methods, threshold):
    n, w = y.shape
    trend = np.full(n, "not enough history", dtype=object)
    change = np.full(n, np.nan)
    if w < 16:
        return trend, change
    recent = y[:, w - 8 :].sum(axis=1)
    before = y[:, w - 16 : w - 8].sum(axis=1)
    seasonal = np.array(methods, dtype=object)[best] == "seasonal"
    if w >= 8 + SEASON:
        year_ago = y[:, w - 8 - SEASON : w - SEASON].sum(axis=1)
        before = np.where(seasonal, year_ago, before)
    enough = history >= 16
    diff = recent - before
    rel = np.divide(diff, before, out=np.full(n, np.nan), where=before > 0)
    rel = np.where((before == 0) & (recent > 0), np.inf, rel)
    noisy = np.abs(diff) <= 2.0 * np.sqrt(recent + before)
    state = np.where(
        noisy | (np.abs(np.nan_to_num(rel, nan=0.0)) < threshold),
        "steady",
        np.where(diff > 0, "rising", "falling"),
    )
    trend = np.where(enough, state, trend)
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
    elif row.trend in ("rising", "falling"):
        if math.isfinite(row.trend_change):
            text += f"; demand {row.trend}: {row.trend_change:+.0%} over the last 8 weeks"
        else:
            text += f"; demand {row.trend}: new sales in the last 8 weeks"
    elif row.trend == "steady":
        text += "; demand steady"
    return text
