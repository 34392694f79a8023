"""Evaluate a cleaned audience definition into an `Evaluation` (audiences/evaluation.py).

One function per kind; `evaluate()` dispatches. Each reads through the tenant-
scoped managers of the current organisation and leaves erased customers out.
The scored kinds that train a model live beside their maths: `response` and
`lookalike` in `audiences/ml.py`, `location` in `stores/geo.py`.

With a `customers.sampling.CustomerSample` (the preview's estimate on a big
organisation), every kind reads and scores the customers of the sample only, and
its counts are counts of the sample; the services scale them up. A build never
passes one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from core.exceptions import ApplicationError

from .evaluation import Evaluation, ModelInfo

# The kinds that fit a model to the organisation's data when evaluated: seconds of
# work on a big organisation even on the preview's sample, so their preview runs as
# a background job (services.audience_preview_request). The others select or read
# stored predictions and answer within a request.
MODEL_KINDS = frozenset({"response", "lookalike"})
MODEL_GOALS = frozenset({"buy_category"})


def trains_model(definition: dict[str, Any]) -> bool:
    """Whether evaluating this cleaned definition fits a model (response, lookalike,
    and the goal `buy_category`, learned here rather than by the prediction run)."""
    kind = definition.get("kind")
    return kind in MODEL_KINDS or (kind == "goal" and definition.get("goal") in MODEL_GOALS)


def evaluate(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    """`definition` must come from `definitions.definition_clean`."""
    handler = _HANDLERS[definition["kind"]]
    return handler(definition, organization=organization, sample=sample)


def _segment(segment_id: int, field: str):
    from segmentation.models import Segment

    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        raise ApplicationError(
            f"There is no segment {segment_id}.",
            {"fields": {field: f"There is no segment {segment_id}."}},
            code="invalid_definition",
        )
    return segment


def segment_member_ids(segment_id: int, field: str = "include", *, sample=None) -> set[int]:
    from segmentation.selectors import segment_members

    segment = _segment(segment_id, field)
    members = segment_members(segment=segment)
    if sample is not None:
        members = members.filter(sample.lookup("pk"))
    return set(members.values_list("pk", flat=True))


def _segments(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    groups = [segment_member_ids(s, "include", sample=sample) for s in definition["include"]]
    if definition.get("match") == "all":
        chosen = set.intersection(*groups) if groups else set()
    else:
        chosen = set().union(*groups)
    for segment_id in definition.get("exclude", []):
        chosen -= segment_member_ids(segment_id, "exclude", sample=sample)
    return Evaluation(scores={pk: None for pk in sorted(chosen)})


def _rules(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    from segmentation.services.rules import rule_customers

    customers = rule_customers(definition["rule"])
    if sample is not None:
        customers = customers.filter(sample.lookup("pk"))
    ids = customers.order_by("pk").values_list("pk", flat=True)
    return Evaluation(scores={pk: None for pk in ids})


def _live_predictions(sample=None):
    from predictions.models import CustomerPrediction, PredictionRun

    run = PredictionRun.objects.filter(is_live=True).first()
    if run is None:
        raise ApplicationError(
            "Predictions have not run yet: run them (Predictions, Run now) before building "
            "an audience from a goal.",
            code="no_model",
            status=409,
        )
    rows = CustomerPrediction.objects.filter(run=run, customer__erased_at__isnull=True)
    if sample is not None:
        rows = rows.filter(sample.lookup("customer_id"))
    rows = rows.values_list(
        "customer_id",
        "expected_orders_30d",
        "expected_orders_90d",
        "propensity",
        "churn_probability",
        "predicted_clv_365d",
    )
    return run, list(rows)


def _auc_summary(auc: float | None, what: str) -> str:
    if auc is None:
        return f"There was not enough history to check how well {what} ranked customers."
    return (
        f"On past data it ranked a customer who went on to {what} above one who did not "
        f"{round(100 * auc)} times in 100 (50 would be guessing)."
    )


def _goal(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    goal = definition["goal"]
    if goal == "buy_category":
        from .goals import buy_category_evaluation

        return buy_category_evaluation(definition, organization=organization, sample=sample)
    run, rows = _live_predictions(sample)
    propensity = run.propensity or {}
    if goal == "order_soon":
        days = int(definition.get("days", 30))
        scores: dict[int, float | None] = {}
        for customer_id, e30, e90, p30, _churn, _clv in rows:
            if days == 30 and p30 is not None:
                p = float(p30)
            else:
                # expected orders over the window, read off the 30/90-day figures,
                # as the chance of at least one (Poisson)
                rate = (e90 / 90.0) if e90 is not None else (e30 or 0) / 30.0
                p = 1.0 - math.exp(-max(rate, 0.0) * days)
            scores[customer_id] = round(p, 6)
        auc = propensity.get("auc")
        model = ModelInfo(
            kind=_served(run, "propensity") or "propensity",
            features=list(propensity.get("features") or []),
            holdout_auc=auc,
            summary=_auc_summary(auc, f"order within {days} days"),
        )
        return Evaluation(scores=_ranked(scores), model=model, probabilities=True)
    # high value at risk: the value that would be lost, churn chance x a year's value
    scores = {}
    for customer_id, _e30, _e90, _p30, churn, clv in rows:
        if churn is None or clv is None:
            continue
        scores[customer_id] = round(float(churn) * max(float(clv), 0.0), 4)
    candidates = (run.backtest or {}).get("candidates") or {}
    churn_auc = ((candidates.get("scores") or {}).get("churn") or {}).get(
        _served(run, "churn") or ""
    )
    model = ModelInfo(
        kind="churn_x_value",
        features=["churn_probability", "predicted_clv_365d"],
        holdout_auc=churn_auc,
        summary=(
            "Scored by the value at stake: the chance a customer stops ordering times what "
            "they would spend in the next 12 months. " + _auc_summary(churn_auc, "stop ordering")
        ),
    )
    return Evaluation(scores=_ranked(scores), model=model)


def _served(run, what: str) -> str | None:
    served = (run.summary or {}).get("served")
    return served.get(what) if isinstance(served, dict) else None


def _ranked(scores: dict[int, float | None]) -> dict[int, float | None]:
    return dict(sorted(scores.items(), key=lambda kv: (-(kv[1] or 0.0), kv[0])))


def _response(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    from .ml import response_evaluation

    return response_evaluation(definition, organization=organization, sample=sample)


def _lookalike(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    from .ml import lookalike_evaluation

    return lookalike_evaluation(definition, organization=organization, sample=sample)


def _location(definition: dict[str, Any], *, organization, sample=None) -> Evaluation:
    from stores.geo import location_evaluation

    return location_evaluation(definition, organization=organization, sample=sample)


_HANDLERS: dict[str, Callable[..., Evaluation]] = {
    "segments": _segments,
    "rules": _rules,
    "goal": _goal,
    "response": _response,
    "lookalike": _lookalike,
    "location": _location,
}

__all__ = ["evaluate", "segment_member_ids", "trains_model"]
