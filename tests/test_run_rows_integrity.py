"""The rows a pipeline run writes in bulk have no database-level foreign keys (issue
15: PostgreSQL checked one constraint per key and row, two thirds of the time the
rows took to write). What the constraints guaranteed is kept by the code and checked
here: a run's rows name only its organisation's customers, and the run and segments
they belong to; removing the organisation removes them; another organisation's rows
are never touched."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from accounts.models import Organization
from accounts.tenancy import tenant_context, unscoped_context
from customers.models import Customer, CustomerChange
from customers.services.privacy import organization_remove
from predictions.models import CustomerPrediction, PredictionRun
from predictions.services import prediction_run
from predictions.tests.factories import simulate_world, write_world
from recommendations.models import CustomerRecommendation
from segmentation.models import Segment, SegmentationRun, SegmentMembership
from segmentation.services.segments import segmentation_run

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2024, 6, 30)
RUN_ROW_MODELS = (SegmentMembership, CustomerPrediction, CustomerRecommendation, CustomerChange)


def _runs(org) -> None:
    write_world(org, simulate_world(n_customers=300, as_of=AS_OF, history_days=400, seed=5))
    with tenant_context(org):
        segmentation_run(organization=org)
        prediction_run(organization=org)


@pytest.fixture
def two_orgs(org, other_org):
    _runs(org)
    _runs(other_org)
    return org, other_org


def test_a_runs_rows_name_only_its_own_organisations_customers_runs_and_segments(two_orgs):
    for organization in two_orgs:
        with tenant_context(organization):
            customers = set(Customer.objects.values_list("pk", flat=True))
            memberships = SegmentMembership.objects.all()
            assert memberships.exists()
            assert set(memberships.values_list("customer_id", flat=True)) <= customers
            assert set(memberships.values_list("run_id", flat=True)) <= set(
                SegmentationRun.objects.values_list("pk", flat=True)
            )
            assert set(memberships.values_list("segment_id", flat=True)) <= set(
                Segment.objects.values_list("pk", flat=True)
            )
            predictions = CustomerPrediction.objects.all()
            assert predictions.exists()
            assert set(predictions.values_list("customer_id", flat=True)) <= customers
            assert set(predictions.values_list("run_id", flat=True)) <= set(
                PredictionRun.objects.values_list("pk", flat=True)
            )
            assert set(CustomerChange.objects.values_list("customer_id", flat=True)) <= customers
        with unscoped_context():
            for model in RUN_ROW_MODELS:
                rows = model.all_objects.filter(organization_id=organization.pk)
                assert not rows.exclude(customer__organization_id=organization.pk).exists()


def test_removing_the_organisation_removes_its_run_rows_and_no_others(two_orgs, owner):
    org, other = two_orgs
    with unscoped_context():
        kept = {m: m.all_objects.filter(organization_id=other.pk).count() for m in RUN_ROW_MODELS}
    assert kept[SegmentMembership] and kept[CustomerPrediction]
    organization_remove(organization=org, actor=owner)
    with unscoped_context():
        assert not Organization.objects.filter(pk=org.pk).exists()
        for model in RUN_ROW_MODELS:
            assert not model.all_objects.filter(organization_id=org.pk).exists(), model
            assert model.all_objects.filter(organization_id=other.pk).count() == kept[model]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL catalogue")
def test_the_run_row_tables_carry_no_foreign_key_constraints():
    tables = [m._meta.db_table for m in RUN_ROW_MODELS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)",
            [tables],
        )
        assert cursor.fetchall() == []
