"""Site views for accounts: sign-up, sign-in (with two-factor), organisations,
members, invitations, API keys and the audit log."""

from __future__ import annotations

import base64

import segno
from django.contrib import messages
from django.contrib.auth import authenticate, get_user_model, login, logout
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_totp.models import TOTPDevice

from backoffice.usage import plan_usage
from core.exceptions import ApplicationError
from core.web import safe_next_url

from . import services
from .actor import Actor
from .choices import currency_choices, time_zone_choices
from .decorators import org_required
from .forms import (
    ApiKeyForm,
    InvitationForm,
    InvitationSignUpForm,
    LoginForm,
    OrganizationForm,
    SignUpForm,
    TokenForm,
)
from .models import (
    REVENUE_BASES,
    ApiKey,
    AuditLogEntry,
    Invitation,
    Membership,
    Organization,
    Role,
)
from .suspension import sign_in_decision, support_contact

User = get_user_model()
_PENDING = "segmenta_2fa_pending_user"


def _confirmed_device(user) -> TOTPDevice | None:
    return TOTPDevice.objects.filter(user=user, confirmed=True).first()


# --- Sign-in --------------------------------------------------------------------------


def login_view(request):
    if request.user.is_authenticated:
        return redirect("core:dashboard")
    form = LoginForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"].lower()
        if services.login_is_throttled(email=email, request=request):
            form.add_error(
                None, "Too many failed attempts. Wait 15 minutes, or reset your password."
            )
        else:
            user = authenticate(request, username=email, password=form.cleaned_data["password"])
            refusal, landing = sign_in_decision(user) if user is not None else ("", "")
            if user is None:
                form.add_error(None, "That email and password don't match an account.")
            elif refusal:
                # Every organisation of the user is suspended (accounts/suspension.py).
                form.add_error(None, refusal)
            else:
                services.login_failures_clear(email=email, request=request)
                # An owner of a suspended organisation lands on its suspended page.
                next_url = landing or safe_next_url(request, default=reverse("core:dashboard"))
                if _confirmed_device(user):
                    request.session[_PENDING] = user.pk
                    request.session["segmenta_next"] = next_url
                    return redirect("accounts:login_verify")
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                return redirect(next_url)
    return render(
        request, "accounts/login.html", {"form": form, "next": safe_next_url(request, default="")}
    )


def login_verify(request):
    user_id = request.session.get(_PENDING)
    user = User.objects.filter(pk=user_id).first() if user_id else None
    if user is None:
        return redirect("accounts:login")
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        device = _confirmed_device(user)
        if device is not None and device.verify_token(form.cleaned_data["token"].replace(" ", "")):
            nxt = request.session.pop("segmenta_next", reverse("core:dashboard"))
            request.session.pop(_PENDING, None)
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            otp_login(request, device)
            return redirect(nxt)
        services.login_failure_record(email=user.email, request=request)
        form.add_error("token", "That code is not right. Codes change every 30 seconds.")
    return render(request, "accounts/login_verify.html", {"form": form})


@require_POST
def logout_view(request):
    logout(request)
    messages.info(request, "You have signed out.")
    return redirect("accounts:login")


# --- Sign-up ----------------------------------------------------------------------------


def signup(request):
    if request.user.is_authenticated:
        return redirect("core:dashboard")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.user_sign_up_request(**form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            # The same page whether the address was new or taken (no enumeration).
            request.session["segmenta_signup_email"] = form.cleaned_data["email"].strip().lower()
            return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form})


def signup_done(request):
    email = request.session.get("segmenta_signup_email")
    if not email:
        return redirect("accounts:signup")
    return render(request, "accounts/signup_done.html", {"email": email})


def verify_email(request, token: str):
    try:
        user = services.email_verification_confirm(token=token)
    except ApplicationError as exc:
        return render(
            request,
            "accounts/message.html",
            {"title": "Email not confirmed", "text": exc.message},
            status=400,
        )
    messages.success(request, f"Thank you — {user.email} is confirmed.")
    return redirect("core:dashboard" if request.user.is_authenticated else "accounts:login")


@login_required
@require_POST
def verify_resend(request):
    services.email_verification_send(user=request.user)
    messages.info(request, f"We sent a new confirmation link to {request.user.email}.")
    return redirect("accounts:profile")


# --- Organisations ----------------------------------------------------------------------


@login_required
def organization_new(request):
    form = OrganizationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(owner=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"{org.name} is ready. You are its owner.")
            return redirect("core:dashboard")
    has_org = Membership.objects.filter(user=request.user).exists()
    return render(request, "accounts/organization_new.html", {"form": form, "has_org": has_org})


@login_required
@require_POST
def switch_organization(request):
    org = get_object_or_404(
        Organization, slug=request.POST.get("organization", ""), memberships__user=request.user
    )
    services.user_switch_organization(user=request.user, organization=org)
    messages.info(request, f"Switched to {org.name}.")
    return redirect("core:dashboard")


def invitation_accept(request, token: str):
    try:
        invitation = services.invitation_get_by_token(token=token)
    except ApplicationError as exc:
        return render(
            request,
            "accounts/message.html",
            {"title": "Invitation not available", "text": exc.message},
            status=exc.status,
        )
    if not request.user.is_authenticated:
        existing = User.objects.filter(email=invitation.email).exists()
        if request.method == "POST" and not existing:
            form = InvitationSignUpForm(
                {
                    **request.POST.dict(),
                    "email": invitation.email,
                    "organization_name": invitation.organization.name,
                }
            )
            if form.is_valid():
                try:
                    # One transaction: no account is left behind if accepting fails.
                    with transaction.atomic():
                        user = services.user_sign_up(
                            email=invitation.email,
                            password=form.cleaned_data["password"],
                            full_name=form.cleaned_data["full_name"],
                            email_verified=True,  # the emailed invitation link proves it
                        )
                        services.invitation_accept(token=token, user=user, request=request)
                except ApplicationError as exc:
                    form.add_error(None, exc.message)
                else:
                    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                    messages.success(request, f"Welcome to {invitation.organization.name}.")
                    return redirect("core:dashboard")
        else:
            form = InvitationSignUpForm(initial={"email": invitation.email})
        return render(
            request,
            "accounts/invitation_accept.html",
            {"invitation": invitation, "form": form, "existing": existing},
        )
    if request.method == "POST":
        try:
            services.invitation_accept(token=token, user=request.user, request=request)
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return render(
                request,
                "accounts/invitation_accept.html",
                {"invitation": invitation, "signed_in": True},
            )
        messages.success(request, f"You joined {invitation.organization.name}.")
        return redirect("core:dashboard")
    return render(
        request, "accounts/invitation_accept.html", {"invitation": invitation, "signed_in": True}
    )


# --- Your account ----------------------------------------------------------------------------


@login_required
def profile(request):
    return render(request, "accounts/profile.html", {"device": _confirmed_device(request.user)})


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    def form_valid(self, form):
        response = super().form_valid(form)
        user = form.user
        # The sign-in throttle tells people to reset their password: a reset lifts it.
        services.login_failures_clear(email=user.email)
        services.audit_for_user(user=user, action="password_reset", request=self.request)
        return response


class PasswordChangeView(auth_views.PasswordChangeView):
    def form_valid(self, form):
        response = super().form_valid(form)
        services.audit_for_user(
            user=self.request.user, action="password_changed", request=self.request
        )
        messages.success(self.request, "Your password has been changed.")
        return response


@login_required
def two_factor_setup(request):
    if _confirmed_device(request.user):
        messages.info(request, "Two-factor sign-in is already on.")
        return redirect("accounts:profile")
    device = TOTPDevice.objects.filter(user=request.user, confirmed=False).first()
    if device is None:
        device = TOTPDevice.objects.create(
            user=request.user, name="Authenticator app", confirmed=False
        )
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if device.verify_token(form.cleaned_data["token"].replace(" ", "")):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            otp_login(request, device)
            services.audit_for_user(user=request.user, action="two_factor_enabled", request=request)
            messages.success(
                request, "Two-factor sign-in is on. You'll be asked for a code when you sign in."
            )
            return redirect("accounts:profile")
        form.add_error(
            "token", "That code is not right. Check the time on your phone and try again."
        )
    qr_svg = segno.make(device.config_url, error="m").svg_inline(
        scale=4, title="QR code for your authenticator app"
    )
    secret = base64.b32encode(device.bin_key).decode()
    secret = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))  # easier to type
    return render(
        request,
        "accounts/two_factor_setup.html",
        {"form": form, "qr_svg": qr_svg, "secret": secret, "required": request.GET.get("required")},
    )


@login_required
@require_POST
def two_factor_disable(request):
    # Any of the user's organisations, not only the current one: switching first
    # must not be a way round the requirement.
    requiring = Organization.objects.filter(
        memberships__user=request.user, require_two_factor=True
    ).first()
    if requiring is not None:
        messages.error(
            request, f"{requiring.name} requires two-factor sign-in, so it cannot be turned off."
        )
        return redirect("accounts:profile")
    TOTPDevice.objects.filter(user=request.user).delete()
    services.audit_for_user(user=request.user, action="two_factor_disabled", request=request)
    messages.info(request, "Two-factor sign-in is off.")
    return redirect("accounts:profile")


# --- Organisation settings ------------------------------------------------------------------------

# Customer attributes an owner may mark as sensitive: (field, label).
SENSITIVE_CHOICES = [
    ("gender", "Gender"),
    ("birth_date", "Birth date (age)"),
    ("city", "City"),
    ("postal_code", "Postal code"),
    ("latitude", "Latitude"),
    ("longitude", "Longitude"),
    ("country", "Country"),
]
# Never modelled, whatever the settings say (segmentation adds them too).
ALWAYS_SENSITIVE = ("gender", "birth_date")


@org_required
def settings_view(request):
    org = request.organization
    actor = Actor.from_request(request)
    if request.method == "POST":
        if not actor.can(Role.ADMIN):
            raise PermissionDenied("Only owners and admins can change settings.")
        fields = {
            "name": request.POST.get("name", org.name).strip(),
            "time_zone": request.POST.get("time_zone", org.time_zone).strip(),
            "currency": request.POST.get("currency", org.currency).strip(),
            "revenue_basis": request.POST.get("revenue_basis", org.revenue_basis).strip(),
            "sensitive_attributes": sorted(
                set(request.POST.getlist("sensitive"))
                | set(ALWAYS_SENSITIVE)
                | {
                    a.strip()
                    for a in request.POST.get("sensitive_extra", "").split(",")
                    if a.strip()
                }
            ),
        }
        if set(fields["sensitive_attributes"]) == set(org.sensitive_attributes) | set(
            ALWAYS_SENSITIVE
        ):
            # The always-sensitive ones are implied; saving unchanged stores nothing new.
            fields["sensitive_attributes"] = org.sensitive_attributes
        if actor.can(Role.OWNER):
            fields["require_two_factor"] = request.POST.get("require_two_factor") == "on"
        try:
            services.organization_update(organization=org, actor=actor, request=request, **fields)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, "Settings saved.")
        return redirect("accounts:settings")
    known = {value for value, _ in SENSITIVE_CHOICES}
    extra = [a for a in org.sensitive_attributes if a not in known]
    chosen = set(org.sensitive_attributes) | set(ALWAYS_SENSITIVE)
    choices = [
        {"value": v, "label": label, "checked": v in chosen, "always": v in ALWAYS_SENSITIVE}
        for v, label in SENSITIVE_CHOICES
    ]
    return render(
        request,
        "accounts/settings.html",
        {
            "tab": "general",
            "choices": choices,
            "extra": ", ".join(extra),
            "time_zones": time_zone_choices(org.time_zone),
            "currencies": currency_choices(org.currency),
            "revenue_bases": REVENUE_BASES,
            "plan": plan_usage(org),
            "support_email": support_contact(),
        },
    )


@org_required
def members(request):
    org = request.organization
    form = InvitationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                services.invitation_create(
                    organization=org, invited_by=request.user, request=request, **form.cleaned_data
                )
            except ApplicationError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(request, f"Invitation sent to {form.cleaned_data['email']}.")
                return redirect("accounts:members")
    return render(
        request,
        "accounts/members.html",
        {
            "tab": "members",
            "form": form,
            "members": Membership.objects.filter(organization=org).select_related("user"),
            "invitations": Invitation.objects.filter(
                organization=org, accepted_at__isnull=True, revoked_at__isnull=True
            ),
            "roles": Role.choices,
        },
    )


@org_required(role=Role.ADMIN)
@require_POST
def member_edit(request, pk: int):
    membership = get_object_or_404(Membership, pk=pk, organization=request.organization)
    try:
        services.membership_set_role(
            membership=membership,
            role=request.POST.get("role", ""),
            actor=request.user,
            request=request,
        )
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display().lower()}."
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:members")


@org_required(role=Role.ADMIN)
@require_POST
def member_remove(request, pk: int):
    membership = get_object_or_404(Membership, pk=pk, organization=request.organization)
    try:
        services.membership_remove(membership=membership, actor=request.user, request=request)
        messages.success(request, f"{membership.user.email} was removed.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("accounts:members")


@org_required(role=Role.ADMIN)
@require_POST
def invitation_revoke(request, pk: int):
    invitation = get_object_or_404(Invitation, pk=pk, organization=request.organization)
    services.invitation_revoke(invitation=invitation, actor=request.user, request=request)
    messages.info(request, f"The invitation to {invitation.email} was withdrawn.")
    return redirect("accounts:members")


@org_required
def api_keys(request):
    org = request.organization
    form = ApiKeyForm(request.POST or None)
    new_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _, new_key = services.api_key_create(
                organization=org, actor=request.user, request=request, **form.cleaned_data
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            form = ApiKeyForm()
    return render(
        request,
        "accounts/api_keys.html",
        {
            "tab": "api_keys",
            "form": form,
            "new_key": new_key,
            "keys": ApiKey.objects.filter(organization=org),
        },
    )


@org_required(role=Role.ADMIN)
@require_POST
def api_key_revoke(request, pk: int):
    api_key = get_object_or_404(ApiKey, pk=pk, organization=request.organization)
    services.api_key_revoke(api_key=api_key, actor=request.user, request=request)
    messages.info(
        request, f"Key {api_key.name} was revoked; requests using it are refused from now on."
    )
    return redirect("accounts:api_keys")


# The audit log's filters: what the owner may narrow it to.
AUDIT_FILTERS = {
    "support": ("Segmenta support", {"actor_kind": "staff"}),
    "sign_in": ("Sign-ins", {"action__in": ["sign_in", "sign_in_failed", "sign_out"]}),
    "privacy": ("Exports and erasures", {"action__in": ["data_exported", "data_erased"]}),
}


@org_required(role=Role.OWNER)
def audit(request):
    shown = request.GET.get("show", "")
    entries = AuditLogEntry.objects.all()
    if shown in AUDIT_FILTERS:
        entries = entries.filter(**AUDIT_FILTERS[shown][1])
    else:
        shown = ""
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    filters = [("", "Everything")] + [(key, label) for key, (label, _) in AUDIT_FILTERS.items()]
    context = {"tab": "audit", "page": page, "shown": shown, "filters": filters}
    return render(request, "accounts/audit.html", context)
