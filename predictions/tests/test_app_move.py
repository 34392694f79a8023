"""Predictions moved out of segmentation into their own app (issue 9): stored runs and
predictions stay where they were, and jobs queued under the former task name still run."""

from __future__ import annotations

import importlib

import pytest
from celery import current_app
from django.apps import apps
from django.db import connection
from django.db.migrations import SeparateDatabaseAndState

from accounts.tenancy import tenant_context
from predictions.models import CustomerPrediction, PredictionRun

pytestmark = pytest.mark.django_db

MODELS = ("PredictionSettings", "PredictionRun", "CustomerPrediction", "ProductForecast")


def test_the_models_keep_their_tables():
    for name in MODELS:
        model = apps.get_model("predictions", name)
        assert model._meta.db_table == f"segmentation_{name.lower()}"
        assert model._meta.db_table in connection.introspection.table_names()


@pytest.mark.parametrize(
    "module",
    [
        "predictions.migrations.0001_initial",
        "segmentation.migrations.0003_predictions_moved_to_own_app",
    ],
)
def test_the_move_touches_no_table(module):
    operations = importlib.import_module(module).Migration.operations
    assert len(operations) == 1 and isinstance(operations[0], SeparateDatabaseAndState)
    assert operations[0].database_operations == []


def test_rows_written_before_the_move_are_read_by_the_predictions_app(org):
    from predictions.tests.factories import build_world

    build_world(org)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM segmentation_customerprediction")
        assert cursor.fetchone()[0] == 1
    with tenant_context(org):
        assert PredictionRun.objects.count() == 1
        assert CustomerPrediction.objects.get().run.is_live


def test_jobs_queued_under_the_former_task_name_still_run():
    from core.jobs import job_kind

    assert "segmentation.tasks_predictions.predictions_run" in current_app.tasks
    assert job_kind("predictions").task_name == "predictions.tasks.predictions_run"
    assert job_kind("predictions").role == "marketer"
