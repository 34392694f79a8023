"""Campaigns (issue 11): personalised, consent-safe email and SMS to segments and
audiences, tracked and tested.

- `Campaign`: what to send (channel, subject and body templates), to whom
  (segments or an audience, snapshotted when the send starts), when (now, a time,
  or each customer's best hour), how it is tested (hold-out share, fixed split or
  Thompson sampling) and how conversions are counted (window in days).
- `Variant`: words for one segment or persona, or an A/B arm. A customer matching
  two variants gets the first created. A variant written by the product from a
  persona is a *draft* (`is_draft`) until the owner edits it.
- `Delivery`: one customer in one campaign — the unique row written *before* the
  message is handed over, so a retried, restarted or double-clicked send never
  sends anyone the same campaign twice. Hold-out members and skipped customers
  (no consent, frequency cap, quiet hours) have rows too, with the reason.
  Personal data (the address it went to): erased with the person, in both exports.
- `TrackedLink`: the links of a message, by token: the click redirect only ever
  goes to a stored link, so it cannot be turned into an open redirect.
- `CampaignSettings`: the organisation's frequency cap and SMS quiet hours.
Row-level security covers every table (accounts/rls.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = [
    "Campaign",
    "CampaignSettings",
    "CampaignStatus",
    "Channel",
    "Delivery",
    "DeliveryStatus",
    "OutboxMessage",
    "TrackedLink",
    "Variant",
]


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class Allocation(models.TextChoices):
    FIXED = "fixed", "Fixed split"
    THOMPSON = "thompson", "Send more to the better variant as results arrive"


class Campaign(TenantModel):
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    goal = models.CharField(max_length=300, blank=True)
    status = models.CharField(
        max_length=10, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    message = models.CharField(max_length=500, blank=True)  # why a send failed
    # recipients: segment ids, or an audience
    segment_ids = models.JSONField(default=list, blank=True)
    audience = models.ForeignKey(
        "audiences.Audience", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    subject = models.CharField(max_length=500, blank=True)  # a template (email only)
    body = models.TextField(blank=True)  # a template: merge fields and blocks
    # schedule: now (null), a time (aware, stored UTC), or each customer's best hour
    send_at = models.DateTimeField(null=True, blank=True)
    best_hour = models.BooleanField(default=False)
    holdout_share = models.FloatField(default=0.0)
    allocation = models.CharField(max_length=10, choices=Allocation.choices, default="fixed")
    conversion_window_days = models.PositiveSmallIntegerField(default=5)
    offer_id = models.BigIntegerField(null=True, blank=True)  # offers arrive with issue 12
    survey_id = models.BigIntegerField(null=True, blank=True)  # surveys arrive with issue 13
    # the A/B plan shown before sending: {"per_variant", "baseline_rate", "lift", ...}
    plan = models.JSONField(default=dict, blank=True)
    # counts written by the send job: {"audience", "skipped_no_consent", ...}
    counts = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(
        "core.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "send_at"], name="campaign_org_status")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def editable(self) -> bool:
        return self.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)


class Variant(TenantModel):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="variants", db_index=False
    )
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    segment_ids = models.JSONField(default=list, blank=True)  # empty: an A/B arm
    persona = models.ForeignKey(
        "segmentation.Persona", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    share = models.FloatField(null=True, blank=True)  # an A/B arm's share of the rest
    is_draft = models.BooleanField(default=False)  # written by the product, not edited yet
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["id"]
        indexes = [models.Index(fields=["organization", "campaign"], name="variant_org_campaign")]

    def __str__(self) -> str:
        return self.name


class DeliveryStatus(models.TextChoices):
    HOLDOUT = "holdout", "Held out (not sent, to measure the difference)"
    SKIPPED = "skipped", "Skipped"
    QUEUED = "queued", "Queued"
    # claimed for hand-off: written before the message leaves, so a restarted job never
    # hands it over again (a row still here after a crash becomes failed, not resent)
    SENDING = "sending", "Being handed over"
    SENT = "sent", "Sent"
    BOUNCED = "bounced", "Bounced"
    FAILED = "failed", "Failed"


class SkipReason(models.TextChoices):
    NO_CONSENT = "no_consent", "No consent for this channel"
    NO_ADDRESS = "no_address", "No address for this channel"
    FREQUENCY_CAP = "frequency_cap", "Reached the frequency cap"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    SUPPRESSED = "suppressed", "Unsubscribed, bounced or complained"


class Delivery(TenantModel):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    variant = models.ForeignKey(
        Variant, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    channel = models.CharField(max_length=8, choices=Channel.choices)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices)
    skip_reason = models.CharField(max_length=16, choices=SkipReason.choices, blank=True)
    to_address = models.CharField(max_length=320, blank=True)  # personal: erased
    token = models.CharField(max_length=32, unique=True)  # in signed links; not guessable
    message_id = models.CharField(max_length=200, blank=True)
    error = models.CharField(max_length=500, blank=True)
    segment_id = models.BigIntegerField(null=True, blank=True)  # for results by segment
    persona_id = models.BigIntegerField(null=True, blank=True)
    scheduled_for = models.DateTimeField(null=True, blank=True)  # best hour / quiet hours
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "campaign", "customer"], name="delivery_once_per_customer"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "campaign", "status"], name="delivery_org_status"),
            models.Index(fields=["organization", "customer", "sent_at"], name="delivery_org_cust"),
        ]

    def __str__(self) -> str:
        return f"Campaign {self.campaign_id} to customer {self.customer_id} ({self.status})"


class TrackedLink(TenantModel):
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="links", db_index=False
    )
    url = models.URLField(max_length=2000)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "campaign", "url"], name="trackedlink_once"
            )
        ]

    def __str__(self) -> str:
        return self.url


class CampaignSettings(TenantModel):
    """Off until the owner sets it: at most `cap_messages` in `cap_days` days, counting
    campaigns and automations together; SMS only between the quiet hours' end and
    start in the customer's time zone (the organisation's when unknown)."""

    cap_messages = models.PositiveSmallIntegerField(null=True, blank=True)
    cap_days = models.PositiveSmallIntegerField(null=True, blank=True)
    quiet_start_hour = models.PositiveSmallIntegerField(default=21)
    quiet_end_hour = models.PositiveSmallIntegerField(default=9)
    from_name = models.CharField(max_length=200, blank=True)
    reply_to = models.EmailField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="campaignsettings_one_per_org")
        ]

    def __str__(self) -> str:
        return "Campaign settings"


class OutboxMessage(TenantModel):
    """A message handed to the development outbox instead of a real mail or SMS
    service (the default when EMAIL_URL / SMS_URL do not name one): the owner reads
    it on the site. Personal data: erased with the person, in both exports."""

    channel = models.CharField(max_length=8, choices=Channel.choices)
    customer = models.ForeignKey(
        "customers.Customer", null=True, blank=True, on_delete=models.CASCADE,
        related_name="+", db_index=False,
    )  # fmt: skip
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    to_address = models.CharField(max_length=320)
    subject = models.CharField(max_length=998, blank=True)
    text = models.TextField(blank=True)
    html = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="outbox_org_created"),
            models.Index(fields=["organization", "customer"], name="outbox_org_customer"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.to_address}"
