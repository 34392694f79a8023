"""Account services: sign-up, verification, sign-in failures, members, invitations, keys."""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone

from accounts import services
from accounts.models import (
    ApiKey,
    AuditLogEntry,
    FailedLogin,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from accounts.tenancy import tenant_context
from core.exceptions import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db


def _audit(org, action=None):
    with tenant_context(org):
        qs = AuditLogEntry.objects.all()
        if action:
            qs = qs.filter(action=action)
        return list(qs)


class TestSignUp:
    def test_creates_user_organisation_and_owner_membership(
        self, mailoutbox, django_capture_on_commit_callbacks
    ):
        with django_capture_on_commit_callbacks(execute=True):
            user = services.user_sign_up(
                email="Ada@Example.com",
                password="a-long-enough-password",
                full_name="Ada Lovelace",
                organization_name="Ada's Analytical Goods",
                time_zone="Europe/London",
                currency="gbp",
            )
        assert user.email == "ada@example.com"
        assert user.check_password("a-long-enough-password")
        assert not user.email_verified
        membership = Membership.objects.get(user=user)
        assert membership.role == Role.OWNER
        org = membership.organization
        assert org.name == "Ada's Analytical Goods"
        assert (org.time_zone, org.currency) == ("Europe/London", "GBP")
        assert user.current_organization == org
        assert [m.to for m in mailoutbox] == [["ada@example.com"]]
        assert "/accounts/verify/" in mailoutbox[0].body
        assert [e.action for e in _audit(org)] == ["sign_up"]

    def test_duplicate_email_is_refused_with_a_clear_message(self, owner):
        with pytest.raises(ApplicationError, match="already exists"):
            services.user_sign_up(
                email="OWNER@acme.test", password="another-password-1", organization_name="X"
            )
        assert User.objects.filter(email="owner@acme.test").count() == 1

    def test_slug_is_unique_for_organisations_with_the_same_name(self, owner):
        a = services.organization_create(name="Blue Shop", owner=owner)
        b = services.organization_create(name="Blue Shop", owner=owner)
        assert a.slug == "blue-shop"
        assert b.slug == "blue-shop-2"

    def test_taken_slug_is_refused_not_a_crash(self, owner, org):
        with pytest.raises(ApplicationError, match="slug"):
            services.organization_create(name="Other", owner=owner, slug=org.slug)

    def test_unknown_time_zone_is_refused(self, owner):
        with pytest.raises(ApplicationError, match="Unknown time zone"):
            services.organization_create(name="Somewhere", owner=owner, time_zone="Mars/Olympus")
        assert not Organization.objects.filter(name="Somewhere").exists()


class TestEmailVerification:
    def test_token_confirms_the_address(self, django_user_model):
        user = django_user_model.objects.create_user("new@example.com", "pw-123456789")
        token = services.email_verification_token(user=user)
        assert services.email_verification_confirm(token=token) == user
        user.refresh_from_db()
        assert user.email_verified

    def test_tampered_token_is_not_valid(self, owner):
        token = services.email_verification_token(user=owner)
        with pytest.raises(ApplicationError, match="not valid"):
            services.email_verification_confirm(token=token[:-2] + "xx")

    def test_expired_token_says_so(self, owner, monkeypatch, settings):
        real_time = time.time
        monkeypatch.setattr(
            signing.time,
            "time",
            lambda: real_time() - (settings.EMAIL_VERIFICATION_TTL_DAYS + 1) * 86400,
        )
        token = services.email_verification_token(user=owner)
        monkeypatch.setattr(signing.time, "time", real_time)
        with pytest.raises(ApplicationError, match="expired"):
            services.email_verification_confirm(token=token)

    def test_token_stops_working_when_the_email_changes(self, owner):
        token = services.email_verification_token(user=owner)
        owner.email = "changed@acme.test"
        owner.save()
        with pytest.raises(ApplicationError, match="not valid"):
            services.email_verification_confirm(token=token)


class TestLoginFailures:
    def test_failure_is_recorded_in_every_organisation_of_the_user(self, owner, org, other_org):
        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        services.login_failure_record(email="Owner@Acme.test")
        assert FailedLogin.objects.filter(email="owner@acme.test").count() == 1
        for o in (org, other_org):
            entries = _audit(o, "sign_in_failed")
            assert [e.target for e in entries] == ["owner@acme.test"]

    def test_unknown_email_is_counted_but_audited_nowhere(self, org):
        services.login_failure_record(email="nobody@example.com")
        assert FailedLogin.objects.filter(email="nobody@example.com").exists()
        assert _audit(org) == []

    def test_throttled_after_the_limit(self, settings):
        settings.LOGIN_FAILURE_LIMIT = 3
        for _ in range(2):
            services.login_failure_record(email="x@example.com")
        assert not services.login_is_throttled(email="x@example.com")
        services.login_failure_record(email="x@example.com")
        assert services.login_is_throttled(email="X@example.com")
        assert not services.login_is_throttled(email="y@example.com")

    def test_old_failures_do_not_count(self, settings):
        settings.LOGIN_FAILURE_LIMIT = 2
        old = timezone.now() - timedelta(minutes=16)
        FailedLogin.objects.bulk_create(
            [FailedLogin(email="x@example.com", created_at=old) for _ in range(5)]
        )
        assert not services.login_is_throttled(email="x@example.com")


class TestMembers:
    def test_only_managers_invite(self, org, marketer):
        with pytest.raises(PermissionDenied):
            services.invitation_create(
                organization=org, email="new@example.com", role=Role.VIEWER, invited_by=marketer
            )

    def test_admin_cannot_invite_an_owner(self, org, make_member):
        admin = make_member(org, Role.ADMIN)
        with pytest.raises(PermissionDenied):
            services.invitation_create(
                organization=org, email="boss@example.com", role=Role.OWNER, invited_by=admin
            )

    def test_cannot_demote_the_last_owner(self, org, owner):
        membership = Membership.objects.get(organization=org, user=owner)
        with pytest.raises(ApplicationError, match="at least one owner"):
            services.membership_set_role(membership=membership, role=Role.ADMIN, actor=owner)
        membership.refresh_from_db()
        assert membership.role == Role.OWNER

    def test_cannot_remove_the_last_owner(self, org, owner):
        membership = Membership.objects.get(organization=org, user=owner)
        with pytest.raises(ApplicationError, match="at least one owner"):
            services.membership_remove(membership=membership, actor=owner)
        assert Membership.objects.filter(pk=membership.pk).exists()

    def test_an_owner_can_step_down_when_another_owner_exists(self, org, owner, make_member):
        make_member(org, Role.OWNER)
        membership = Membership.objects.get(organization=org, user=owner)
        services.membership_set_role(membership=membership, role=Role.ADMIN, actor=owner)
        membership.refresh_from_db()
        assert membership.role == Role.ADMIN

    def test_admin_cannot_touch_an_owner(self, org, owner, make_member):
        admin = make_member(org, Role.ADMIN)
        membership = Membership.objects.get(organization=org, user=owner)
        with pytest.raises(PermissionDenied):
            services.membership_set_role(membership=membership, role=Role.VIEWER, actor=admin)
        with pytest.raises(PermissionDenied):
            services.membership_remove(membership=membership, actor=admin)

    def test_role_change_is_audited(self, org, owner, viewer):
        membership = Membership.objects.get(organization=org, user=viewer)
        services.membership_set_role(membership=membership, role=Role.MARKETER, actor=owner)
        (entry,) = _audit(org, "role_changed")
        assert entry.target == viewer.email
        assert entry.details == {"from": "viewer", "to": "marketer"}
        assert entry.actor == owner

    def test_removed_member_loses_their_current_organisation(self, org, owner, viewer):
        membership = Membership.objects.get(organization=org, user=viewer)
        services.membership_remove(membership=membership, actor=owner)
        viewer.refresh_from_db()
        assert viewer.current_organization is None
        assert [e.target for e in _audit(org, "member_removed")] == [viewer.email]


class TestInvitations:
    def _invite(self, org, owner, email="new@example.com", role=Role.MARKETER):
        return services.invitation_create(
            organization=org, email=email, role=role, invited_by=owner
        )

    def test_token_is_stored_only_as_a_hash(self, org, owner):
        invitation, token = self._invite(org, owner)
        assert invitation.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in str(Invitation.objects.filter(pk=invitation.pk).values().get())

    def test_accepting_makes_a_membership_once(self, org, owner, django_user_model):
        invitation, token = self._invite(org, owner)
        user = django_user_model.objects.create_user("new@example.com", "pw-123456789")
        membership = services.invitation_accept(token=token, user=user)
        assert (membership.organization, membership.role) == (org, Role.MARKETER)
        user.refresh_from_db()
        assert user.email_verified
        assert user.current_organization == org
        with pytest.raises(ApplicationError, match="already been used") as exc:
            services.invitation_accept(token=token, user=user)
        assert exc.value.status == 410

    def test_expired_invitation_is_refused(self, org, owner):
        invitation, token = self._invite(org, owner)
        Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now())
        with pytest.raises(ApplicationError, match="expired"):
            services.invitation_get_by_token(token=token)

    def test_revoked_invitation_is_refused(self, org, owner):
        invitation, token = self._invite(org, owner)
        services.invitation_revoke(invitation=invitation, actor=owner)
        with pytest.raises(ApplicationError, match="withdrawn"):
            services.invitation_get_by_token(token=token)

    def test_unknown_token_is_not_found(self):
        with pytest.raises(ApplicationError) as exc:
            services.invitation_get_by_token(token="nope")
        assert exc.value.status == 404

    def test_invitation_is_for_its_address_only(self, org, owner, django_user_model):
        _, token = self._invite(org, owner)
        stranger = django_user_model.objects.create_user("other@example.com", "pw-123456789")
        with pytest.raises(ApplicationError, match="new@example.com"):
            services.invitation_accept(token=token, user=stranger)
        assert not Membership.objects.filter(user=stranger).exists()

    def test_existing_member_cannot_be_invited(self, org, owner, viewer):
        with pytest.raises(ApplicationError, match="already a member"):
            self._invite(org, owner, email=viewer.email)


class TestApiKeys:
    def test_only_a_hash_is_stored(self, org, owner):
        api_key, raw = services.api_key_create(
            organization=org, name="Shop sync", scope="write", actor=owner
        )
        assert raw.startswith(f"sk_{api_key.prefix}_")
        assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
        stored = ApiKey.objects.filter(pk=api_key.pk).values().get()
        assert all(raw not in str(value) for value in stored.values())
        (entry,) = _audit(org, "key_created")
        assert entry.target == f"Shop sync ({api_key.prefix})"

    def test_marketer_cannot_create_keys(self, org, marketer):
        with pytest.raises(PermissionDenied):
            services.api_key_create(organization=org, name="k", actor=marketer)

    def test_authenticate_records_last_use(self, org):
        api_key, raw = services.api_key_create(organization=org, name="k")
        assert api_key.last_used_at is None
        assert services.api_key_authenticate(key=raw) == api_key
        api_key.refresh_from_db()
        assert api_key.last_used_at is not None

    @pytest.mark.parametrize("bad", ["", "sk_", "sk_abc_def", "Bearer x", "sk_{prefix}_wrong"])
    def test_wrong_keys_do_not_authenticate(self, org, bad):
        api_key, _ = services.api_key_create(organization=org, name="k")
        assert services.api_key_authenticate(key=bad.format(prefix=api_key.prefix)) is None

    def test_revoked_key_no_longer_authenticates(self, org, owner):
        api_key, raw = services.api_key_create(organization=org, name="k", actor=owner)
        services.api_key_revoke(api_key=api_key, actor=owner)
        assert services.api_key_authenticate(key=raw) is None
        assert [e.action for e in _audit(org, "key_revoked")] == ["key_revoked"]


class TestOrganisationSettings:
    def test_update_saves_and_audits_what_changed(self, org, owner):
        services.organization_update(
            organization=org,
            actor=owner,
            name="Acme Gifts Ltd",
            currency="eur",
            sensitive_attributes=["gender", "religion"],
        )
        org.refresh_from_db()
        assert (org.name, org.currency) == ("Acme Gifts Ltd", "EUR")
        assert org.sensitive_attributes == ["gender", "religion"]
        (entry,) = _audit(org, "settings_changed")
        assert entry.details == {"changed": ["currency", "name", "sensitive_attributes"]}

    def test_bad_time_zone_changes_nothing(self, org, owner):
        with pytest.raises(ApplicationError):
            services.organization_update(
                organization=org, actor=owner, name="New name", time_zone="Nowhere/City"
            )
        org.refresh_from_db()
        assert org.name == "Acme Gifts"

    def test_switch_requires_membership(self, owner, other_org):
        with pytest.raises(PermissionDenied):
            services.user_switch_organization(user=owner, organization=other_org)
