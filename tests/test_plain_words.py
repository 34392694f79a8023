"""Plain words first (issue 9): on every owner-facing page, model names and
statistics (silhouette, k-means, principal components, AUC, BG/NBD, Brier…) sit
in an "About this model" section (a <details> with a summary); the rest of the
page says what the figures mean for the shop.

The shop is a planted one (four kinds of customers with orders, products and
events) with a live segmentation (and its groups within segments) and a live
prediction run, plus one of every other object (an import, a job…). Each page's
<main> is read with the "About this model" sections taken out; no model term may
be left.

The predictions page itself is left out for now: its accuracy section is being
rewritten with the back-test (issue 9, "Predictions worth trusting").
"""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from accounts.tenancy import tenant_context

# whole words or phrases, case-insensitive
JARGON = (
    "silhouette",
    "k-means",
    "kmeans",
    "principal component",
    "AUC",
    "BG/NBD",
    "Gamma-Gamma",
    "Brier",
    "adjusted Rand",
    "centroid",
    "negative binomial",
    "exponential smoothing",
    "damped trend",
    "MAE",
    "log-likelihood",
    "gradient-boosted",
    "logistic regression",
    "RFM",
    "stability",
    "distinctness",
    "cluster",
)
PATTERN = re.compile(r"\b(" + "|".join(re.escape(w) for w in JARGON) + r")", re.I)
ABOUT = re.compile(r'<details\b[^>]*(?:id|class)="[^"]*about-model[^"]*"[^>]*>.*?</details>', re.S)


def plain_text(html: str) -> str:
    """The page's main content without its "About this model" sections, as text."""
    match = re.search(r"<main\b.*?</main>", html, re.S)
    assert match, "the page has no <main>"
    main = ABOUT.sub(" ", match.group(0))
    main = re.sub(r"<(script|style)\b.*?</\1>", " ", main, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", main))


@pytest.fixture
def world(org):
    from customers.models import OrderLine, Product
    from customers.tests.factories import build_world as customers_world
    from predictions.services import prediction_run
    from segmentation.tests.factories import planted_run

    planted_run(org, n_customers=1200)
    with tenant_context(org):
        # the product pages need products behind the order lines' skus
        skus = OrderLine.objects.exclude(sku="").values_list("sku", flat=True).distinct()
        Product.objects.bulk_create(
            [Product(organization=org, sku=sku, name=f"Product {sku}") for sku in skus],
            ignore_conflicts=True,
        )
        prediction_run(organization=org)
    customers_world(org)
    return org


def _pages(org) -> dict[str, str]:
    from customers.models import Customer, Import
    from predictions.models import ProductForecast
    from segmentation.models import Segment, SegmentKind

    with tenant_context(org):
        clusters = Segment.objects.filter(kind=SegmentKind.CLUSTER, is_active=True)
        top = clusters.filter(parent=None).order_by("pk")
        sub = clusters.filter(parent__isnull=False).order_by("pk").first()
        unsplit = top.exclude(pk__in=clusters.values("parent_id")).first()
        rfm = Segment.objects.filter(kind=SegmentKind.RFM, is_active=True).first()
        customer = Customer.objects.order_by("-orders_count", "pk").first()
        forecast = ProductForecast.objects.exclude(product=None).order_by("-total_4w").first()
        an_import = Import.objects.order_by("pk").first()
    assert sub is not None and forecast is not None and an_import is not None
    from research.tests.factories import build_world as research_world

    research = research_world(org)
    with tenant_context(org):  # the theme page's table per segment, with a real segment
        theme = research["theme"]
        theme.by_segment = [{"segment_id": top.first().pk, "count": 1, "share": 1.0}]
        theme.save()
    pages = {
        "dashboard": reverse("core:dashboard"),
        "segments": reverse("segmentation:segments"),
        "segment": reverse("segmentation:segment_detail", args=[top.first().pk]),
        "group within a segment": reverse("segmentation:segment_detail", args=[sub.pk]),
        "classic group": reverse("segmentation:segment_detail", args=[rfm.pk]),
        "personas": reverse("segmentation:personas"),
        "customers": reverse("customers:list"),
        "customer": reverse("customers:detail", args=[customer.pk]),
        "products": reverse("customers:products"),
        "product": reverse("customers:product", args=[forecast.product_id]),
        "imports": reverse("customers:imports"),
        "import": reverse("customers:import_detail", args=[an_import.pk]),
        "predicted customers": reverse("segmentation:prediction_customers"),
        "product demand": reverse("segmentation:prediction_product", args=[forecast.pk]),
        "prediction runs": reverse("segmentation:prediction_runs"),
        "offers": reverse("offers:list"),
        "loyalty": reverse("loyalty:page"),
        "research": reverse("research:overview"),
        "research theme": reverse("research:theme", args=[research["theme"].pk]),
        "feedback": reverse("research:feedback"),
    }
    if unsplit is not None:
        pages["segment not split"] = reverse("segmentation:segment_detail", args=[unsplit.pk])
    return pages


def test_owner_pages_keep_model_terms_in_about_this_model(world, owner_client):
    found = {}
    for name, path in _pages(world).items():
        response = owner_client.get(path)
        assert response.status_code == 200, (name, path, response.status_code)
        text = plain_text(response.content.decode())
        hits = sorted({m.group(0) for m in PATTERN.finditer(text)})
        if hits:
            found[f"{name} ({path})"] = hits
    assert not found, found


def test_the_scan_sees_jargon_outside_and_not_inside_about_this_model():
    html = (
        "<main><p>Segments overlap a little.</p>"
        '<details id="about-model"><summary>About this model</summary>'
        "<p>k-means, silhouette 0.31</p></details>"
        '<details class="about-model"><summary>About this model</summary>AUC 0.7</details>'
        "<p>Separation (silhouette) 0.31</p></main>"
    )
    text = plain_text(html)
    assert [m.group(0) for m in PATTERN.finditer(text)] == ["silhouette"]
