"""Market research (issue 13): what customers say, analysed, and surveys that ask them.

- `ResearchRun`: one run of the `research` pipeline step: which sentiment model was
  used and how accurate it was on the organisation's own rated feedback (`model`,
  `model_sentence`, `cv`), counts, and `changes`, the "what changed this month"
  list for the dashboard (research/changes.py).
- `Theme`: a theme found in the feedback by the latest run (ids change with each
  run): its readable label, key phrases, size, mean sentiment, example quotes
  (`examples`: [{"feedback_id", "text"}]; personal data: an erased customer's quotes
  are removed), the 30-day trend and the index per segment.
- `FeedbackInsight`: one feedback item's sentiment (−1…1), theme and key phrases.
  Personal data: erased with the feedback, in both exports.
- `Survey`: a short questionnaire (`questions`: [{"type": "rating"|"nps"|"choice"|
  "text", "text", "options"?, "required"?}]) with a public link (`public_key`) and
  personal links signed per customer (research/links.py); `personal_links` says
  whether a second answer through one personal link edits the first ("edit", the
  contract's default) or is refused ("once").
- `SurveyResponse`: one answer set (`answers`, one value per question in order),
  tied to a customer for personal links and API records naming one, anonymous for
  the public link; it also becomes a `survey_answered` event and, when it holds
  text or a rating, a `Feedback` row (`feedback`). Personal data: erased with the
  person, in both exports.
Row-level security covers every table (accounts/rls.py).
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = [
    "FeedbackInsight",
    "PersonalLinks",
    "QuestionType",
    "ResearchRun",
    "Survey",
    "SurveyResponse",
    "SurveyStatus",
    "Theme",
]


class ResearchRun(TenantModel):
    as_of = models.DateField(null=True, blank=True)
    finished_at = models.DateTimeField(default=timezone.now)
    feedback_count = models.PositiveIntegerField(default=0)
    text_count = models.PositiveIntegerField(default=0)  # items with text to read
    # "lexicon" (the general word list) or "rated" (trained on this business's ratings)
    model = models.CharField(max_length=20, default="lexicon")
    model_sentence = models.TextField(blank=True)
    cv = models.JSONField(default=dict, blank=True)  # sentiment.cross_validate's figures
    summary = models.JSONField(default=dict, blank=True)  # overall sentiment, per source
    changes = models.JSONField(default=list, blank=True)  # research/changes.py

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "finished_at"], name="research_run_time")]

    def __str__(self) -> str:
        return f"research run {self.finished_at:%Y-%m-%d %H:%M}"


class Theme(TenantModel):
    run = models.ForeignKey(ResearchRun, on_delete=models.CASCADE, related_name="themes")
    position = models.PositiveIntegerField(default=0)  # 0, 1, … in size order
    label = models.CharField(max_length=200)
    phrases = models.JSONField(default=list, blank=True)
    size = models.PositiveIntegerField(default=0)
    sentiment = models.FloatField(null=True, blank=True)  # mean over its members
    examples = models.JSONField(default=list, blank=True)  # [{"feedback_id", "text"}]
    trend = models.JSONField(default=dict, blank=True)  # {"last_30d", "prev_30d", "change", ...}
    # [{"segment_id", "count", "share", "share_others", "index", "notable", "sentence"}]
    by_segment = models.JSONField(default=list, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["position"]

    def __str__(self) -> str:
        return self.label


class FeedbackInsight(TenantModel):
    feedback = models.OneToOneField(
        "customers.Feedback", on_delete=models.CASCADE, related_name="insight"
    )
    sentiment = models.FloatField(null=True, blank=True)  # −1…1; null: no text to read
    theme = models.ForeignKey(
        Theme, null=True, blank=True, on_delete=models.SET_NULL, related_name="insights"
    )
    phrases = models.JSONField(default=list, blank=True)
    analysed_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "theme"], name="insight_org_theme")]

    def __str__(self) -> str:
        return f"insight on feedback {self.feedback_id}"


class QuestionType(models.TextChoices):
    RATING = "rating", "Rating (1–5 stars)"
    NPS = "nps", "Would you recommend us? (0–10)"
    CHOICE = "choice", "Multiple choice"
    TEXT = "text", "Free text"


class SurveyStatus(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class PersonalLinks(models.TextChoices):
    EDIT = "edit", "A second answer through the same link replaces the first"
    ONCE = "once", "Each personal link can be used once"


def _public_key() -> str:
    return secrets.token_urlsafe(12)


class Survey(TenantModel):
    name = models.CharField(max_length=200)
    intro = models.TextField(blank=True)  # shown above the questions
    thank_you = models.TextField(blank=True)
    questions = models.JSONField(default=list)
    status = models.CharField(max_length=10, choices=SurveyStatus.choices, default="open")
    personal_links = models.CharField(
        max_length=10, choices=PersonalLinks.choices, default=PersonalLinks.EDIT
    )
    public_key = models.CharField(max_length=32, default=_public_key)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


class ResponseChannel(models.TextChoices):
    PERSONAL = "personal", "Personal link"
    PUBLIC = "public", "Public link"
    API = "api", "Recorded through the API"


class SurveyResponse(TenantModel):
    survey = models.ForeignKey(Survey, on_delete=models.CASCADE, related_name="responses")
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="survey_responses",
    )
    channel = models.CharField(max_length=10, choices=ResponseChannel.choices)
    answers = models.JSONField(default=list)
    feedback = models.ForeignKey(
        "customers.Feedback", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        constraints = [
            # one answer set per personal link: a second answer edits it (or is refused)
            models.UniqueConstraint(
                fields=["organization", "survey", "customer"],
                condition=Q(channel="personal"),
                name="survey_response_one_per_link",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "survey", "created_at"], name="survey_resp_time")
        ]

    def __str__(self) -> str:
        return f"response {self.pk} to {self.survey_id}"
