"""DRF authentication that also sets the current organisation (DRF authenticates
after middleware has run, so the API sets the scope here; the middleware's
`finally` resets it when the request ends)."""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, Membership
from accounts.selectors import membership_for_request
from accounts.services import api_key_authenticate
from accounts.suspension import SUSPENDED_CODE, suspended_message
from accounts.tenancy import scope_enter


@dataclass
class ApiKeyUser:
    """The principal behind an API key: acts for one organisation with the key's scope."""

    api_key: ApiKey
    is_authenticated: bool = True
    is_active: bool = True
    is_staff: bool = False
    is_superuser: bool = False
    pk = None
    id = None

    @property
    def email(self) -> str:
        return f"api-key:{self.api_key.prefix}"

    def get_full_name(self) -> str:
        return f"API key {self.api_key.name}"


def _refuse_suspended(organization) -> None:
    """A suspended organisation's key or member gets 403 `organization_suspended`
    (core.api.exceptions turns the code and the detail into the error's code and
    message). Raised as DRF's own exception so the request is left signed out."""
    if not organization.is_active:
        raise exceptions.PermissionDenied(suspended_message(organization), code=SUSPENDED_CODE)


def _activate(request, organization, membership: Membership | None, api_key: ApiKey | None) -> None:
    django_request = getattr(request, "_request", request)
    for target in (request, django_request):
        target.organization = organization
        target.membership = membership
        target.api_key = api_key
    # No exit here: the middleware's `scope_exit` restores the scope it found.
    scope_enter(organization)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Api-Key"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        keyword, _, key = header.partition(" ")
        if keyword.lower() != self.keyword.lower():
            return None
        api_key = api_key_authenticate(key=key)
        if api_key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        _refuse_suspended(api_key.organization)
        _activate(request, api_key.organization, None, api_key)
        return ApiKeyUser(api_key), api_key

    def authenticate_header(self, request):
        return self.keyword


class TenantSessionAuthentication(authentication.SessionAuthentication):
    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user, auth = result
        membership = membership_for_request(user=user)
        if membership is None:
            raise exceptions.PermissionDenied("You are not a member of any organisation.")
        _refuse_suspended(membership.organization)
        # The site's middleware exempts /api/ from its two-factor redirect; the
        # requirement holds here instead (the user is django-otp's, with is_verified).
        verified = getattr(user, "is_verified", None)
        if membership.organization.require_two_factor and not (verified and verified()):
            raise exceptions.PermissionDenied(
                f"{membership.organization.name} requires two-factor sign-in."
            )
        _activate(request, membership.organization, membership, None)
        return user, auth


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create keys in Settings → API keys.",
        }


class TenantSessionAuthenticationScheme(SessionScheme):
    """Documented like DRF's session authentication (the cookie), which it extends."""

    target_class = "accounts.api.authentication.TenantSessionAuthentication"
