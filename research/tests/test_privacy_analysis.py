"""Every research table, with what erasure does to its rows and whether each export
(one person's JSON, the organisation's zip) carries it. A new model must be added
here, which makes its author decide both. Surveys and their responses are tested
with research/surveys.py; this file proves the analysis' part."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from django.apps import apps
from django.conf import settings

from accounts.tenancy import tenant_context
from core.models import Job
from customers.models import Customer, Feedback
from customers.services.privacy import (
    customer_erase,
    customer_export_data,
    organization_export_run,
)
from research.models import FeedbackInsight, Theme
from research.tests.test_analysis import _run, plant

RESEARCH_TABLES = {
    "ResearchRun": ("no personal data (counts, the model's figures, what changed)", None, None),
    "Theme": ("quotes of the person's feedback dropped", None, "themes.csv"),
    "FeedbackInsight": ("deleted with the feedback", "feedback_analysis", "feedback_insights.csv"),
    "Survey": ("no personal data (the owner's questions)", None, "surveys.csv"),
    "SurveyResponse": ("deleted (research.surveys)", "survey_answers", "survey_responses.csv"),
}


def test_every_research_table_is_listed():
    assert {m.__name__ for m in apps.get_app_config("research").get_models()} == set(
        RESEARCH_TABLES
    )


def test_feedback_analysis_is_erased_and_exported(org, owner):
    plant(org, per_person=1)
    _run(org)
    with tenant_context(org):
        quoted_id = Theme.objects.first().examples[0]["feedback_id"]
        customer = Customer.objects.get(pk=Feedback.objects.get(pk=quoted_id).customer_id)
        theirs = set(Feedback.objects.filter(customer=customer).values_list("pk", flat=True))
        assert FeedbackInsight.objects.filter(feedback_id__in=theirs).count() == len(theirs)

        exported = customer_export_data(customer=customer)["feedback_analysis"]
        assert len(exported) == len(theirs)
        assert {"feedback_id", "sentiment", "sentiment_in_words", "theme"} <= set(exported[0])
        assert any(row["theme"] for row in exported)

        job = Job.objects.create(organization=org, kind="org_export", title="export")
        result = organization_export_run(job_id=job.pk, user_id=owner.pk)
        with zipfile.ZipFile(Path(settings.MEDIA_ROOT, result["file"])) as archive:
            text = io.TextIOWrapper(archive.open("feedback_insights.csv"), encoding="utf-8").read()
            rows = list(csv.DictReader(io.StringIO(text)))
            assert len(rows) == Feedback.objects.count()
            assert sum(r["customer_id"] == customer.external_id for r in rows) == len(theirs)
            themes = list(csv.DictReader(io.StringIO(archive.read("themes.csv").decode("utf-8"))))
            assert len(themes) == Theme.objects.count()

        customer_erase(customer=customer, actor=owner)
        assert not FeedbackInsight.objects.filter(feedback_id__in=theirs).exists()
        quoted = {e["feedback_id"] for t in Theme.objects.all() for e in t.examples}
        assert not quoted & theirs
        assert quoted  # everyone else's quotes stay
        assert (
            customer_export_data(customer=Customer.objects.get(pk=customer.pk))["feedback_analysis"]
            == []
        )
