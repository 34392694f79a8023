"""Tenant scoping: the context variable, the fail-closed manager, and who sets it."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from accounts.api.views import OrganizationView
from accounts.middleware import TenantMiddleware
from accounts.models import AuditLogEntry, Membership, Role
from accounts.tenancy import (
    TenantNotSet,
    bypass_active,
    current_organization_id,
    no_tenant_context,
    tenant_context,
    unscoped_context,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_orgs(org, other_org):
    for o in (org, other_org):
        with tenant_context(o):
            AuditLogEntry.objects.create(action="sign_in", actor_label=f"someone@{o.slug}")
    return org, other_org


class TestScopedManager:
    def test_no_organisation_raises(self, two_orgs):
        assert current_organization_id() is None
        with pytest.raises(TenantNotSet):
            AuditLogEntry.objects.count()
        with pytest.raises(TenantNotSet):
            list(AuditLogEntry.objects.filter(action="sign_in"))

    def test_tenant_context_sees_only_that_organisation(self, two_orgs):
        org, other = two_orgs
        with tenant_context(org):
            assert [e.organization_id for e in AuditLogEntry.objects.all()] == [org.pk]
        with tenant_context(other.pk):  # an id works as well
            assert [e.organization_id for e in AuditLogEntry.objects.all()] == [other.pk]

    def test_save_takes_the_current_organisation_and_fails_closed_without(self, org):
        with tenant_context(org):
            entry = AuditLogEntry.objects.create(action="sign_in")
        assert entry.organization_id == org.pk
        with pytest.raises(TenantNotSet):
            AuditLogEntry(action="sign_in").save()

    def test_unscoped_returns_every_organisation(self, two_orgs):
        org, other = two_orgs
        ids = {e.organization_id for e in AuditLogEntry.objects.unscoped()}
        assert ids == {org.pk, other.pk}
        with tenant_context(org):  # unscoped() ignores the context on purpose...
            expected = 1 if connection.vendor == "postgresql" else 2
            # ...but on PostgreSQL row-level security still binds the statement to
            # the organisation: only unscoped_context() lifts both walls.
            assert AuditLogEntry.objects.unscoped().count() == expected

    def test_unscoped_context_returns_every_organisation(self, two_orgs):
        with unscoped_context():
            assert bypass_active()
            assert AuditLogEntry.objects.count() == 2
        assert not bypass_active()

    def test_unscoped_work_without_a_platform_role_refuses_clearly(self, two_orgs, settings):
        # PostgreSQL with neither DATABASE_PLATFORM_URL nor DATABASE_OWNER_URL: the
        # application role could only see nothing, so say what is missing instead.
        from django.core.exceptions import ImproperlyConfigured

        settings.PLATFORM_DATABASE_ALIAS = ""
        with unscoped_context(), pytest.raises(ImproperlyConfigured, match="DATABASE_PLATFORM_URL"):
            AuditLogEntry.objects.count()

    def test_context_resets_after_the_block(self, org, other_org):
        with tenant_context(org):
            with tenant_context(other_org):
                assert current_organization_id() == other_org.pk
            assert current_organization_id() == org.pk
            with unscoped_context():
                assert current_organization_id() is None
            with no_tenant_context():
                assert current_organization_id() is None
            assert current_organization_id() == org.pk
        assert current_organization_id() is None

    def test_context_resets_after_an_exception(self, org):
        with pytest.raises(ZeroDivisionError):
            with tenant_context(org):
                1 / 0  # noqa: B018
        assert current_organization_id() is None
        with pytest.raises(ZeroDivisionError):
            with unscoped_context():
                1 / 0  # noqa: B018
        assert not bypass_active()
        with pytest.raises(TenantNotSet):
            AuditLogEntry.objects.count()


class TestMiddleware:
    def _call(self, user, path="/jobs/"):
        seen = {}

        def view(request):
            seen["org_id"] = current_organization_id()
            seen["bypass"] = bypass_active()
            seen["organization"] = request.organization
            return HttpResponse("ok")

        request = RequestFactory().get(path)
        request.user = user
        response = TenantMiddleware(view)(request)
        return response, seen

    def test_sets_the_members_organisation_and_resets_it(self, owner, org):
        response, seen = self._call(owner)
        assert response.status_code == 200
        assert seen == {"org_id": org.pk, "bypass": False, "organization": org}
        assert current_organization_id() is None

    def test_resets_even_when_the_view_raises(self, owner):
        def view(request):
            assert current_organization_id() is not None
            raise RuntimeError("boom")

        request = RequestFactory().get("/")
        request.user = owner
        with pytest.raises(RuntimeError):
            TenantMiddleware(view)(request)
        assert current_organization_id() is None

    def test_uses_the_current_organisation_of_a_user_in_two(self, owner, org, other_org):
        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        owner.current_organization = other_org
        owner.save()
        _, seen = self._call(owner)
        assert seen["org_id"] == other_org.pk

    def test_anonymous_gets_no_organisation(self):
        from django.contrib.auth.models import AnonymousUser

        _, seen = self._call(AnonymousUser())
        assert seen == {"org_id": None, "bypass": False, "organization": None}

    def test_staff_in_the_back_office_are_unscoped_only_there(self, owner):
        owner.is_staff = True
        owner.save()
        _, seen = self._call(owner, "/admin/")
        assert seen["bypass"] is True
        _, seen = self._call(owner, "/jobs/")
        assert seen["bypass"] is False
        assert not bypass_active()


class TestApiAuthentication:
    @pytest.fixture
    def spy(self, monkeypatch):
        seen = {}
        original = OrganizationView.get

        def get(self, request):
            seen["org_id"] = current_organization_id()
            return original(self, request)

        monkeypatch.setattr(OrganizationView, "get", get)
        return seen

    def test_api_key_sets_the_organisation_and_it_is_reset(self, api, org, spy):
        assert api.get("/api/v1/organization/").status_code == 200
        assert spy["org_id"] == org.pk
        assert current_organization_id() is None

    def test_session_sets_the_organisation_and_it_is_reset(self, owner, org, spy):
        client = APIClient()
        client.force_login(owner)
        assert client.get("/api/v1/organization/").status_code == 200
        assert spy["org_id"] == org.pk
        assert current_organization_id() is None

    def test_key_of_another_org_never_sees_the_session_org(self, owner, other_org, spy):
        from accounts.tests.factories import make_api_key

        _, raw = make_api_key(other_org, "read")
        client = APIClient()
        client.force_login(owner)  # the key wins: it is checked first
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
        assert client.get("/api/v1/organization/").json()["slug"] == other_org.slug
        assert spy["org_id"] == other_org.pk


class TestPublicScopeApi:
    """Issue 9: middleware, API authentication and tasks set the scope through a public
    API; services check the organisation they are handed against the scope."""

    def test_enter_and_exit_restore_the_previous_scope(self, org, other_org):
        from accounts.tenancy import scope_enter, scope_exit

        with tenant_context(org):
            token = scope_enter(other_org)
            assert current_organization_id() == other_org.pk
            scope_exit(token)
            assert current_organization_id() == org.pk
        token = scope_enter(bypass=True)
        assert bypass_active() and current_organization_id() is None
        scope_exit(token)
        assert not bypass_active()

    def test_a_service_handed_another_organisation_refuses(self, org, other_org):
        from accounts.tenancy import ScopeMismatch, scope_check

        with tenant_context(org):
            scope_check(organization=org)
            scope_check(organization=org.pk)
            with pytest.raises(ScopeMismatch):
                scope_check(organization=other_org)
        with pytest.raises(TenantNotSet):
            scope_check(organization=org)
        with unscoped_context():
            scope_check(organization=other_org)

    def test_prediction_segment_and_rule_runs_refuse_a_mismatched_organisation(
        self, org, other_org
    ):
        from accounts.tenancy import ScopeMismatch
        from predictions.services import prediction_run
        from segmentation.services.rules import rule_segment_create
        from segmentation.services.segments import segmentation_run

        with tenant_context(org):
            with pytest.raises(ScopeMismatch):
                prediction_run(organization=other_org)
            with pytest.raises(ScopeMismatch):
                rule_segment_create(organization=other_org, name="x", rule={})
            with pytest.raises(ScopeMismatch):
                segmentation_run(organization=other_org)

    def test_no_module_imports_the_scope_internals(self):
        import pathlib
        import re

        root = pathlib.Path(__file__).resolve().parents[2]
        offenders = []
        for path in root.glob("*/**/*.py"):
            if ".venv" in path.parts or path.name == "tenancy.py":
                continue
            text = path.read_text(encoding="utf-8")
            if re.search(
                r"from accounts\.tenancy import[^\n]*\b_|from \.tenancy import[^\n]*\b_", text
            ):
                offenders.append(str(path.relative_to(root)))
        assert offenders == []
