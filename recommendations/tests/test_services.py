"""The recommendations step on a planted world in the database: the planted pairs
are what is served and explained, business rules hold when serving, the live run
is what the API and the pages show, and erasure removes a person's rows."""

from __future__ import annotations

import pytest

from accounts.tenancy import tenant_context
from customers.models import Customer, Product
from predictions.tests.factories import write_world
from recommendations.models import CustomerRecommendation, ProductRelation, RecommendationRun
from recommendations.services import recommendations_run
from recommendations.tests.factories import planted_world


@pytest.fixture
def planted(org):
    pk_of = write_world(org, planted_world())
    return pk_of


def _run(org):
    with tenant_context(org):
        return recommendations_run(organization=org)


def test_step_serves_the_planted_pattern_and_explains_it(org, planted):
    run = _run(org)
    kinds = {e["kind"]: e for e in run.evaluation}
    assert {"popularity", "segment_popularity", "item_knn", "ease"} <= set(kinds)
    assert run.served not in ("popularity", "segment_popularity")
    assert kinds[run.served]["precision_at_10"] > kinds["popularity"]["precision_at_10"]
    with tenant_context(org):
        customer = Customer.objects.get(pk=planted[1])
        rows = list(CustomerRecommendation.objects.filter(run=run, customer=customer))
        assert 1 <= len(rows) <= 10
        related = list(
            ProductRelation.objects.filter(run=run, product__sku="SKU-0").select_related("related")
        )
        assert related[0].related.sku == "SKU-1"
        assert related[0].buyers > 0
    # a customer who bought one product of a pair gets its partner first, and why
    with tenant_context(org):
        lone = Customer.objects.get(pk=planted[3])
        sku = Product.objects.get(lines__order__customer=lone).sku
        top = CustomerRecommendation.objects.filter(run=run, customer=lone, rank=1).get()
        n = int(sku.split("-")[1])
        assert top.product.sku == f"SKU-{n ^ 1}"
        assert top.reason == f"Bought with Product {sku}"


def test_hidden_out_of_stock_and_non_merchandise_products_are_never_recommended(org, planted):
    with tenant_context(org):
        Product.objects.filter(sku="SKU-1").update(hidden=True)
        Product.objects.filter(sku="SKU-3").update(in_stock=False)
        Product.objects.filter(sku="SKU-5").update(merchandise=False)
    run = _run(org)
    banned = {"SKU-1", "SKU-3", "SKU-5"}
    with tenant_context(org):
        recommended = set(
            CustomerRecommendation.objects.filter(run=run).values_list("product__sku", flat=True)
        )
        related = set(
            ProductRelation.objects.filter(run=run).values_list("related__sku", flat=True)
        )
        assert recommended and related
        assert not recommended & banned
        assert not related & banned
        popular = set(
            Product.objects.filter(pk__in=run.popular["overall"]).values_list("sku", flat=True)
        )
        assert popular and not popular & banned


def test_a_new_run_replaces_the_live_one_and_erasure_removes_rows(org, planted):
    first = _run(org)
    second = _run(org)
    with tenant_context(org):
        assert list(RecommendationRun.objects.filter(is_live=True)) == [second]
        first.refresh_from_db()
        assert not first.is_live
        from customers.services.privacy import customer_erase  # noqa: F401
        from recommendations.selectors import erase_customers

        customer_id = planted[1]
        assert CustomerRecommendation.objects.filter(customer_id=customer_id).exists()
        erase_customers(organization=org, customer_ids=[customer_id])
        assert not CustomerRecommendation.objects.filter(customer_id=customer_id).exists()


def test_api_before_and_after_the_first_run(api_read, org, planted):
    customer_id = planted[1]
    r = api_read.get(f"/api/v1/customers/{customer_id}/recommendations/")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_model"
    assert api_read.get("/api/v1/recommendations/models/latest/").status_code == 404
    run = _run(org)
    body = api_read.get(f"/api/v1/customers/{customer_id}/recommendations/?limit=3").json()
    assert body["model"] == run.served
    assert 1 <= len(body["results"]) <= 3
    assert set(body["results"][0]) == {"sku", "name", "score", "reason"}
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert (
        api_read.get(f"/api/v1/customers/{customer_id}/recommendations/?limit=0").status_code == 400
    )

    latest = api_read.get("/api/v1/recommendations/models/latest/").json()
    assert latest["served"] == run.served
    assert {"trained_at", "cutoff", "evaluation"} <= set(latest)
    assert "popularity" in {e["kind"] for e in latest["evaluation"]}
    assert set(latest["evaluation"][0]) == {
        "kind",
        "precision_at_10",
        "recall_at_10",
        "map_at_10",
        "coverage",
        "customers",
    }

    with tenant_context(org):
        product = Product.objects.get(sku="SKU-0")
    related = api_read.get(f"/api/v1/products/{product.pk}/related/").json()["results"]
    assert related[0]["sku"] == "SKU-1"
    assert related[0]["reason"].startswith("Bought together by ")


def test_cold_start_gets_popular_products(api_read, org, planted):
    _run(org)
    with tenant_context(org):
        newcomer = Customer.objects.create(organization=org, external_id="NEW-1")
        lonely = Product.objects.create(organization=org, sku="NEW-SKU", category="Gifts")
    body = api_read.get(f"/api/v1/customers/{newcomer.pk}/recommendations/").json()
    assert len(body["results"]) == 10
    assert body["results"][0]["reason"] in ("One of the best-sellers",) or body["results"][0][
        "reason"
    ].startswith("Popular with ")
    related = api_read.get(f"/api/v1/products/{lonely.pk}/related/").json()["results"]
    assert related and related[0]["reason"] == "Popular in Gifts"


def test_customer_and_product_pages_show_the_panels(owner_client, org, planted):
    _run(org)
    customer_id = planted[1]
    html = owner_client.get(f"/customers/{customer_id}/").content.decode()
    assert 'id="panel-recommendations"' in html
    assert "were bought next" in html
    assert "About this model" in html
    assert "appear here after the first recommendations run" not in html
    with tenant_context(org):
        product = Product.objects.get(sku="SKU-0")
    html = owner_client.get(f"/customers/products/{product.pk}/").content.decode()
    assert "Bought together" in html and "SKU-1" in html


# Every model of this app, with what erasure does to its rows and whether each export
# (one person's JSON, the organisation's zip) carries it. A new model must be added
# here, which makes its author decide both.
RECOMMENDATION_TABLES = {
    "RecommendationRun": ("no personal data (evaluation, popular products)", None, None),
    "CustomerRecommendation": ("deleted", "person", "org"),
    "ProductRelation": ("no personal data (product to product)", None, None),
    "RecommendationSettings": ("no personal data (the owner's choices)", None, None),
}


def test_personal_tables_are_erased_and_exported(org, owner, planted):
    import io
    import zipfile
    from pathlib import Path

    from django.apps import apps
    from django.conf import settings

    from customers.services.privacy import (
        customer_erase,
        customer_export_data,
        organization_export_run,
    )

    assert {m.__name__ for m in apps.get_app_config("recommendations").get_models()} == set(
        RECOMMENDATION_TABLES
    )
    _run(org)
    with tenant_context(org):
        customer = Customer.objects.get(pk=planted[1])
        exported = customer_export_data(customer=customer)
        mine = list(
            CustomerRecommendation.objects.filter(customer=customer)
            .order_by("rank")
            .values_list("product__sku", flat=True)
        )
        assert [r["sku"] for r in exported["recommendations"]] == mine and mine

        from core.models import Job

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            text = io.TextIOWrapper(archive.open("recommendations.csv"), encoding="utf-8").read()
        assert text.splitlines()[0] == "customer_id,rank,sku,score,reason"
        assert result["files"]["recommendations.csv"] == CustomerRecommendation.objects.count()
        assert customer.external_id in text

        customer_erase(customer=customer, actor=owner)
        assert not CustomerRecommendation.objects.filter(customer_id=planted[1]).exists()


def test_pipeline_runs_the_step_after_predictions(org, planted):
    from segmentation.pipeline import available_steps, pipeline_start

    names = [s.name for s in available_steps()]
    assert names.index("recommendations") > names.index("predictions")
    with tenant_context(org):
        result = pipeline_start(organization=org, steps=["recommendations"], sync=True)
        assert result["status"] == "succeeded", result
        run = RecommendationRun.objects.get(is_live=True)
        assert result["runs"]["recommendations"] == run.pk


def test_orders_without_products_leave_nothing_to_recommend_without_failing(org):
    from segmentation.pipeline import pipeline_start

    with tenant_context(org):
        customer = Customer.objects.create(organization=org, external_id="NOSKU-1")
        from customers.models import Order

        Order.objects.create(
            organization=org, customer=customer, external_id="O-1",
            ordered_at="2024-05-01T10:00:00Z", total=10,
        )  # fmt: skip
        result = pipeline_start(organization=org, steps=["recommendations"], sync=True)
        assert result["status"] == "succeeded", result
        assert not RecommendationRun.objects.exists()
