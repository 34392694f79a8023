"""Response and lookalike models for audiences (CONTRACT: "Recommendations and audiences").

`response`: learned from the customers a past campaign reached (those with an
`exposure_event`; the first one counts). A customer responded when they had
`event` within `within_days` after that exposure. The words "order", "ordered",
"orders" and "purchase" as `event` mean a paid order (and any event of that type,
if the business sends such events too). Features are taken as each customer was
just before their exposure — behaviour up to that instant — so nothing they did
after the campaign leaks into what the model learns from. Customers whose window
has not closed yet (exposed less than `within_days` ago) are left out of training
when enough closed windows remain; they are never scored (they have been
contacted). Everyone not exposed is scored, as they are now, with a calibrated
probability of responding, so the sum over an audience is the expected number of
responses.

`lookalike`: the seed (members of a segment and/or customers named by external
id) against everyone else: a classifier learns what sets the seed apart, and each
non-seed customer is scored by a model that did not see them (five folds), so the
customers who look most like the seed but are not in it come first. Seeds under
`MIN_SEED` customers are ranked by similarity to the seed's average instead.

Both choose between gradient boosting and logistic regression by 5-fold
cross-validated AUC (stratified, fixed seed) and report the chosen one's AUC on
customers it had not seen. The modelling functions (`choose_model`,
`out_of_fold`) take arrays and are what `bench/audiences_response.py` runs on the
marketing-campaign data set.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from core.exceptions import ApplicationError

from .evaluation import Evaluation, ModelInfo, progress
from .features import (
    NS_PER_DAY,
    FeatureMatrix,
    behaviour,
    combine,
    event_type_list,
    profile_and_attributes,
)

SEED = 0
FOLDS = 5
MIN_CLASS = 20  # responders and non-responders needed to learn anything
MIN_SEED = 10  # seed customers needed for the classifier (fewer: similarity)
# negatives used to train each lookalike fold at most (scoring uses everyone)
MAX_TRAIN_NEGATIVES = 10_000
# rows the model choice (5-fold AUC, held-out check) and the final fit use at most
MAX_CHOOSE_ROWS = 8_000
MAX_FIT_ROWS = 20_000
# from this many rows on, the final model is calibrated on a fifth of them held out
# (one fit) rather than by 3-fold cross-validation (three fits, three scorings)
SPLIT_CALIBRATION_ROWS = 5_000
ORDER_WORDS = frozenset({"order", "ordered", "orders", "purchase"})
# events are read this far back: an exposure can be old
EVENT_HISTORY_DAYS = 20 * 366
MAX_ATTRIBUTES = 100
# lookalikes look at now: events of the last 90 days are enough
EVENT_DAYS_NOW = 91
BLEND = "gradient_boosting+logistic"
MODEL_LABELS = {
    "gradient_boosting": "gradient boosting",
    "logistic": "logistic regression",
    BLEND: "gradient boosting and logistic regression averaged",
}


# --- the models ------------------------------------------------------------------------
def _log_columns(X: np.ndarray, columns: list[int]) -> np.ndarray:
    X = np.array(X, dtype=np.float64, copy=True)
    if columns:
        X[:, columns] = np.sign(X[:, columns]) * np.log1p(np.abs(X[:, columns]))
    return X


def skewed_columns(X: np.ndarray) -> list[int]:
    """Columns a linear model should see on a log scale: long-tailed counts and amounts."""
    out = []
    for j in range(X.shape[1]):
        col = X[:, j]
        col = col[np.isfinite(col)]
        if col.size < 3 or np.unique(col[: min(col.size, 5000)]).size <= 2:
            continue
        sd = col.std()
        if sd <= 0:
            continue
        skew = float(np.mean(((col - col.mean()) / sd) ** 3))
        if skew > 1.0:
            out.append(j)
    return out


def candidates(X: np.ndarray, *, seed: int = SEED) -> dict[str, Any]:
    """The models compared: gradient boosting; logistic regression on imputed,
    log-scaled (long-tailed columns) and standardised columns; and the two averaged
    (their probabilities, half and half), which ranks better than either when each
    sees what the other misses (on the marketing-campaign data, docs/quality.md)."""
    n = X.shape[0]
    gbm = HistGradientBoostingClassifier(
        learning_rate=0.05,
        max_iter=200,
        max_leaf_nodes=8,
        min_samples_leaf=max(20, min(200, n // 200)),
        l2_regularization=1.0,
        early_stopping=n >= 10_000,
        random_state=seed,
    )
    logistic = make_pipeline(
        FunctionTransformer(_log_columns, kw_args={"columns": skewed_columns(X)}),
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=0.1, max_iter=2000),
    )
    both = VotingClassifier([("gbm", gbm), ("logistic", logistic)], voting="soft")
    return {"gradient_boosting": gbm, "logistic": logistic, BLEND: both}


def cv_auc(model, X: np.ndarray, y: np.ndarray, *, folds: int = FOLDS, seed: int = SEED) -> float:
    """Mean AUC over stratified folds (fixed seed)."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs = []
    for train, test in splitter.split(X, y):
        fitted = clone(model).fit(X[train], y[train])
        aucs.append(roc_auc_score(y[test], fitted.predict_proba(X[test])[:, 1]))
    return float(np.mean(aucs))


def cv_aucs(X: np.ndarray, y: np.ndarray, *, folds: int = FOLDS, seed: int = SEED):
    """Mean 5-fold AUC of every candidate; the average of the two models is scored
    from the same folds' predictions (it is fitted as the two are)."""
    models = candidates(X, seed=seed)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    aucs: dict[str, list[float]] = {name: [] for name in models}
    for train, test in splitter.split(X, y):
        p = {}
        for name in ("gradient_boosting", "logistic"):
            fitted = clone(models[name]).fit(X[train], y[train])
            p[name] = fitted.predict_proba(X[test])[:, 1]
            aucs[name].append(roc_auc_score(y[test], p[name]))
        aucs[BLEND].append(roc_auc_score(y[test], (p["gradient_boosting"] + p["logistic"]) / 2))
    return models, {name: float(np.mean(v)) for name, v in aucs.items()}


@dataclass
class Choice:
    kind: str  # gradient_boosting | logistic | gradient_boosting+logistic
    cv_auc: dict[str, float]
    holdout_auc: float
    model: Any  # calibrated, fitted on every training row
    n_train: int
    n_positive: int
    details: dict[str, Any] = field(default_factory=dict)

    def predict(self, X: np.ndarray) -> np.ndarray:
        with threadpool_limits(limits=1, user_api="openmp"):
            return self.model.predict_proba(X)[:, 1]


@dataclass
class Calibrated:
    """A fitted model and a map from its scores to probabilities, learned on rows
    the model did not see (one model to fit and to score, where cross-validated
    calibration would need three)."""

    model: Any
    mapping: Any  # IsotonicRegression, or LogisticRegression on the score's logit

    @staticmethod
    def _logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p / (1 - p)).reshape(-1, 1)

    @classmethod
    def fit(cls, model, X: np.ndarray, y: np.ndarray, *, seed: int = SEED) -> Calibrated:
        fit, held = train_test_split(
            np.arange(len(y)), test_size=0.2, stratify=y, random_state=seed
        )
        fitted = clone(model).fit(X[fit], y[fit])
        p = fitted.predict_proba(X[held])[:, 1]
        if min(int(y[held].sum()), int((y[held] == 0).sum())) >= 100:
            mapping = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(p, y[held])
        else:
            mapping = LogisticRegression(C=1e4).fit(cls._logit(p), y[held])
        return cls(fitted, mapping)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = self.model.predict_proba(X)[:, 1]
        if isinstance(self.mapping, IsotonicRegression):
            q = self.mapping.predict(p)
        else:
            q = self.mapping.predict_proba(self._logit(p))[:, 1]
        return np.column_stack([1.0 - q, q])


def _pick(scores: dict[str, float]) -> str:
    # the simpler model wins a tie: logistic, then gradient boosting, then both
    order = {"logistic": 0, "gradient_boosting": 1, BLEND: 2}
    return max(scores, key=lambda k: (round(scores[k], 4), -order[k]))


def _sample(y: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """At most `limit` row numbers, stratified by `y` (all of them when fewer)."""
    rows = np.arange(len(y))
    if len(y) <= limit:
        return rows
    kept, _ = train_test_split(rows, train_size=limit, stratify=y, random_state=seed)
    return np.sort(kept)


def choose_model(X: np.ndarray, y: np.ndarray, *, seed: int = SEED) -> Choice:
    """Pick the model by 5-fold AUC, measure it on a held-out quarter, then refit
    it, calibrated, on every row."""
    y = np.asarray(y, dtype=np.int64)
    X = np.asarray(X, dtype=np.float64)
    # large bases: the choice and the held-out check on a stratified sample, the final
    # model on a larger one (the AUCs move in the third decimal; the time by minutes)
    choose_rows = _sample(y, MAX_CHOOSE_ROWS, seed)
    fit_rows = _sample(y, MAX_FIT_ROWS, seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        Xc, yc = X[choose_rows], y[choose_rows]
        models, scores = cv_aucs(Xc, yc, seed=seed)
        kind = _pick(scores)
        train, test = train_test_split(
            np.arange(len(yc)), test_size=0.25, stratify=yc, random_state=seed
        )
        fitted = clone(models[kind]).fit(Xc[train], yc[train])
        holdout = float(roc_auc_score(yc[test], fitted.predict_proba(Xc[test])[:, 1]))
        # isotonic needs many rows; sigmoid (two parameters) is safer below that
        Xf, yf = X[fit_rows], y[fit_rows]
        if len(yf) < SPLIT_CALIBRATION_ROWS:
            method = "isotonic" if len(yf) >= 2000 else "sigmoid"
            final = CalibratedClassifierCV(clone(models[kind]), method=method, cv=3).fit(Xf, yf)
        else:
            final = Calibrated.fit(models[kind], Xf, yf, seed=seed)
            method = "isotonic" if isinstance(final.mapping, IsotonicRegression) else "sigmoid"
    return Choice(
        kind=kind,
        cv_auc={k: round(v, 4) for k, v in scores.items()},
        holdout_auc=holdout,
        model=final,
        n_train=int(len(y)),
        n_positive=int(y.sum()),
        details={"calibration": method, "chosen_on": int(len(yc)), "fitted_on": int(len(fit_rows))},
    )


def out_of_fold(
    model,
    X: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = FOLDS,
    seed: int = SEED,
    max_negatives: int = MAX_TRAIN_NEGATIVES,
) -> np.ndarray:
    """Each row's probability from a model that did not see it (stratified folds);
    each fold trains on at most `max_negatives` negatives (all positives)."""
    rng = np.random.default_rng(seed)
    oof = np.zeros(len(y))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(X, y):
        negatives = train[y[train] == 0]
        if len(negatives) > max_negatives:
            negatives = rng.choice(negatives, size=max_negatives, replace=False)
        rows = np.concatenate([train[y[train] == 1], negatives])
        fitted = clone(model).fit(X[rows], y[rows])
        oof[test] = fitted.predict_proba(X[test])[:, 1]
    return oof


def pairs_summary(auc: float | None, positive: str, negative: str) -> str:
    if auc is None:
        return "There was not enough data to check the model on customers it had not seen."
    return (
        f"Out of 100 pairs of {positive} and {negative} it had not seen, it ranked "
        f"the {positive.removeprefix('a ').removeprefix('an ')} higher "
        f"{round(100 * auc)} times (50 would be guessing)."
    )


def model_info(
    choice: Choice, features: FeatureMatrix, *, positive: str, negative: str
) -> ModelInfo:
    return ModelInfo(
        kind=choice.kind,
        features=features.feature_names(),
        excluded_sensitive=list(features.excluded_sensitive),
        holdout_auc=round(choice.holdout_auc, 4),
        summary=pairs_summary(choice.holdout_auc, positive, negative),
        details={
            "cv_auc": choice.cv_auc,
            "trained_on": choice.n_train,
            "positives": choice.n_positive,
            "skipped_columns": dict(features.skipped),
            **choice.details,
        },
    )


def ranked(ids: np.ndarray, scores: np.ndarray) -> dict[int, float | None]:
    order = np.lexsort((ids, -scores))
    return {int(ids[i]): round(float(scores[i]), 6) for i in order}


# --- reading the organisation's data ---------------------------------------------------
@dataclass
class Base:
    """The organisation's customers (sorted by id) and what they did."""

    now: dt.datetime
    customers: pd.DataFrame
    lines: pd.DataFrame
    events: pd.DataFrame

    @property
    def ids(self) -> np.ndarray:
        return self.customers["customer_id"].to_numpy(dtype=np.int64)

    @property
    def now_ns(self) -> int:
        return int(pd.Timestamp(self.now).as_unit("ns").value)

    def signup_ns(self) -> np.ndarray | None:
        if "signup_at" not in self.customers:
            return None
        return pd.DatetimeIndex(self.customers["signup_at"]).tz_convert("UTC").as_unit("ns").asi8

    def features(
        self,
        cutoff_ns: np.ndarray,
        *,
        organization,
        definition: dict[str, Any],
        event_types: list[str],
    ) -> FeatureMatrix:
        return combine(
            profile_and_attributes(
                self.customers,
                cutoff_ns=cutoff_ns,
                marked=[str(m) for m in (organization.sensitive_attributes or [])],
                use_sensitive=bool(definition.get("use_sensitive")),
            ),
            behaviour(
                self.ids,
                cutoff_ns,
                lines=self.lines,
                events=self.events,
                signup_ns=self.signup_ns(),
                event_types=event_types,
            ),
        )


def load_base(organization, *, event_days: int = EVENT_HISTORY_DAYS, sample=None) -> Base:
    """The organisation's customers and what they did; with a
    `customers.sampling.CustomerSample` (the preview's estimate), those of the sample."""
    from django.utils import timezone

    from customers.history import History

    now = timezone.now()
    history = History(organization, now.astimezone(dt.UTC).date(), sample=sample)
    # the audience models may use every imported column an owner kept, not only
    # the 20 most filled-in that segment profiles show
    customers = history.customers(max_attributes=MAX_ATTRIBUTES)
    if "customer_id" in customers and len(customers):
        customers = customers.sort_values("customer_id", kind="stable").reset_index(drop=True)
    return Base(
        now=now,
        customers=customers,
        lines=history.order_lines(),
        events=history.events(days=event_days),
    )


# what a model kind's preview says it is doing (`evaluation.progress`)
READING = "Reading your customers' orders and events"
DESCRIBING = "Describing each customer"
SCORING = "Scoring your customers"


def _fail(field_name: str, message: str, *, code: str = "not_enough_data") -> ApplicationError:
    return ApplicationError(message, {"fields": {field_name: message}}, code=code)


def _type_hint(events: pd.DataFrame) -> str:
    types = event_type_list(events)
    return f" Event types on record: {', '.join(types[:8])}." if types else " No events on record."


def usable(features: FeatureMatrix, rows: np.ndarray | None = None) -> FeatureMatrix:
    """The columns that vary among the training rows; an error when none does."""
    columns = features.informative(rows)
    if not columns:
        raise ApplicationError(
            "The customers have nothing that tells them apart yet: no custom columns, "
            "orders or events that differ from one customer to the next.",
            code="not_enough_data",
        )
    return features.select(columns)


# --- response --------------------------------------------------------------------------
def _first_times(events: pd.DataFrame, event_type: str) -> pd.Series:
    """Each customer's first event of a type (UTC ns), indexed by customer id."""
    mask = events["type"].astype(object).to_numpy() == event_type
    if not mask.any():
        return pd.Series(dtype=np.int64)
    t = pd.DatetimeIndex(events["occurred_at"][mask]).tz_convert("UTC").as_unit("ns").asi8
    frame = pd.DataFrame({"c": events["customer_id"].to_numpy()[mask], "t": t})
    return frame.groupby("c")["t"].min()


def response_times(base: Base, event: str) -> pd.DataFrame:
    """Every response: (customer id, UTC ns)."""
    parts = []
    ev = base.events
    if len(ev):
        mask = ev["type"].astype(object).to_numpy() == event
        if mask.any():
            parts.append(
                pd.DataFrame(
                    {
                        "c": ev["customer_id"].to_numpy()[mask],
                        "t": pd.DatetimeIndex(ev["occurred_at"][mask])
                        .tz_convert("UTC")
                        .as_unit("ns")
                        .asi8,
                    }
                )
            )
    if event.strip().lower() in ORDER_WORDS and len(base.lines):
        lines = base.lines
        bought = lines["amount"].to_numpy(dtype=np.float64) > 0
        parts.append(
            pd.DataFrame(
                {
                    "c": lines["customer_id"].to_numpy()[bought],
                    "t": pd.DatetimeIndex(lines["ordered_at"][bought])
                    .tz_convert("UTC")
                    .as_unit("ns")
                    .asi8,
                }
            )
        )
    if not parts:
        return pd.DataFrame({"c": np.empty(0, np.int64), "t": np.empty(0, np.int64)})
    return pd.concat(parts, ignore_index=True)


def response_evaluation(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    """Who should we contact next: the response model (see the module docstring).
    With a sample (the preview's estimate), learned from and scoring its customers."""
    exposure_event = definition["exposure_event"]
    event = definition["event"]
    within = int(definition.get("within_days", 30))
    progress(0.05, READING)
    base = load_base(organization, sample=sample)
    progress(0.35, f"Finding who responded to '{exposure_event}'")
    ids = base.ids
    exposed_at = _first_times(base.events, exposure_event) if len(base.events) else None
    if exposed_at is None or not len(exposed_at):
        raise _fail(
            "exposure_event",
            f"No customer has had a '{exposure_event}' event, so there is no past campaign "
            f"to learn from.{_type_hint(base.events)}",
        )
    responses = response_times(base, event)
    if not len(responses):
        raise _fail(
            "event",
            f"No customer has had a '{event}' event (use 'order' for orders)."
            f"{_type_hint(base.events)}",
        )
    exposed_at = exposed_at[exposed_at.index.isin(ids)]
    window = within * NS_PER_DAY
    joined = responses.merge(exposed_at.rename("e"), left_on="c", right_index=True)
    hit = (joined["t"] > joined["e"]) & (joined["t"] <= joined["e"] + window)
    responders = set(joined.loc[hit, "c"].astype(np.int64))

    exp_ids = exposed_at.index.to_numpy(dtype=np.int64)
    exp_t = exposed_at.to_numpy(dtype=np.int64)
    y_all = np.isin(exp_ids, list(responders)).astype(np.int64)
    closed = exp_t + window <= base.now_ns
    notes: list[str] = []
    # in a preview's sample, the count stands for everyone's
    recent = int((~closed).sum())
    recent_text = f"About {round(recent * sample.scale):,}" if sample is not None else f"{recent:,}"
    use = closed
    if (y_all[closed] == 1).sum() < MIN_CLASS or (y_all[closed] == 0).sum() < MIN_CLASS:
        use = np.ones(len(exp_ids), dtype=bool)
        if not closed.all():
            notes.append(
                f"{recent_text} customers had '{exposure_event}' less than {within} "
                "days ago and may still respond; they are counted as not responding so far."
            )
    elif not closed.all():
        notes.append(
            f"{recent_text} customers had '{exposure_event}' less than {within} days "
            "ago: left out of training until their window closes."
        )
    y = y_all[use]
    positives, negatives = int(y.sum()), int((y == 0).sum())
    if positives < MIN_CLASS or negatives < MIN_CLASS:
        missing = []
        if positives < MIN_CLASS:
            missing.append(f"only {positives} responded")
        if negatives < MIN_CLASS:
            missing.append(f"only {negatives} did not respond")
        raise _fail(
            "exposure_event" if len(y) < 2 * MIN_CLASS else "event",
            f"Of the {len(y):,} customers who had '{exposure_event}', "
            f"{' and '.join(missing)} ('{event}' within {within} days); the model needs at "
            f"least {MIN_CLASS} of each.",
        )

    # features: exposed customers as they were just before exposure, others as now
    cutoff = np.full(len(ids), base.now_ns, dtype=np.int64)
    row = np.searchsorted(ids, exp_ids)
    cutoff[row] = exp_t
    event_types = event_type_list(base.events, leave_out=(exposure_event,))
    progress(0.45, DESCRIBING)
    features = base.features(
        cutoff, organization=organization, definition=definition, event_types=event_types
    )
    features = usable(features, row[use])
    X = features.X
    progress(0.6, "Learning who responds")
    choice = choose_model(X[row[use]], y)
    progress(0.9, SCORING)
    candidates_mask = np.ones(len(ids), dtype=bool)
    candidates_mask[row] = False
    scores = choice.predict(X[candidates_mask]) if candidates_mask.any() else np.empty(0)
    info = model_info(choice, features, positive="a responder", negative="a non-responder")
    info.details.update({"exposed": int(len(exp_ids)), "within_days": within})
    return Evaluation(
        scores=ranked(ids[candidates_mask], scores),
        model=info,
        probabilities=True,
        notes=notes,
    )


# --- lookalike -------------------------------------------------------------------------
def seed_ids(definition: dict[str, Any]) -> tuple[set[int], list[str]]:
    """The seed's customer ids, and notes about seed ids that were not found."""
    from customers.models import Customer

    from .kinds import segment_member_ids

    seed: set[int] = set()
    notes: list[str] = []
    if definition.get("seed_segment_id"):
        seed |= segment_member_ids(definition["seed_segment_id"], "seed_segment_id")
    wanted = definition.get("seed_customer_ids") or []
    if wanted:
        found = dict(
            Customer.objects.filter(external_id__in=wanted, erased_at__isnull=True).values_list(
                "external_id", "pk"
            )
        )
        seed |= set(found.values())
        unknown = [w for w in wanted if w not in found]
        if unknown:
            shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
            notes.append(f"{len(unknown):,} seed customer ids were not found: {shown}")
    return seed, notes


def similarity_scores(X: np.ndarray, seed_mask: np.ndarray) -> np.ndarray:
    """Closeness to the seed's average on standardised (log-scaled) columns, 0..1."""
    Z = _log_columns(X, skewed_columns(X))
    Z = SimpleImputer(strategy="median", keep_empty_features=True).fit_transform(Z)
    sd = Z.std(axis=0)
    Z = (Z - Z.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    distance = np.sqrt(((Z - Z[seed_mask].mean(axis=0)) ** 2).mean(axis=1))
    return 1.0 / (1.0 + distance)


def lookalike_evaluation(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    """Non-seed customers ranked by likeness to the seed (see the module docstring).
    With a sample (the preview's estimate), among its customers: the seed customers
    in the sample against the others in it."""
    progress(0.02, "Finding the customers you chose")
    seed, notes = seed_ids(definition)
    field_name = "seed_segment_id" if definition.get("seed_segment_id") else "seed_customer_ids"
    if not seed:
        raise _fail(
            field_name,
            "None of the seed customers were found, so there is no one to match. "
            + " ".join(notes),
        )
    progress(0.05, READING)
    base = load_base(organization, event_days=EVENT_DAYS_NOW, sample=sample)
    ids = base.ids
    y = np.isin(ids, list(seed)).astype(np.int64)
    if not y.any():
        raise _fail(
            field_name, "None of the seed customers were found, so there is no one to match."
        )
    if (y == 0).sum() < 1:
        raise _fail(field_name, "Every customer is in the seed: there is no one else to rank.")
    cutoff = np.full(len(ids), base.now_ns, dtype=np.int64)
    progress(0.35, DESCRIBING)
    features = base.features(
        cutoff,
        organization=organization,
        definition=definition,
        event_types=event_type_list(base.events),
    )
    features = usable(features)
    X = features.X
    others = y == 0
    if y.sum() < MIN_SEED or others.sum() < MIN_SEED:
        where = " in the preview's sample" if sample is not None else ""
        notes.append(
            f"The seed has {int(y.sum())} customers{where}: too few to train a model on, so "
            "customers are ranked by how close they are to the seed's average."
        )
        scores = similarity_scores(X, y == 1)
        info = ModelInfo(
            kind="similarity",
            features=features.feature_names(),
            excluded_sensitive=list(features.excluded_sensitive),
            summary=(
                "Ranked by how close each customer is to the seed's average; the seed is too "
                "small to check how well that ranks."
            ),
            details={"seed": int(y.sum())},
        )
        return Evaluation(scores=ranked(ids[others], scores[others]), model=info, notes=notes)
    progress(0.5, "Learning what the customers you chose have in common")
    with threadpool_limits(limits=1, user_api="openmp"):
        models = candidates(X)
        oof = {name: out_of_fold(models[name], X, y) for name in ("gradient_boosting", "logistic")}
    oof[BLEND] = (oof["gradient_boosting"] + oof["logistic"]) / 2
    aucs = {name: float(roc_auc_score(y, p)) for name, p in oof.items()}
    kind = _pick(aucs)
    info = ModelInfo(
        kind=kind,
        features=features.feature_names(),
        excluded_sensitive=list(features.excluded_sensitive),
        holdout_auc=round(aucs[kind], 4),
        summary=pairs_summary(aucs[kind], "a seed customer", "another customer"),
        details={
            "cv_auc": {k: round(v, 4) for k, v in aucs.items()},
            "seed": int(y.sum()),
            "skipped_columns": dict(features.skipped),
        },
    )
    return Evaluation(scores=ranked(ids[others], oof[kind][others]), model=info, notes=notes)
