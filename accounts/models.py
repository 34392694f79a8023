"""Users, organisations (the tenants), memberships, invitations, API keys, audit log."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone

from .tenancy import TenantModel


class UserManager(BaseUserManager):
    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **extra):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra):
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        extra.setdefault("email_verified", True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(
        default=False, help_text="Platform staff: may use the back office."
    )
    email_verified = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # The organisation the user last worked in; switching changes it.
    current_organization = models.ForeignKey(
        "Organization", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        return self.full_name or self.email

    def get_short_name(self) -> str:
        return self.full_name.split(" ")[0] if self.full_name else self.email


# What an organisation's revenue counts (the dashboard's figure and its label).
REVENUE_BASES = [
    ("goods", "Goods only (net of discounts)"),
    ("goods_shipping", "Goods and shipping"),
    ("goods_shipping_taxes", "Goods, shipping and taxes"),
]


class OrganizationStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended"


class Organization(models.Model):
    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    currency = models.CharField(max_length=3, default="USD")
    # What the dashboard's revenue counts besides the goods (net of discounts):
    # "goods", "goods_shipping" or "goods_shipping_taxes" (REVENUE_BASES).
    revenue_basis = models.CharField(
        max_length=24, default="goods", db_default="goods", choices=REVENUE_BASES
    )
    # Customer attributes the owner marks as sensitive; left out of models.
    sensitive_attributes = models.JSONField(default=list, blank=True)
    require_two_factor = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set by platform staff (accounts/suspension.py): sign-in, the API, jobs and
    # sends stop; the data is kept. A deletion date implies suspension.
    status = models.CharField(
        max_length=12, choices=OrganizationStatus.choices, default="active", db_default="active"
    )
    status_reason = models.CharField(max_length=500, blank=True, default="", db_default="")
    suspended_at = models.DateTimeField(null=True, blank=True)
    deletion_scheduled_for = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "organisation"
        permissions = [
            ("suspend_organization", "Can suspend and reactivate organisations"),
            ("schedule_deletion", "Can schedule an organisation's deletion"),
            ("request_support_access", "Can ask an owner for support access"),
            ("emergency_support_access", "Can open an organisation's data in an emergency"),
            ("view_platform_health", "Can see the platform's health and failing jobs"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_active(self) -> bool:
        return self.status == OrganizationStatus.ACTIVE


class OrganizationLimits(models.Model):
    """One organisation's own limits, set by platform staff. A blank field means the
    platform's default (settings); `accounts.limits.limits_for` reads the result."""

    organization = models.OneToOneField(
        Organization, on_delete=models.CASCADE, related_name="limits", primary_key=True
    )
    upload_bytes = models.PositiveBigIntegerField(
        "largest upload (bytes)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Largest file one upload may be, in bytes.",
    )
    import_rows = models.PositiveIntegerField(
        "rows in one file",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Data rows in one imported file.",
    )
    import_columns = models.PositiveIntegerField(
        "columns in one file",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Columns in one imported file.",
    )
    attributes_bytes = models.PositiveIntegerField(
        "extra values of one record (bytes)",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="One record's extra values, in bytes (as JSON).",
    )
    customers = models.PositiveIntegerField(
        "customers", null=True, blank=True, help_text="Customers the organisation may hold."
    )
    api_per_minute = models.PositiveIntegerField(
        "API requests a minute",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="API requests per minute, per key or member.",
    )
    emails_per_day = models.PositiveIntegerField(
        "emails a day", null=True, blank=True, help_text="Emails handed over per day (UTC)."
    )
    heavy_jobs = models.PositiveSmallIntegerField(
        "heavy jobs at a time",
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Heavy jobs (pipeline steps, exports) at a time.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"

    def __str__(self) -> str:
        return f"Limits of {self.organization}"


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    VIEWER = "viewer", "Viewer"


ROLE_RANK = {Role.VIEWER: 0, Role.MARKETER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class Membership(models.Model):
    """A user's role in an organisation. Not row-level scoped: a user lists their own
    memberships across organisations; every query filters by user or organisation."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "user"], name="membership_org_user_unique"
            )
        ]
        ordering = ["organization", "user__email"]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"

    def has_role(self, minimum: str) -> bool:
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(minimum)]

    @property
    def can_edit(self) -> bool:
        return self.has_role(Role.MARKETER)

    @property
    def can_manage(self) -> bool:
        return self.has_role(Role.ADMIN)


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Invitation(models.Model):
    """An emailed invitation. Accepted through an unguessable, expiring, single-use link."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="invitations"
    )
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "email"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} → {self.organization}"

    @staticmethod
    def new_token() -> tuple[str, str]:
        token = secrets.token_urlsafe(32)
        return token, _hash_token(token)

    @staticmethod
    def hash(token: str) -> str:
        return _hash_token(token)

    @property
    def status(self) -> str:
        if self.accepted_at:
            return "accepted"
        if self.revoked_at:
            return "revoked"
        if self.expires_at <= timezone.now():
            return "expired"
        return "pending"


class ApiKeyScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiKey(models.Model):
    """Only a SHA-256 of the key is stored; the key is shown once at creation.
    Looked up by prefix before any organisation is known, so it is not row-scoped."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="api_keys"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, unique=True)
    key_hash = models.CharField(max_length=64)
    scope = models.CharField(max_length=8, choices=ApiKeyScope.choices, default=ApiKeyScope.READ)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["organization", "created_at"])]
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def generate() -> tuple[str, str, str]:
        prefix = secrets.token_hex(4)
        secret = secrets.token_urlsafe(32)
        key = f"sk_{prefix}_{secret}"
        return key, prefix, _hash_token(key)

    @staticmethod
    def hash(key: str) -> str:
        return _hash_token(key)


class AuditAction(models.TextChoices):
    SIGN_IN = "sign_in", "Signed in"
    SIGN_IN_FAILED = "sign_in_failed", "Failed sign-in"
    SIGN_OUT = "sign_out", "Signed out"
    SIGN_UP = "sign_up", "Signed up"
    PASSWORD_CHANGED = "password_changed", "Password changed"
    PASSWORD_RESET = "password_reset", "Password reset"
    TWO_FACTOR_ENABLED = "two_factor_enabled", "Two-factor enabled"
    TWO_FACTOR_DISABLED = "two_factor_disabled", "Two-factor disabled"
    MEMBER_INVITED = "member_invited", "Member invited"
    MEMBER_JOINED = "member_joined", "Member joined"
    MEMBER_REMOVED = "member_removed", "Member removed"
    ROLE_CHANGED = "role_changed", "Role changed"
    KEY_CREATED = "key_created", "API key created"
    KEY_REVOKED = "key_revoked", "API key revoked"
    SETTINGS_CHANGED = "settings_changed", "Settings changed"
    DATA_EXPORTED = "data_exported", "Data exported"
    DATA_ERASED = "data_erased", "Data erased"
    ERASURE_CLEANED = "erasure_cleaned", "Erased data removed from stored files"
    ORG_DELETED = "org_deleted", "Organisation deleted"
    ORG_SUSPENDED = "org_suspended", "Organisation suspended by Segmenta"
    ORG_REACTIVATED = "org_reactivated", "Organisation reactivated by Segmenta"
    DELETION_SCHEDULED = "deletion_scheduled", "Deletion scheduled by Segmenta"
    DELETION_CANCELLED = "deletion_cancelled", "Scheduled deletion cancelled"
    LIMITS_CHANGED = "limits_changed", "Limits changed by Segmenta"
    LIMIT_REACHED = "limit_reached", "Limit reached"
    JOB_RERUN = "job_rerun", "Job re-run by Segmenta support"
    SUPPORT_REQUESTED = "support_requested", "Support access requested"
    SUPPORT_APPROVED = "support_approved", "Support access approved"
    SUPPORT_DECLINED = "support_declined", "Support access declined"
    SUPPORT_REVOKED = "support_revoked", "Support access ended"
    SUPPORT_EMERGENCY = "support_emergency", "Emergency support access opened"
    SUPPORT_VIEWED = "support_viewed", "Viewed by Segmenta support"
    # written by the capability apps
    ORDER_CORRECTED = "order.corrected", "Order corrected"
    ORDER_DELETED = "order.deleted", "Order deleted"
    AUDIENCE_SENSITIVE_UNLOCKED = "audience.sensitive_unlocked", "Sensitive attributes used"
    RECOMMENDATIONS_SETTINGS = "recommendations.settings_changed", "Recommendations changed"
    OFFER_CREATED = "offer.created", "Offer created"
    OFFER_CHANGED = "offer.changed", "Offer changed"
    OFFER_DELETED = "offer.deleted", "Offer deleted"
    OFFER_FAIRNESS_OVERRIDE = "offer.fairness_override", "Offer sent despite fairness check"
    LOYALTY_PROGRAM_CREATED = "loyalty.program_created", "Loyalty programme created"
    LOYALTY_PROGRAM_DELETED = "loyalty.program_deleted", "Loyalty programme deleted"
    LOYALTY_POINTS_REDEEMED = "loyalty.points_redeemed", "Loyalty points redeemed"
    SURVEY_CREATED = "survey.created", "Survey created"
    SURVEY_UPDATED = "survey.updated", "Survey changed"
    SURVEY_CLOSED = "survey.closed", "Survey closed"
    WEBHOOK_CREATED = "webhook_created", "Webhook added"
    WEBHOOK_DELETED = "webhook_deleted", "Webhook removed"


class AuditLogEntry(TenantModel):
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(
        max_length=254, blank=True, help_text="Email or API key prefix at the time."
    )
    # Who acted (accounts.actor.Actor): a member, an API key or the system.
    actor_kind = models.CharField(
        max_length=8,
        blank=True,
        choices=[
            ("user", "Member"),
            ("api_key", "API key"),
            ("system", "System"),
            ("staff", "Segmenta support"),
        ],
    )
    api_key = models.ForeignKey(
        "ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    target = models.CharField(max_length=254, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "-created_at"])]
        ordering = ["-created_at"]
        verbose_name_plural = "audit log entries"

    def __str__(self) -> str:
        return f"{self.action_label} by {self.actor_label}"

    @property
    def action_label(self) -> str:
        """What happened, for people; an action no label names yet reads
        "Offer created" rather than "offer.created"."""
        label = self.get_action_display()
        if label != self.action:
            return label
        return self.action.replace(".", " ").replace("_", " ").capitalize()

    @property
    def details_text(self) -> str:
        """The details for people: `role: viewer → marketer`, not a dict."""
        d = dict(self.details or {})
        parts = []
        if "from" in d and "to" in d:
            parts.append(f"{d.pop('from')} → {d.pop('to')}")
        for key, value in d.items():
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            parts.append(f"{key.replace('_', ' ')}: {value}")
        return "; ".join(parts)


class FailedLogin(models.Model):
    """Failed sign-ins of an email with no organisation to file them under; also
    the counter for login throttling."""

    email = models.CharField(max_length=254)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["email", "created_at"])]

    def __str__(self) -> str:
        return f"{self.email} at {self.created_at:%Y-%m-%d %H:%M}"


class ApiUsage(TenantModel):
    """API requests one organisation made on one day (UTC): the back office's usage
    figure. Counted by `accounts.api.throttling.RateLimitHeadersMiddleware` after the
    answer, one UPDATE per request (refused ones too)."""

    day = models.DateField()
    requests = models.PositiveBigIntegerField(default=0)

    class Meta(TenantModel.Meta):
        constraints = [
            models.UniqueConstraint(fields=["organization", "day"], name="apiusage_org_day_unique")
        ]
        verbose_name = "API usage"
        verbose_name_plural = "API usage"

    def __str__(self) -> str:
        return f"{self.requests} API requests on {self.day}"


class SupportGrantKind(models.TextChoices):
    REQUESTED = "requested", "Asked for, approved by the owner"
    EMERGENCY = "emergency", "Emergency (opened by staff with a reason)"


class SupportGrant(TenantModel):
    """Lets one staff member open the organisation's customer records, orders and
    feedback in the back office until `expires_at`. Asked for by staff and approved
    by an owner, or opened in an emergency with a reason; every view is written to
    the organisation's audit log (accounts/support.py)."""

    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(
        max_length=10, choices=SupportGrantKind.choices, default=SupportGrantKind.REQUESTED
    )
    reason = models.CharField(max_length=500)
    hours = models.PositiveSmallIntegerField(default=24)  # how long, once approved
    created_at = models.DateTimeField(default=timezone.now)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    declined_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta(TenantModel.Meta):
        indexes = [models.Index(fields=["organization", "-created_at"])]
        ordering = ["-created_at"]
        verbose_name = "support access grant"

    def __str__(self) -> str:
        return f"Support access for {self.staff} ({self.status})"

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "ended"
        if self.declined_at:
            return "declined"
        if self.approved_at is None:
            return "pending"
        if self.expires_at and self.expires_at <= timezone.now():
            return "expired"
        return "active"

    @property
    def is_active(self) -> bool:
        return self.status == "active"
