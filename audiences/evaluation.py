"""What evaluating an audience definition gives back, whatever its kind.

Every kind (`audiences/kinds.py` dispatches) turns a cleaned definition into an
`Evaluation`: the candidate customers, best first, each with a score (None for
kinds that only select, such as segments, rules and regions), plus what the
preview and the audience page show beside the list. Nothing here touches the
database; the kinds read it, the services store it.

`progress(share, message)` lets a kind say how far it has come (the preview job's
progress bar, a build's) without knowing who listens: the job sets a listener for
the evaluation with `progress_to`; anywhere else the calls do nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

_listener: ContextVar[Callable[[float, str], None] | None] = ContextVar(
    "audiences_progress", default=None
)


@contextmanager
def progress_to(listener: Callable[[float, str], None]) -> Iterator[None]:
    """Send the `progress` reports of the evaluations run in this block to
    `listener(share, message)`; it may raise (a job's cancel check) to stop them."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def progress(share: float, message: str) -> None:
    """Evaluating has come `share` (0..1) of the way and is now doing `message`."""
    listener = _listener.get()
    if listener is not None:
        listener(min(max(float(share), 0.0), 1.0), message)


@dataclass
class ModelInfo:
    """The model behind a scored audience (goal, response, lookalike)."""

    kind: str  # e.g. "gradient_boosting", "logistic", "propensity", "similarity"
    features: list[str] = field(default_factory=list)
    excluded_sensitive: list[str] = field(default_factory=list)
    holdout_auc: float | None = None
    # a plain-words sentence for the owner ("Picked the right customer over a wrong
    # one 84 times in 100 on customers it had not seen")
    summary: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    def as_api(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "features": list(self.features),
            "excluded_sensitive": list(self.excluded_sensitive),
            "holdout_auc": None if self.holdout_auc is None else round(float(self.holdout_auc), 4),
            "summary": self.summary,
        }


@dataclass
class Evaluation:
    # customer id -> score (higher is better) or None; insertion order is the rank
    # (best first) for scored kinds; the services sort by score anyway
    scores: dict[int, float | None]
    # customers the kind could not decide on (location: no coordinates, postcode or
    # region to place them); None when the kind places everyone
    unplaced: int | None = None
    model: ModelInfo | None = None
    # expected conversions among the *whole* candidate list (sum of probabilities)
    # where the scores are probabilities; the services recompute it for `size`/
    # `min_score` from `probabilities`
    probabilities: bool = False
    notes: list[str] = field(default_factory=list)
