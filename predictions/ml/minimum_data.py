"""Minimum-data rules for the predictive models.

A model fitted on a handful of customers still produces numbers, and those
numbers look just as confident as good ones. These rules decide when to show
simple, labelled averages instead, and say in plain words what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

MIN_REPEAT_CUSTOMERS = 100
MIN_HISTORY_DAYS = 90


@dataclass(frozen=True)
class DataCheck:
    """Outcome of the minimum-data rules.

    ``ok`` is False when any rule failed; ``missing`` holds one sentence per
    failed rule, written for the shop owner.
    """

    ok: bool
    missing: list[str] = field(default_factory=list)
    n_customers: int = 0
    n_repeat_customers: int = 0
    history_days: int = 0

    @property
    def message(self) -> str:
        if self.ok:
            return "There is enough order history for the prediction models."
        return " ".join(self.missing) + " Until then the figures are simple averages."

    def with_problem(self, sentence: str) -> DataCheck:
        return replace(self, ok=False, missing=[*self.missing, sentence])

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "missing": list(self.missing),
            "message": self.message,
            "n_customers": self.n_customers,
            "n_repeat_customers": self.n_repeat_customers,
            "history_days": self.history_days,
        }


def check_minimum_data(
    *,
    n_customers: int,
    n_repeat_customers: int,
    history_days: int,
    min_repeat_customers: int = MIN_REPEAT_CUSTOMERS,
    min_history_days: int = MIN_HISTORY_DAYS,
) -> DataCheck:
    """Apply the rules: enough customers who came back, and a long enough history."""
    missing: list[str] = []
    if n_customers == 0:
        missing.append("There are no orders yet.")
    elif n_repeat_customers < min_repeat_customers:
        missing.append(
            f"Only {n_repeat_customers} customer{'s have' if n_repeat_customers != 1 else ' has'}"
            f" ordered more than once; the models need at least {min_repeat_customers}."
        )
    if n_customers and history_days < min_history_days:
        missing.append(
            f"The order history covers {history_days} day{'s' if history_days != 1 else ''};"
            f" the models need at least {min_history_days}."
        )
    return DataCheck(
        ok=not missing,
        missing=missing,
        n_customers=int(n_customers),
        n_repeat_customers=int(n_repeat_customers),
        history_days=int(history_days),
    )
