"""The customer page's "Loyalty" card: the customer's tier, points, progress to the
next tier ("£42 more to reach Gold"), since when, and — for members who may change
data — a button exchanging points for an amount off."""

from __future__ import annotations

from typing import Any

from accounts.actor import Actor

from . import pages


def customer_panel(*, request, customer) -> dict[str, Any] | None:
    from .selectors import customer_loyalty, program_live

    organization = request.organization
    # read once and handed on: customer_loyalty reads the tiers it needs
    program = program_live()
    can_edit = (
        getattr(request, "membership", None) is not None and Actor.from_request(request).can_edit
    )
    if program is None:
        return {
            "template": "loyalty/_customer_panel.html",
            "context": {"program": None, "can_edit": can_edit},
        }
    currency = organization.currency
    info = customer_loyalty(customer=customer, program=program)
    context: dict[str, Any] = {
        "program": program,
        "info": info,
        "can_edit": can_edit,
        "reward_words": (
            f"Exchange {program.reward_points:,} points for "
            f"{pages.money(program.reward_value, currency)} off"
        ),
        "reward_points": program.reward_points,
    }
    if info:
        metric = info.get("metric") or program.metric
        progress = float(info.get("progress") or 0)
        context.update(
            {
                "percent": max(0, min(100, round(100 * progress))),
                "remaining_words": pages.remaining_words(info.get("remaining"), metric, currency),
                "metric_words": (
                    pages.money(info.get("metric_value") or 0, currency) + " spent"
                    if metric == "spend"
                    else f"{pages.number(info.get('metric_value') or 0)} orders"
                ),
                "period_words": pages.period_words(
                    int(info.get("period_days") or program.period_days)
                ),
                "enough_points": (info.get("points") or 0) >= program.reward_points,
            }
        )
    return {"template": "loyalty/_customer_panel.html", "context": context}
