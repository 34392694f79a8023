"""`build_world` for the tenant isolation sweep: one of each research tenant model
(a feedback item with its insight and theme, a survey and a personal response)."""

from __future__ import annotations

from django.utils import timezone

from accounts.tenancy import tenant_context


def build_world(organization) -> dict:
    from customers.models import Customer, Feedback
    from research.models import FeedbackInsight, ResearchRun, Survey, SurveyResponse, Theme

    with tenant_context(organization):
        customer = Customer.objects.filter(erased_at__isnull=True).first() or (
            Customer.objects.create(
                organization=organization, external_id="research-world-1", email="r@example.com"
            )
        )
        now = timezone.now()
        feedback = Feedback.objects.create(
            organization=organization,
            external_id=f"RW{organization.pk}",
            customer=customer,
            created_at=now,
            source="review",
            rating=2,
            text="Delivery was late and the box arrived damaged.",
        )
        run = ResearchRun.objects.create(
            organization=organization, as_of=now.date(), feedback_count=1, text_count=1
        )
        theme = Theme.objects.create(
            organization=organization,
            run=run,
            label="delivery late",
            phrases=["delivery", "late"],
            size=1,
            sentiment=-0.6,
            examples=[{"feedback_id": feedback.pk, "text": feedback.text}],
        )
        insight = FeedbackInsight.objects.create(
            organization=organization, feedback=feedback, sentiment=-0.6, theme=theme
        )
        survey = Survey.objects.create(
            organization=organization,
            name=f"World survey {organization.pk}",
            questions=[
                {"type": "nps", "text": "How likely are you to recommend us?", "required": True},
                {"type": "text", "text": "What should we improve?", "required": False},
            ],
        )
        response = SurveyResponse.objects.create(
            organization=organization,
            survey=survey,
            customer=customer,
            channel="personal",
            answers=[9, "Faster delivery"],
        )
    return {
        "feedback": feedback,
        "run": run,
        "theme": theme,
        "insight": insight,
        "survey": survey,
        "response": response,
    }
