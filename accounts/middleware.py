"""Sets the current organisation for every site request (STYLE rule 6)."""

from __future__ import annotations

from functools import cache

from django.http import FileResponse
from django.shortcuts import redirect
from django.urls import reverse

from .selectors import membership_for_request
from .tenancy import carry_scope, scope_enter, scope_exit

# Paths a signed-in user of an organisation that requires two-factor may still use
# before setting it up: signing in and out, setting it up, their own account, and
# switching to another organisation. Not the organisation's settings, members or
# API keys. The API enforces the requirement in its session authentication.
_TWO_FACTOR_EXEMPT = (
    "/accounts/login",
    "/accounts/logout",
    "/accounts/two-factor",
    "/accounts/verify",
    "/accounts/password",
    "/accounts/profile",
    "/accounts/invitations/",
    "/accounts/organizations/",
    "/accounts/settings/audit/",
    "/accounts/settings/support/",
    "/static/",
    "/api/",
    "/favicon",
)

# Paths a member of a suspended organisation may still use (accounts/suspension.py):
# the page that says so, signing in and out, their own account, two-factor set-up,
# switching to another organisation, and (owners) the export download, the audit
# log and support access (what Segmenta support looked at, and ending it). The API
# refuses suspended organisations in its authentication; public links (/m/, /r/:
# unsubscribing, surveys) name no member.
_SUSPENDED_EXEMPT = (
    "/accounts/suspended",
    "/accounts/login",
    "/accounts/logout",
    "/accounts/two-factor",
    "/accounts/verify",
    "/accounts/password",
    "/accounts/profile",
    "/accounts/organizations/",
    "/accounts/settings/audit/",
    "/accounts/settings/support/",
    "/static/",
    "/api/",
    "/admin/",
    "/m/",
    "/r/",
    "/healthz",
    "/favicon",
)


@cache
def _export_download_prefix() -> str:
    return reverse("customers:org_export_download", args=[1]).rsplit("1", 1)[0]


class TenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.organization = None
        request.membership = None
        user = getattr(request, "user", None)
        organization, bypass = None, False
        if request.path.startswith("/admin/") and getattr(user, "is_staff", False):
            # The back office: platform staff see every organisation (escape hatch).
            bypass = True
        elif user is not None and user.is_authenticated:
            membership = membership_for_request(user=user)
            if membership is not None:
                request.membership = membership
                request.organization = membership.organization
                organization = membership.organization_id
        # Reset in finally: whatever the request (or DRF's authentication, which
        # sets the scope again for API calls) did to the scope ends here.
        token = scope_enter(organization, bypass=bypass)
        try:
            redirect_to = self._two_factor_redirect(request) or self._suspended_redirect(request)
            if redirect_to:
                return redirect(redirect_to)
            response = self.get_response(request)
            if (
                response.streaming
                and not response.is_async
                and not isinstance(response, FileResponse)
            ):
                # The server reads a streaming body after this returns: its
                # queries must still run as the request's organisation.
                response.streaming_content = carry_scope(response.streaming_content)
            return response
        finally:
            scope_exit(token)

    @staticmethod
    def _suspended_redirect(request) -> str | None:
        org = request.organization
        if org is None or org.is_active:
            return None
        path = request.path
        if path.startswith(_SUSPENDED_EXEMPT) or path.startswith(_export_download_prefix()):
            return None
        return reverse("accounts:suspended")

    @staticmethod
    def _two_factor_redirect(request) -> str | None:
        org = request.organization
        if org is None or not org.require_two_factor or request.path.startswith(_TWO_FACTOR_EXEMPT):
            return None
        if request.user.is_verified():
            return None
        return reverse("accounts:two_factor_setup") + "?required=1"
