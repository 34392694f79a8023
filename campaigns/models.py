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
  (no consent, frequency cap, quiet hours; for a campaign carrying an offer, the
  offer's hold-out and customers given no code) have rows too, with the reason.
  Personal data (the address it went to): erased with the person, in both exports.
- `TrackedLink`: the links of a message, by token: the click redirect only ever
  goes to a stored link, so it cannot be turned into an open redirect. A campaign
  carrying a survey stores the survey's public link once; a click on it lands on the
  clicking customer's own personal link (campaigns/links.py `click_target`).
- `CampaignSettings`: the organisation's frequency cap and SMS quiet hours.
- `Automation`: a message sent when a trigger occurs for a customer (campaigns/
  automations.py). Its messages go out through hidden campaigns of its own
  (`Campaign.automation`, one per *round*: a customer's second occurrence goes in
  round 2, since a campaign reaches a person once), so sending, tracking and
  statistics are the campaigns' own. `AutomationOccurrence`: one customer, one
  occurrence of the trigger (unique), and the delivery it led to. `AutomationMember`:
  who met a membership trigger (segment, audience, high churn risk) at the last
  evaluation, to see who *enters*. Occurrences and members: erased with the person;
  occurrences are in both exports.
Row-level security covers every table (accounts/rls.py).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.tenancy import TenantModel

__all__ = [
    "Automation",
    "AutomationMember",
    "AutomationOccurrence",
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
    # an offer (issue 12) the message carries: each customer's code fills `offer_code`
    # and `{% offer %}`; only customers given a code get the campaign
    offer_id = models.BigIntegerField(null=True, blank=True)
    # a survey (issue 13) the message links to: `{{ survey_link }}` is each customer's
    # own signed link (research/links.py); its answers are tied to that customer
    survey = models.ForeignKey(
        "research.Survey", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="campaigns", db_index=False,
    )  # fmt: skip
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
    # set on an automation's hidden campaigns (not listed with the campaigns)
    automation = models.ForeignKey(
        "campaigns.Automation", null=True, blank=True, on_delete=models.CASCADE,
        related_name="campaigns", db_index=False,
    )  # fmt: skip
    automation_round = models.PositiveIntegerField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["organization", "status", "send_at"], name="campaign_org_status"),
            models.Index(fields=["organization", "automation"], name="campaign_org_automation"),
            models.Index(fields=["organization", "survey"], name="campaign_org_survey"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "automation", "automation_round"],
                name="campaign_automation_round_once",
            )
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
    # a campaign carrying an offer goes only to customers who were given a code
    OFFER_HOLDOUT = "offer_holdout", "In the offer's hold-out group"
    NO_OFFER_CODE = "no_offer_code", "Not among the offer's recipients"


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
            # the organisation's sending rate (campaigns/sending.py _within_rate)
            models.Index(fields=["organization", "sent_at"], name="delivery_org_sent"),
            # messages being handed over now count towards the day's emails (rules.py)
            models.Index(
                fields=["organization"],
                condition=models.Q(status="sending"),
                name="delivery_org_sending",
            ),
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


class TriggerKind(models.TextChoices):
    ENTERS_SEGMENT = "enters_segment", "Enters a segment"
    ENTERS_AUDIENCE = "enters_audience", "Enters an audience"
    CHURN_HIGH = "churn_high", "Churn risk becomes high"
    DAYS_AFTER_FIRST_ORDER = "days_after_first_order", "Days after the first order"
    NEXT_ORDER_OVERDUE = "next_order_overdue", "Expected next order is overdue"
    BIRTHDAY = "birthday", "Birthday"
    BACK_IN_STOCK = "back_in_stock", "A product is back in stock"
    TIER_CHANGED = "tier_changed", "Loyalty tier changed"


class Automation(TenantModel):
    """A message sent once per occurrence of a trigger (campaigns/automations.py)."""

    name = models.CharField(max_length=200)
    trigger_kind = models.CharField(max_length=32, choices=TriggerKind.choices)
    trigger_params = models.JSONField(default=dict, blank=True)
    # the message, as a campaign's (copied to its hidden campaigns)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    subject = models.CharField(max_length=500, blank=True)
    body = models.TextField(blank=True)
    conversion_window_days = models.PositiveSmallIntegerField(default=5)
    active = models.BooleanField(default=True)
    # occurrences count from here: set when it is created or switched on again
    watch_from = models.DateTimeField(default=timezone.now)
    # the first evaluation records who already meets a membership trigger (no send)
    baseline_at = models.DateTimeField(null=True, blank=True)
    # what the trigger remembers between evaluations (back_in_stock: skus out of stock)
    state = models.JSONField(default=dict, blank=True)
    # one evaluator at a time: claimed with a conditional UPDATE until this time
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+", db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta(TenantModel.Meta):
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["organization", "active"], name="automation_org_active")]

    def __str__(self) -> str:
        return self.name


class AutomationOccurrence(TenantModel):
    """One customer, one occurrence of an automation's trigger: written once (unique),
    then given a delivery in the automation's campaign of the customer's round."""

    automation = models.ForeignKey(
        Automation, on_delete=models.CASCADE, related_name="occurrences", db_index=False
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    key = models.CharField(max_length=200)  # e.g. "birthday:2026", "restock:SKU1:<time>"
    occurred_at = models.DateTimeField(default=timezone.now)
    delivery = models.ForeignKey(
        Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        db_index=False,
    )  # fmt: skip
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "automation", "customer", "key"],
                name="automation_occurrence_once",
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "automation", "delivery"], name="autoocc_org_auto_deliv"
            ),
            models.Index(fields=["organization", "customer"], name="autoocc_org_customer"),
        ]

    def __str__(self) -> str:
        return f"Automation {self.automation_id}: customer {self.customer_id} ({self.key})"


class AutomationMember(TenantModel):
    """A customer who met a membership trigger at the automation's last evaluation."""

    automation = models.ForeignKey(
        Automation, on_delete=models.CASCADE, related_name="members", db_index=False
    )
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="+", db_index=False
    )

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "automation", "customer"], name="automation_member_once"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "customer"], name="automember_org_customer")
        ]

    def __str__(self) -> str:
        return f"Automation {self.automation_id}: customer {self.customer_id}"
