"""Writes for accounts: sign-up, organisations, members, invitations, API keys, audit."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.core import signing
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from core.exceptions import ApplicationError, PermissionDenied

from .choices import currency_validate, time_zone_validate
from .models import (
    REVENUE_BASES,
    ApiKey,
    AuditLogEntry,
    FailedLogin,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from .tenancy import tenant_context, unscoped_context

log = logging.getLogger("segmenta.accounts")
_VERIFY_SALT = "segmenta.email-verification"


def _client_ip(request) -> str | None:
    """The address the request came from. Behind `TRUSTED_PROXY_COUNT` proxies it is
    the one the outermost of them saw (the client cannot forge that entry); without
    proxies `X-Forwarded-For` is ignored, as anyone can send it."""
    if request is None:
        return None
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [
            part.strip()
            for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
            if part.strip()
        ]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


# --- Audit --------------------------------------------------------------------------


def audit_log(
    *,
    organization,
    action: str,
    actor=None,
    actor_label: str = "",
    target: str = "",
    details: dict | None = None,
    request=None,
) -> AuditLogEntry:
    """Write an audit entry. `actor` is an `accounts.actor.Actor` (a user, an API
    key's principal, or nothing are read as one: nothing means the request's actor,
    else the system). `actor_label` only names who tried when nobody is signed in
    (a failed sign-in)."""
    from .actor import Actor

    who = Actor.of(actor, organization=organization, request=request)
    with tenant_context(organization):
        return AuditLogEntry.objects.create(
            organization=organization,
            actor=who.user if (who.is_user or who.is_staff) and who.id else None,
            actor_kind="" if actor_label and actor is None else who.kind,
            api_key=who.api_key,
            actor_label=(actor_label or who.label)[:254],
            action=action,
            target=target[:254],
            details=details or {},
            ip_address=_client_ip(request),
        )


def audit_for_user(*, user, action: str, request=None, details: dict | None = None) -> None:
    """Record an event about a user in every organisation they belong to."""
    for membership in Membership.objects.filter(user=user).select_related("organization"):
        audit_log(
            organization=membership.organization,
            action=action,
            actor=user,
            target=user.email,
            details=details,
            request=request,
        )


def login_failure_record(*, email: str, request=None) -> None:
    email = (email or "").strip().lower()[:254]
    FailedLogin.objects.create(email=email, ip_address=_client_ip(request))
    user = User.objects.filter(email=email).first()
    if user is not None:
        for membership in Membership.objects.filter(user=user).select_related("organization"):
            audit_log(
                organization=membership.organization,
                action="sign_in_failed",
                actor_label=email,
                target=email,
                request=request,
            )


def login_is_throttled(*, email: str, request=None) -> bool:
    """Throttle by source, never by account alone: too many failures from one
    address for this email, or for any email, slow that address down. Locking the
    account itself would let anyone lock an owner out by guessing wrong on purpose."""
    since = timezone.now() - timedelta(minutes=15)
    email = (email or "").strip().lower()
    ip = _client_ip(request)
    recent = FailedLogin.objects.filter(created_at__gte=since, ip_address=ip)
    if recent.filter(email=email).count() >= settings.LOGIN_FAILURE_LIMIT:
        return True
    return ip is not None and recent.count() >= settings.LOGIN_FAILURE_LIMIT * 4


def login_failures_clear(*, email: str, request=None) -> None:
    """A successful sign-in clears its own source's failures for the email; a
    password reset (no request given) clears them from every source."""
    failures = FailedLogin.objects.filter(email=(email or "").strip().lower())
    if request is not None:
        failures = failures.filter(ip_address=_client_ip(request))
    failures.delete()


# --- Organisations ------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:50] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_create(
    *, name: str, owner, time_zone: str = "UTC", currency: str = "USD", slug: str | None = None
) -> Organization:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("An organisation needs a name.", {"fields": {"name": "Required."}})
    time_zone = time_zone_validate(time_zone)
    currency = currency_validate(currency)
    if slug and Organization.objects.filter(slug=slug).exists():
        raise ApplicationError(
            f"The slug '{slug}' is taken.", {"fields": {"slug": "Already in use."}}
        )
    org = Organization.objects.create(
        name=name,
        slug=slug or _unique_slug(name),
        time_zone=time_zone,
        currency=currency,
    )
    Membership.objects.create(organization=org, user=owner, role=Role.OWNER)
    owner.current_organization = org
    owner.save(update_fields=["current_organization"])
    return org


def organization_update(
    *, organization: Organization, actor, request=None, **fields
) -> Organization:
    allowed = {
        "name",
        "time_zone",
        "currency",
        "sensitive_attributes",
        "require_two_factor",
        "revenue_basis",
    }
    changed = {}
    for key, value in fields.items():
        if key not in allowed:
            raise ApplicationError(f"Unknown setting: {key}.")
        if key == "currency":
            value = (value or "").strip().upper()
        # an unchanged value is kept even if it is an older name no longer offered
        if key == "time_zone" and value != organization.time_zone:
            value = time_zone_validate(value)
        if key == "currency" and value != organization.currency:
            value = currency_validate(value)
        if key == "revenue_basis" and value not in dict(REVENUE_BASES):
            raise ApplicationError(
                "Choose what revenue counts: goods only, goods and shipping, or goods, "
                "shipping and taxes.",
                {"fields": {"revenue_basis": "Unknown choice."}},
            )
        if getattr(organization, key) != value:
            changed[key] = value
            setattr(organization, key, value)
    if changed:
        organization.save(update_fields=list(changed))
        audit_log(
            organization=organization,
            action="settings_changed",
            actor=actor,
            details={"changed": sorted(changed)},
            request=request,
        )
    return organization


def user_switch_organization(*, user, organization: Organization) -> Membership:
    membership = Membership.objects.filter(user=user, organization=organization).first()
    if membership is None:
        raise PermissionDenied("You are not a member of that organisation.")
    user.current_organization = organization
    user.save(update_fields=["current_organization"])
    return membership


# --- Sign-up and email verification -------------------------------------------------------


@transaction.atomic
def user_sign_up(
    *,
    email: str,
    password: str,
    full_name: str = "",
    organization_name: str = "",
    time_zone: str = "UTC",
    currency: str = "USD",
    email_verified: bool = False,
) -> User:
    """`email_verified=True` when the address is already proven (an invitation
    link reached it), so no confirmation email is sent."""
    email = (email or "").strip().lower()
    if User.objects.filter(email=email).exists():
        raise ApplicationError(
            "An account with this email already exists. Sign in instead.",
            {"fields": {"email": "Already registered."}},
        )
    try:
        user = User.objects.create_user(
            email=email,
            password=password,
            full_name=full_name.strip(),
            email_verified=email_verified,
        )
    except IntegrityError as exc:
        raise ApplicationError("An account with this email already exists.") from exc
    if organization_name:
        org = organization_create(
            name=organization_name, owner=user, time_zone=time_zone, currency=currency
        )
        audit_log(organization=org, action="sign_up", actor=user, target=email)
    if not email_verified:
        transaction.on_commit(lambda: email_verification_send(user=user))
    return user


def user_sign_up_request(*, email: str, password: str, **fields) -> User | None:
    """Sign-up from the public form, answering the same whether or not the address
    is taken (no account enumeration): a new address gets an account and a
    confirmation link; a taken one gets an email telling its owner someone tried,
    and None is returned. The caller shows one "check your inbox" page for both."""
    email = (email or "").strip().lower()
    existing = User.objects.filter(email=email).first()
    if existing is None:
        return user_sign_up(email=email, password=password, **fields)
    make_password(password)  # the same work as creating an account, so timing tells nothing
    transaction.on_commit(lambda: sign_up_attempt_notify(user=existing))
    log.info("accounts.sign_up_existing_email user_id=%s", existing.pk)
    return None


def sign_up_attempt_notify(*, user) -> None:
    site = settings.SITE_URL
    send_mail(
        "Someone tried to sign up to Segmenta with your address",
        "Someone (perhaps you) tried to sign up to Segmenta with this email address, "
        "which already has one. Nothing was changed.\n\n"
        f"If it was you, sign in at {site}{reverse('accounts:login')}\n"
        f"or, if you forgot your password, reset it at {site}{reverse('accounts:password_reset')}\n\n"
        "If it was not you, you can ignore this email.",
        None,
        [user.email],
    )


def email_verification_token(*, user) -> str:
    return signing.TimestampSigner(salt=_VERIFY_SALT).sign(f"{user.pk}:{user.email}")


def email_verification_send(*, user) -> None:
    link = settings.SITE_URL + reverse(
        "accounts:verify_email", args=[email_verification_token(user=user)]
    )
    send_mail(
        "Confirm your email for Segmenta",
        f"Welcome to Segmenta.\n\nConfirm your email address by opening this link:\n{link}\n\n"
        f"The link works for {settings.EMAIL_VERIFICATION_TTL_DAYS} days.",
        None,
        [user.email],
    )


def email_verification_confirm(*, token: str) -> User:
    try:
        value = signing.TimestampSigner(salt=_VERIFY_SALT).unsign(
            token, max_age=timedelta(days=settings.EMAIL_VERIFICATION_TTL_DAYS)
        )
    except signing.SignatureExpired as exc:
        raise ApplicationError(
            "This confirmation link has expired. Sign in to get a new one."
        ) from exc
    except signing.BadSignature as exc:
        raise ApplicationError("This confirmation link is not valid.") from exc
    user_id, _, email = value.partition(":")
    user = User.objects.filter(pk=user_id, email=email).first()
    if user is None:
        raise ApplicationError("This confirmation link is not valid.")
    if not user.email_verified:
        user.email_verified = True
        user.save(update_fields=["email_verified"])
    return user


# --- Members and invitations -------------------------------------------------------------


def _require_manager(*, organization, actor):
    """The acting member (an `Actor`), who must be an owner or admin here."""
    from .actor import Actor

    if actor is None:  # nobody named: not the platform's own work, so refused
        raise PermissionDenied("Only owners and admins can manage members and API keys.")
    return Actor.of(actor, organization=organization).require(
        Role.ADMIN, "Only owners and admins can manage members and API keys."
    )


def invitation_create(
    *, organization: Organization, email: str, role: str, invited_by, request=None
) -> tuple[Invitation, str]:
    actor_membership = _require_manager(organization=organization, actor=invited_by)
    email = (email or "").strip().lower()
    if role not in Role.values:
        raise ApplicationError(f"Unknown role: {role}.", {"fields": {"role": "Unknown role."}})
    if role == Role.OWNER and not actor_membership.can(Role.OWNER):
        raise PermissionDenied("Only an owner can invite another owner.")
    if Membership.objects.filter(organization=organization, user__email=email).exists():
        raise ApplicationError(
            f"{email} is already a member.", {"fields": {"email": "Already a member."}}
        )
    token, token_hash = Invitation.new_token()
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=token_hash,
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    link = settings.SITE_URL + reverse("accounts:invitation_accept", args=[token])
    transaction.on_commit(
        lambda: send_mail(
            f"You're invited to {organization.name} on Segmenta",
            f"{invited_by.get_full_name()} invited you to join {organization.name} on Segmenta as {Role(role).label.lower()}.\n\n"
            f"Accept the invitation:\n{link}\n\nThe link works once, for {settings.INVITATION_TTL_DAYS} days.",
            None,
            [email],
        )
    )
    audit_log(
        organization=organization,
        action="member_invited",
        actor=invited_by,
        target=email,
        details={"role": role},
        request=request,
    )
    return invitation, token


def invitation_get_by_token(*, token: str) -> Invitation:
    invitation = (
        Invitation.objects.select_related("organization")
        .filter(token_hash=Invitation.hash(token))
        .first()
    )
    if invitation is None:
        raise ApplicationError("This invitation link is not valid.", code="not_found", status=404)
    if invitation.status != "pending":
        reason = {
            "accepted": "has already been used",
            "revoked": "was withdrawn",
            "expired": "has expired",
        }[invitation.status]
        raise ApplicationError(
            f"This invitation {reason}. Ask for a new one.", code="gone", status=410
        )
    return invitation


@transaction.atomic
def invitation_accept(*, token: str, user, request=None) -> Membership:
    invitation = invitation_get_by_token(token=token)
    if invitation.email != user.email.lower():
        raise ApplicationError(
            f"This invitation was sent to {invitation.email}. Sign in with that address to accept it."
        )
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    if not user.email_verified:
        # The emailed link proves the address.
        user.email_verified = True
    user.current_organization = invitation.organization
    user.save(update_fields=["current_organization", "email_verified"])
    if created:
        audit_log(
            organization=invitation.organization,
            action="member_joined",
            actor=user,
            target=user.email,
            details={"role": invitation.role},
            request=request,
        )
    return membership


def invitation_revoke(*, invitation: Invitation, actor, request=None) -> None:
    _require_manager(organization=invitation.organization, actor=actor)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])


def _owners_left(organization, excluding: Membership) -> int:
    return (
        Membership.objects.filter(organization=organization, role=Role.OWNER)
        .exclude(pk=excluding.pk)
        .count()
    )


def membership_set_role(*, membership: Membership, role: str, actor, request=None) -> Membership:
    actor_membership = _require_manager(organization=membership.organization, actor=actor)
    if role not in Role.values:
        raise ApplicationError(f"Unknown role: {role}.")
    if Role.OWNER in (role, membership.role) and not actor_membership.can(Role.OWNER):
        raise PermissionDenied("Only an owner can grant or remove the owner role.")
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and _owners_left(membership.organization, membership) == 0
    ):
        raise ApplicationError("An organisation needs at least one owner.")
    old = membership.role
    if old != role:
        membership.role = role
        membership.save(update_fields=["role"])
        audit_log(
            organization=membership.organization,
            action="role_changed",
            actor=actor,
            target=membership.user.email,
            details={"from": old, "to": role},
            request=request,
        )
    return membership


def membership_remove(*, membership: Membership, actor, request=None) -> None:
    actor_membership = _require_manager(organization=membership.organization, actor=actor)
    if membership.role == Role.OWNER and not actor_membership.can(Role.OWNER):
        raise PermissionDenied("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _owners_left(membership.organization, membership) == 0:
        raise ApplicationError("An organisation needs at least one owner.")
    user = membership.user
    membership.delete()
    if user.current_organization_id == membership.organization_id:
        user.current_organization = None
        user.save(update_fields=["current_organization"])
    audit_log(
        organization=membership.organization,
        action="member_removed",
        actor=actor,
        target=user.email,
        request=request,
    )


# --- API keys -------------------------------------------------------------------------


def api_key_create(
    *, organization: Organization, name: str, scope: str = "read", actor=None, request=None
) -> tuple[ApiKey, str]:
    if actor is not None:
        _require_manager(organization=organization, actor=actor)
    name = (name or "").strip()
    if not name:
        raise ApplicationError(
            "Give the key a name so you can recognise it later.", {"fields": {"name": "Required."}}
        )
    if scope not in ("read", "write"):
        raise ApplicationError(
            "Scope must be 'read' or 'write'.", {"fields": {"scope": "Must be read or write."}}
        )
    key, prefix, key_hash = ApiKey.generate()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name[:100],
        prefix=prefix,
        key_hash=key_hash,
        scope=scope,
        created_by=actor,
    )
    audit_log(
        organization=organization,
        action="key_created",
        actor=actor,
        target=f"{name} ({prefix})",
        details={"scope": scope},
        request=request,
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey, actor, request=None) -> ApiKey:
    _require_manager(organization=api_key.organization, actor=actor)
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_log(
            organization=api_key.organization,
            action="key_revoked",
            actor=actor,
            target=f"{api_key.name} ({api_key.prefix})",
            request=request,
        )
    return api_key


def api_key_authenticate(*, key: str) -> ApiKey | None:
    """Find the active key; record when it was last used (at most once a minute)."""
    import hmac

    parts = (key or "").strip().split("_")
    if len(parts) < 3 or parts[0] != "sk":
        return None
    api_key = (
        ApiKey.objects.select_related("organization")
        .filter(prefix=parts[1], revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, ApiKey.hash(key.strip())):
        return None
    now = timezone.now()
    if api_key.last_used_at is None or (now - api_key.last_used_at).total_seconds() > 60:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    return api_key


__all__ = ["unscoped_context"]
