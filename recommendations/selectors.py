"""Reading recommendations: the live run, one customer's products (with the cold
start for customers who bought nothing), a product's "bought together", the
evaluation in plain words, and the pages' panels."""

from __future__ import annotations

from core.exceptions import ApplicationError

from .ml import KIND_LABELS
from .models import CustomerRecommendation, ProductRelation, RecommendationRun

MODEL_NAMES = {
    "popularity": "Popularity (most distinct buyers)",
    "segment_popularity": "Popularity within the customer's segment",
    "item_knn": "Item-to-item co-purchase similarity (cosine, item-kNN)",
    "ease": "EASE (closed-form linear item model)",
    "als": "Implicit-feedback matrix factorisation (ALS)",
}
NO_MODEL = "No recommendations yet: run the recommendations step first."


class NoModel(ApplicationError):
    def __init__(self):
        super().__init__(NO_MODEL, code="no_model", status=404)


def live_run() -> RecommendationRun | None:
    return RecommendationRun.objects.filter(is_live=True).first()


def _servable(qs, field: str):
    """Products that may be recommended now (the owner may have hidden one since)."""
    return (
        qs.exclude(**{f"{field}__hidden": True})
        .exclude(**{f"{field}__merchandise": False})
        .exclude(**{f"{field}__in_stock": False})
    )


def _products_in_order(ids: list[int]) -> list:
    from customers.models import Product

    found = {
        p.pk: p
        for p in Product.objects.filter(pk__in=ids, hidden=False, merchandise=True).exclude(
            in_stock=False
        )
    }
    return [found[i] for i in ids if i in found]


def _item(product, score: float, reason: str) -> dict:
    return {"sku": product.sku, "name": product.name or product.sku, "score": round(float(score), 6),
            "reason": reason}  # fmt: skip


def customer_recommendations(
    *, customer, limit: int = 10, with_evaluation: bool = False
) -> tuple[RecommendationRun, list[dict]]:
    """(live run, best-first items) for one customer; raises NoModel before any run.
    A customer with nothing bought gets their segment's popular products.
    `with_evaluation`: the run's evaluation is read with it (the customer page shows
    it), not in a second query."""
    # the API's hot path: the run's large JSON columns are read only for a cold start
    deferred = ("popular",) if with_evaluation else ("evaluation", "popular")
    run = RecommendationRun.objects.filter(is_live=True).defer(*deferred).first()
    if run is None:
        raise NoModel()
    rows = list(
        _servable(
            CustomerRecommendation.objects.filter(run=run, customer_id=customer.pk), "product"
        )
        .select_related("product")
        .order_by("rank")[:limit]
    )
    if rows:
        return run, [_item(r.product, r.score, r.reason) for r in rows]
    from segmentation.selectors import customer_segments

    segment = customer_segments(customer_ids=[customer.pk])[customer.pk]["segment"]
    popular = run.popular or {}
    ids = (popular.get("segments") or {}).get(str(segment["id"])) if segment else None
    reason = f"Popular with {segment['name']}" if ids else "One of the best-sellers"
    ids = ids or popular.get("overall") or []
    products = _products_in_order(ids)[:limit]
    n = len(products)
    return run, [_item(p, (n - i) / n, reason) for i, p in enumerate(products)]


def product_related(*, product, limit: int = 10) -> list[dict]:
    """Products bought together with `product`; a product nobody bought yet gets its
    category's best-sellers. Raises NoModel before any run."""
    run = live_run()
    if run is None:
        raise NoModel()
    rows = list(
        _servable(ProductRelation.objects.filter(run=run, product_id=product.pk), "related")
        .select_related("related")
        .order_by("rank")[:limit]
    )
    if rows:
        return [
            _item(
                r.related,
                r.score,
                f"Bought together by {r.buyers:,} customer{'s' if r.buyers != 1 else ''}",
            )
            for r in rows
        ]
    ids = [i for i in (run.popular or {}).get("categories", {}).get(product.category or "", [])
           if i != product.pk]  # fmt: skip
    products = _products_in_order(ids)[:limit]
    n = len(products)
    return [_item(p, (n - i) / n, f"Popular in {product.category}") for i, p in enumerate(products)]


def model_latest() -> dict | None:
    run = live_run()
    if run is None:
        return None
    keys = ("kind", "precision_at_10", "recall_at_10", "map_at_10", "coverage", "customers")
    return {
        "served": run.served,
        "trained_at": run.trained_at,
        "cutoff": run.cutoff,
        "repeats": run.repeats,
        "repeats_setting": run.repeats_setting,
        "evaluation": [{k: e.get(k) for k in keys} for e in run.evaluation],
    }


def _pct(value) -> str:
    return f"{100 * (value or 0):.0f}%"


def _in_100(value: float | None) -> str:
    return f"{100 * (value or 0):.0f} in every 100"


def evaluation_sentence(run: RecommendationRun) -> str:
    """ "On your past orders, 18 in every 100 of these suggestions were bought next;
    of best-sellers alone, 7 in 100." (precision at 10 on the hold-out: the figure the
    method in use was chosen by, so the sentence and the chart agree with the choice)."""
    served = run.entry(run.served) or {}
    popularity = run.entry("popularity") or {}
    if not served.get("customers"):
        return "Too few customers have bought twice to check these recommendations yet."
    if run.served == "popularity":
        return (
            f"On your past orders, {_in_100(served.get('precision_at_10'))} best-seller "
            "suggestions were bought next, and no other method did better for your shop, so "
            "best-sellers are shown."
        )
    return (
        f"On your past orders, {_in_100(served.get('precision_at_10'))} of these suggestions "
        f"were bought next; of best-sellers alone, {_in_100(popularity.get('precision_at_10'))}."
    )


def about(run: RecommendationRun) -> dict:
    return {
        "served_label": KIND_LABELS.get(run.served, run.served),
        "served_name": MODEL_NAMES.get(run.served, run.served),
        "served_plain": PLAIN_NAMES.get(run.served, run.served),
        "rows": [
            {
                **e,
                "name": MODEL_NAMES.get(e.get("kind"), e.get("kind")),
                "served": e.get("kind") == run.served,
            }
            for e in run.evaluation
        ],  # fmt: skip
        "sentence": evaluation_sentence(run),
    }


# Each method in plain words, for the page's chart (model names stay in "About this
# model").
PLAIN_NAMES = {
    "popularity": "Best-sellers",
    "segment_popularity": "Best-sellers of the customer's segment",
    "item_knn": "Often bought together",
    "ease": "Bought together, weighed over the whole catalogue",
    "als": "Customers with similar baskets",
}


def hit_rate_bars(run: RecommendationRun) -> list[dict]:
    """One bar per method tried: how many of every 100 of its suggestions were bought
    next (precision at 10, the figure the method in use is chosen by), widths
    relative to the best."""
    entries = [e for e in run.evaluation if e.get("precision_at_10") is not None]
    top = max((e["precision_at_10"] for e in entries), default=0.0) or 1.0
    return [
        {
            "kind": e["kind"],
            "label": PLAIN_NAMES.get(e["kind"], e["kind"]),
            "percent": round(100 * e["precision_at_10"], 1),
            "width": round(100 * e["precision_at_10"] / top, 1),
            "served": e["kind"] == run.served,
        }
        for e in sorted(entries, key=lambda e: -e["precision_at_10"])
    ]


def most_recommended(run: RecommendationRun, *, limit: int = 10) -> list[dict]:
    """The products given to the most customers in `run`, with how many get each
    (hidden or out-of-stock products are left out, as when served)."""
    from django.db.models import Count

    from customers.models import Product

    stored = (run.popular or {}).get("most_recommended")
    if stored is None:  # a run from before the count was kept: count the rows
        stored = list(
            _servable(CustomerRecommendation.objects.filter(run=run), "product")
            .values("product_id")
            .annotate(n=Count("id"))
            .order_by("-n", "product_id")
            .values_list("product_id", "n")[: limit * 2]
        )
    counts = {int(pid): int(n) for pid, n in stored}
    products = Product.objects.filter(pk__in=list(counts), hidden=False, merchandise=True).exclude(
        in_stock=False
    )
    found = {p.pk: p for p in products}
    return [
        {"product": found[pid], "customers": n, "share": n / max(run.n_customers, 1)}
        for pid, n in counts.items()
        if pid in found
    ][:limit]


def repeats_sentence(run: RecommendationRun) -> str:
    """Whether the live run recommends products customers bought before, and why."""
    if run.repeats_setting == "always":
        return "Products a customer bought before are recommended again, as your setting asks."
    if run.repeats_setting == "never":
        return "Products a customer bought before are not recommended again, as your setting asks."
    if run.repeats:
        return (
            "Products a customer bought before may be recommended again: on your past "
            "orders, this found more of what customers bought next."
        )
    return (
        "Products a customer bought before are not recommended again: in your history this "
        "found more of what customers bought next."
    )


def customer_panel(*, request, customer) -> dict | None:
    """The customer page's "Recommended products" place."""
    try:
        run, items = customer_recommendations(customer=customer, limit=5, with_evaluation=True)
    except NoModel:
        return None
    if not items:
        return None
    return {
        "template": "recommendations/_customer_recommendations.html",
        "context": {"items": items, "run": run, "about": about(run)},
    }


def product_panel(*, request, product) -> dict | None:
    """The product page's "Bought together" place."""
    try:
        items = product_related(product=product, limit=5)
    except NoModel:
        return None
    if not items:
        return None
    return {"template": "recommendations/_product_related.html", "context": {"items": items}}


def person_export(*, customer) -> dict:
    """One person's recommendations in the live run, for their export."""
    live = RecommendationRun.objects.filter(is_live=True).values_list("pk", flat=True).first()
    rows = (
        CustomerRecommendation.objects.filter(run_id=live, customer_id=customer.pk)
        .select_related("product")
        .order_by("rank")
    )
    return {
        "recommendations": [
            {
                "rank": r.rank,
                "sku": r.product.sku,
                "name": r.product.name,
                "score": r.score,
                "reason": r.reason,
            }
            for r in rows
        ]  # fmt: skip
    }


def org_export() -> list[tuple[str, list[str], object]]:
    """The live run's recommendations per customer, for the organisation's zip."""
    fields = ["customer__external_id", "rank", "product__sku", "score", "reason"]
    rows = (
        CustomerRecommendation.objects.filter(run__is_live=True, customer__erased_at__isnull=True)
        .order_by("customer_id", "rank")
        .values_list(*fields)
        .iterator(chunk_size=2000)
    )
    return [("recommendations.csv", ["customer_id", "rank", "sku", "score", "reason"], rows)]


def erase_customers(*, organization, customer_ids: list[int]) -> None:
    from .services import recommendations_erase_customers

    recommendations_erase_customers(organization=organization, customer_ids=customer_ids)
