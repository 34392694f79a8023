"""Site views of accounts: what a person sees and can do in the browser."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

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
from core.models import Job

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery"  # the factories' password


def _actions(org) -> list[str]:
    with tenant_context(org):
        return list(AuditLogEntry.objects.values_list("action", flat=True))


def _login(client, email, password=PASSWORD, *, REMOTE_ADDR="127.0.0.1", **extra):  # noqa: N803
    return client.post(
        reverse("accounts:login"),
        {"email": email, "password": password, **extra},
        REMOTE_ADDR=REMOTE_ADDR,
    )


SIGN_UP = {
    "full_name": "Grace Hopper",
    "email": "grace@example.com",
    "organization_name": "Cobol Coffee",
    "time_zone": "America/New_York",
    "currency": "USD",
    "password": "a-long-enough-password",
}


def _code(device, drift=0) -> str:
    return f"{totp(device.bin_key, drift=drift):06d}"


# --- Sign-up and email verification ---------------------------------------------------------


class TestSignUp:
    def test_sign_up_creates_account_and_organisation_and_asks_to_confirm(
        self, client, mailoutbox, django_capture_on_commit_callbacks, link_in
    ):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(reverse("accounts:signup"), SIGN_UP)
        assert response.status_code == 302
        assert response.url == reverse("accounts:signup_done")
        page = client.get(response.url).content.decode()
        assert "Check your inbox" in page and "grace@example.com" in page
        user = User.objects.get(email="grace@example.com")
        org = Organization.objects.get(name="Cobol Coffee")
        assert Membership.objects.get(user=user, organization=org).role == Role.OWNER

        (message,) = mailoutbox
        assert message.to == ["grace@example.com"]
        link = link_in(message, "/accounts/verify/")
        response = client.get(link, follow=True)
        assert "is confirmed" in response.content.decode()
        user.refresh_from_db()
        assert user.email_verified

        # Then signs in and lands in the new organisation.
        response = _login(client, "grace@example.com", SIGN_UP["password"])
        dashboard = client.get(response.url)
        assert dashboard.wsgi_request.organization == org
        assert "Cobol Coffee" in dashboard.content.decode()

    def test_weak_password_is_refused_with_a_reason(self, client):
        response = client.post(
            reverse("accounts:signup"),
            {
                "full_name": "A",
                "email": "a@example.com",
                "organization_name": "A",
                "password": "short",
            },
        )
        assert response.status_code == 200
        assert "too short" in response.content.decode()
        assert not User.objects.filter(email="a@example.com").exists()

    def test_a_taken_email_gets_the_same_answer_as_a_new_one(
        self, client, owner, mailoutbox, django_capture_on_commit_callbacks
    ):
        """No account enumeration: the page cannot tell whether the address is
        registered; the owner of the address is told by email instead."""
        answers = []
        for email in ("new-person@example.com", owner.email):
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(reverse("accounts:signup"), {**SIGN_UP, "email": email})
            page = client.get(response.url).content.decode()
            main = page[page.index("<main") : page.index("</main>")]  # no per-request tokens
            answers.append((response.status_code, response.url, main.replace(email, "EMAIL")))
        assert answers[0] == answers[1]
        assert "already" not in answers[1][2]
        assert not Organization.objects.filter(
            name="Cobol Coffee", memberships__user=owner
        ).exists()
        assert not User.objects.get(email=owner.email).check_password(SIGN_UP["password"])
        warning = mailoutbox[-1]
        assert warning.to == [owner.email]
        assert "tried to sign up" in warning.body
        assert "/accounts/password/reset/" in warning.body
        assert "_auth_user_id" not in client.session

    @pytest.mark.parametrize("token", ["garbage", "MTox:1abc:def"])
    def test_bad_verification_link_gives_a_clear_message(self, client, token):
        response = client.get(reverse("accounts:verify_email", args=[token]))
        assert response.status_code == 400
        assert "This confirmation link is not valid." in response.content.decode()

    def test_expired_verification_link_says_so(self, client, owner, monkeypatch, settings):
        import time

        from django.core import signing

        real = time.time
        monkeypatch.setattr(signing.time, "time", lambda: real() - 10 * 86400)
        token = services.email_verification_token(user=owner)
        monkeypatch.setattr(signing.time, "time", real)
        response = client.get(reverse("accounts:verify_email", args=[token]))
        assert response.status_code == 400
        assert "expired" in response.content.decode()

    def test_resend_sends_a_new_link(self, client, owner, mailoutbox):
        owner.email_verified = False
        owner.save()
        client.force_login(owner)
        client.post(reverse("accounts:verify_resend"))
        assert [m.to for m in mailoutbox] == [[owner.email]]


# --- Sign-in, throttling, sign-out, passwords ---------------------------------------------------


class TestSignIn:
    def test_login_and_logout(self, client, owner, org):
        response = _login(client, "OWNER@acme.test")
        assert response.status_code == 302
        assert response.url == reverse("core:dashboard")
        assert client.get(response.url).wsgi_request.user == owner
        assert "sign_in" in _actions(org)

        response = client.post(reverse("accounts:logout"))
        assert response.url == reverse("accounts:login")
        assert client.get(reverse("core:dashboard")).status_code == 302

    def test_logout_needs_post(self, owner_client):
        assert owner_client.get(reverse("accounts:logout")).status_code == 405

    def test_next_is_followed_only_when_it_is_local(self, client, owner):
        response = _login(client, owner.email, next="/jobs/")
        assert response.url == "/jobs/"
        client.logout()
        response = _login(client, owner.email, next="https://evil.example.com/")
        assert response.url == reverse("core:dashboard")

    def test_failed_login_is_refused_and_audited_in_the_users_orgs(
        self, client, owner, org, other_org
    ):
        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        response = _login(client, owner.email, "wrong-password")
        assert response.status_code == 200
        assert "don&#x27;t match" in response.content.decode()
        assert "_auth_user_id" not in client.session
        assert _actions(org) == ["sign_in_failed"]
        assert _actions(other_org) == ["sign_in_failed"]

    def test_throttled_per_source_not_per_account(self, client, owner, settings):
        """Wrong passwords from one address slow that address down; the owner
        signing in from elsewhere with the right password still gets in."""
        settings.LOGIN_FAILURE_LIMIT = 3
        attacker = {"REMOTE_ADDR": "203.0.113.9"}
        for _ in range(5):
            _login(client, owner.email, "wrong-password", **attacker)
        response = _login(client, owner.email, **attacker)
        assert response.status_code == 200
        assert "Too many failed attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session

        response = _login(client, owner.email, REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 302
        assert client.session["_auth_user_id"] == str(owner.pk)

    def test_one_source_guessing_many_accounts_is_throttled(self, client, owner, settings):
        settings.LOGIN_FAILURE_LIMIT = 2
        for i in range(8):
            _login(client, f"guess{i}@example.com", "wrong-password", REMOTE_ADDR="203.0.113.9")
        response = _login(client, owner.email, REMOTE_ADDR="203.0.113.9")
        assert "Too many failed attempts" in response.content.decode()
        assert _login(client, owner.email, REMOTE_ADDR="198.51.100.7").status_code == 302

    def test_successful_login_clears_the_failure_count(self, client, owner, settings):
        settings.LOGIN_FAILURE_LIMIT = 3
        for _ in range(2):
            _login(client, owner.email, "wrong-password")
        assert _login(client, owner.email).status_code == 302
        assert not FailedLogin.objects.filter(email=owner.email).exists()

    def test_signed_in_user_is_sent_on_from_login_and_signup(self, owner_client):
        assert owner_client.get(reverse("accounts:login")).status_code == 302
        assert owner_client.get(reverse("accounts:signup")).status_code == 302


class TestPasswords:
    def test_change_password(self, owner_client, owner, org):
        response = owner_client.post(
            reverse("accounts:password_change"),
            {
                "old_password": PASSWORD,
                "new_password1": "a-brand-new-password",
                "new_password2": "a-brand-new-password",
            },
        )
        assert response.status_code == 302
        owner.refresh_from_db()
        assert owner.check_password("a-brand-new-password")
        # Still signed in after the change.
        assert owner_client.get(reverse("accounts:profile")).status_code == 200
        assert "password_changed" in _actions(org)

    def test_change_password_needs_the_old_one(self, owner_client, owner):
        response = owner_client.post(
            reverse("accounts:password_change"),
            {
                "old_password": "not-it",
                "new_password1": "a-brand-new-password",
                "new_password2": "a-brand-new-password",
            },
        )
        assert response.status_code == 200
        owner.refresh_from_db()
        assert owner.check_password(PASSWORD)

    def test_reset_by_email(self, client, owner, org, mailoutbox, link_in, settings):
        settings.LOGIN_FAILURE_LIMIT = 2
        for _ in range(2):
            _login(client, owner.email, "wrong-password")

        response = client.post(reverse("accounts:password_reset"), {"email": owner.email})
        assert response.url == reverse("accounts:password_reset_done")
        (message,) = mailoutbox
        assert message.to == [owner.email]
        link = link_in(message, "/accounts/password/reset/")
        response = client.get(link, follow=True)  # Django swaps the token for a session one
        form_url = response.redirect_chain[-1][0]
        assert response.context["validlink"]
        response = client.post(
            form_url,
            {"new_password1": "a-reset-password-1", "new_password2": "a-reset-password-1"},
        )
        assert response.url == reverse("accounts:password_reset_complete")
        owner.refresh_from_db()
        assert owner.check_password("a-reset-password-1")
        assert "password_reset" in _actions(org)
        # Resetting lifts the sign-in throttle the failures had set.
        assert _login(client, owner.email, "a-reset-password-1").status_code == 302

    def test_reset_link_works_once(self, client, owner, mailoutbox, link_in):
        client.post(reverse("accounts:password_reset"), {"email": owner.email})
        link = link_in(mailoutbox[0], "/accounts/password/reset/")
        response = client.get(link, follow=True)
        form_url = response.redirect_chain[-1][0]
        client.post(form_url, {"new_password1": "reset-pass-12", "new_password2": "reset-pass-12"})
        response = client.get(link, follow=True)
        assert not response.context["validlink"]
        assert "not valid any more" in response.content.decode()

    def test_reset_for_unknown_email_reveals_nothing(self, client, mailoutbox):
        response = client.post(reverse("accounts:password_reset"), {"email": "who@example.com"})
        assert response.url == reverse("accounts:password_reset_done")
        assert mailoutbox == []


# --- Two-factor sign-in ------------------------------------------------------------------------


class TestTwoFactor:
    def test_setup_with_a_real_code(self, owner_client, owner, org):
        page = owner_client.get(reverse("accounts:two_factor_setup"))
        assert page.status_code == 200
        assert "<svg" in page.content.decode()
        device = TOTPDevice.objects.get(user=owner, confirmed=False)

        response = owner_client.post(reverse("accounts:two_factor_setup"), {"token": _code(device)})
        assert response.url == reverse("accounts:profile")
        device.refresh_from_db()
        assert device.confirmed
        assert "two_factor_enabled" in _actions(org)

    def test_setup_refuses_a_wrong_code(self, owner_client, owner):
        owner_client.get(reverse("accounts:two_factor_setup"))
        device = TOTPDevice.objects.get(user=owner)
        good = {_code(device, d) for d in (-1, 0, 1)}
        wrong = next(c for c in ("000000", "111111", "222222") if c not in good)
        response = owner_client.post(reverse("accounts:two_factor_setup"), {"token": wrong})
        assert response.status_code == 200
        assert "That code is not right" in response.content.decode()
        device.refresh_from_db()
        assert not device.confirmed

    def _device(self, user):
        return TOTPDevice.objects.create(user=user, name="app", confirmed=True)

    def test_login_then_requires_the_code(self, client, owner):
        device = self._device(owner)
        response = _login(client, owner.email)
        assert response.url == reverse("accounts:login_verify")
        assert "_auth_user_id" not in client.session
        # Not signed in yet: the dashboard still sends to the login page.
        assert client.get(reverse("core:dashboard")).status_code == 302

        response = client.post(reverse("accounts:login_verify"), {"token": _code(device)})
        assert response.url == reverse("core:dashboard")
        page = client.get(response.url)
        assert page.status_code == 200
        assert page.wsgi_request.user.is_verified()

    def test_wrong_code_is_refused(self, client, owner, org):
        device = self._device(owner)
        _login(client, owner.email)
        good = {_code(device, d) for d in (-1, 0, 1)}
        wrong = next(c for c in ("000000", "111111", "222222") if c not in good)
        response = client.post(reverse("accounts:login_verify"), {"token": wrong})
        assert response.status_code == 200
        assert "That code is not right" in response.content.decode()
        assert "_auth_user_id" not in client.session
        assert "sign_in_failed" in _actions(org)

    def test_verify_page_without_a_password_step_goes_to_login(self, client):
        response = client.get(reverse("accounts:login_verify"))
        assert response.url == reverse("accounts:login")

    def test_owner_can_require_two_factor(self, owner_client, org, viewer, client):
        response = owner_client.post(
            reverse("accounts:settings"),
            {
                "name": org.name,
                "time_zone": org.time_zone,
                "currency": org.currency,
                "require_two_factor": "on",
            },
        )
        assert response.status_code == 302
        org.refresh_from_db()
        assert org.require_two_factor

        client.force_login(viewer)
        response = client.get(reverse("core:dashboard"))
        assert response.status_code == 302
        assert response.url == reverse("accounts:two_factor_setup") + "?required=1"
        page = client.get(response.url)
        assert "requires two-factor sign-in" in page.content.decode()
        # Neither the organisation's settings pages nor the API are a way round it.
        for path in ("/accounts/settings/", "/accounts/settings/api-keys/", "/jobs/"):
            assert client.get(path).url == response.url, path
        assert client.get("/api/v1/jobs/").status_code == 403
        # Their own account and signing out still work.
        assert client.get(reverse("accounts:profile")).status_code == 200
        assert client.post(reverse("accounts:logout")).status_code == 302

    def test_member_with_two_factor_passes_when_required(self, client, org, viewer):
        org.require_two_factor = True
        org.save()
        device = self._device(viewer)
        _login(client, viewer.email)
        client.post(reverse("accounts:login_verify"), {"token": _code(device)})
        assert client.get(reverse("core:dashboard")).status_code == 200
        assert client.get("/api/v1/jobs/").status_code == 200

    def test_admin_cannot_require_two_factor(self, client, org, admin):
        client.force_login(admin)
        client.post(
            reverse("accounts:settings"),
            {"name": org.name, "time_zone": "UTC", "currency": "USD", "require_two_factor": "on"},
        )
        org.refresh_from_db()
        assert not org.require_two_factor

    def test_cannot_turn_off_while_any_organisation_requires_it(
        self, client, owner, org, other_org
    ):
        other_org.require_two_factor = True
        other_org.save()
        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        self._device(owner)
        client.force_login(owner)  # current organisation: org, which does not require it
        response = client.post(reverse("accounts:two_factor_disable"), follow=True)
        assert "requires two-factor" in response.content.decode()
        assert TOTPDevice.objects.filter(user=owner).exists()

    def test_turn_off(self, owner_client, owner, org):
        self._device(owner)
        owner_client.post(reverse("accounts:two_factor_disable"))
        assert not TOTPDevice.objects.filter(user=owner).exists()
        assert "two_factor_disabled" in _actions(org)


# --- Organisation settings and roles ---------------------------------------------------------


def _settings_post(client, **extra):
    data = {
        "name": "Acme Gifts & Co",
        "time_zone": "Europe/Paris",
        "currency": "eur",
        "sensitive": ["gender", "birth_date"],
        "sensitive_extra": "religion, income",
        **extra,
    }
    return client.post(reverse("accounts:settings"), data)


class TestSettings:
    def test_admin_saves_settings_including_sensitive_attributes(self, client, org, admin):
        client.force_login(admin)
        response = _settings_post(client)
        assert response.url == reverse("accounts:settings")
        org.refresh_from_db()
        assert org.name == "Acme Gifts & Co"
        assert org.time_zone == "Europe/Paris"
        assert org.currency == "EUR"
        assert org.sensitive_attributes == ["birth_date", "gender", "income", "religion"]
        page = client.get(reverse("accounts:settings")).content.decode()
        assert 'value="income, religion"' in page
        assert "settings_changed" in _actions(org)

    def test_gender_and_birth_date_are_always_sensitive(self, owner_client, org):
        owner_client.post(
            reverse("accounts:settings"), {"name": org.name, "time_zone": "UTC", "currency": "USD"}
        )
        org.refresh_from_db()
        from accounts.tenancy import tenant_context
        from segmentation.services.segments import _settings_params

        # Implied rather than stored: what the models leave out includes them.
        with tenant_context(org):
            assert {"birth_date", "gender"} <= set(_settings_params(org)["sensitive"])
        page = owner_client.get(reverse("accounts:settings")).content.decode()
        assert 'value="gender" checked disabled' in page

    def test_bad_time_zone_is_explained(self, owner_client, org):
        response = _settings_post(owner_client, time_zone="Atlantis/Lost")
        page = owner_client.get(response.url).content.decode()
        assert "Unknown time zone" in page
        org.refresh_from_db()
        assert org.name == "Acme Gifts"

    def test_marketer_cannot_change_settings(self, client, org, marketer):
        client.force_login(marketer)
        response = _settings_post(client)
        assert response.status_code == 403
        org.refresh_from_db()
        assert org.name == "Acme Gifts"

    def test_viewer_gets_403_and_sees_a_read_only_form(self, client, org, viewer):
        client.force_login(viewer)
        assert _settings_post(client).status_code == 403
        org.refresh_from_db()
        assert org.name == "Acme Gifts"
        page = client.get(reverse("accounts:settings")).content.decode()
        assert "Only owners and admins can change settings." in page
        assert "Save settings" not in page

    def test_user_without_organisation_is_sent_to_create_one(self, client, django_user_model):
        user = django_user_model.objects.create_user("lonely@example.com", PASSWORD)
        client.force_login(user)
        response = client.get(reverse("core:dashboard"))
        assert response.url == reverse("accounts:organization_new")

    def test_anonymous_is_sent_to_login(self, client):
        response = client.get(reverse("accounts:settings"))
        assert response.url.startswith(reverse("accounts:login") + "?next=")


# --- Members and invitations -------------------------------------------------------------------


class TestMembers:
    def test_viewer_and_marketer_cannot_manage_members(self, client, org, owner, viewer, marketer):
        owner_membership = Membership.objects.get(user=owner)
        for user in (viewer, marketer):
            client.force_login(user)
            page = client.get(reverse("accounts:members")).content.decode()
            assert "Send invitation" not in page
            assert (
                client.post(
                    reverse("accounts:member_edit", args=[owner_membership.pk]), {"role": "viewer"}
                ).status_code
                == 403
            )
            assert (
                client.post(
                    reverse("accounts:member_remove", args=[owner_membership.pk])
                ).status_code
                == 403
            )
        client.force_login(marketer)
        response = client.post(
            reverse("accounts:members"), {"email": "x@example.com", "role": "viewer"}, follow=True
        )
        assert "Only owners and admins" in response.content.decode()
        client.force_login(viewer)
        response = client.post(
            reverse("accounts:members"), {"email": "x@example.com", "role": "viewer"}
        )
        assert response.status_code == 403
        assert not Invitation.objects.exists()
        owner_membership.refresh_from_db()
        assert owner_membership.role == Role.OWNER

    def test_admin_changes_a_role_and_it_is_audited(self, client, org, admin, viewer):
        client.force_login(admin)
        membership = Membership.objects.get(user=viewer)
        client.post(reverse("accounts:member_edit", args=[membership.pk]), {"role": "marketer"})
        membership.refresh_from_db()
        assert membership.role == Role.MARKETER
        assert "role_changed" in _actions(org)

    def test_cannot_demote_or_remove_the_last_owner(self, owner_client, owner):
        membership = Membership.objects.get(user=owner)
        response = owner_client.post(
            reverse("accounts:member_edit", args=[membership.pk]), {"role": "admin"}, follow=True
        )
        assert "at least one owner" in response.content.decode()
        response = owner_client.post(
            reverse("accounts:member_remove", args=[membership.pk]), follow=True
        )
        assert "at least one owner" in response.content.decode()
        membership.refresh_from_db()
        assert membership.role == Role.OWNER

    def test_owner_removes_a_member(self, owner_client, viewer):
        membership = Membership.objects.get(user=viewer)
        owner_client.post(reverse("accounts:member_remove", args=[membership.pk]))
        assert not Membership.objects.filter(pk=membership.pk).exists()


class TestInvitations:
    def _invite(self, client, email="colleague@example.com", role="marketer"):
        return client.post(reverse("accounts:members"), {"email": email, "role": role})

    def _sent_link(self, client, mailoutbox, link_in, capture, **kwargs):
        with capture(execute=True):
            response = self._invite(client, **kwargs)
        assert response.status_code == 302
        return link_in(mailoutbox[-1], "/accounts/invitations/")

    def test_invite_new_user_who_signs_up_on_the_invitation_page(
        self,
        owner_client,
        client_factory,
        org,
        mailoutbox,
        link_in,
        django_capture_on_commit_callbacks,
    ):
        link = self._sent_link(
            owner_client, mailoutbox, link_in, django_capture_on_commit_callbacks
        )
        (message,) = mailoutbox
        assert message.to == ["colleague@example.com"]
        assert "Acme Gifts" in message.subject
        assert "member_invited" in _actions(org)

        guest = client_factory()
        page = guest.get(link)
        assert page.status_code == 200
        assert "Join Acme Gifts" in page.content.decode()
        assert "colleague@example.com" in page.content.decode()

        with django_capture_on_commit_callbacks(execute=True):
            response = guest.post(link, {"full_name": "Col League", "password": "joining-pass-1"})
        assert response.url == reverse("core:dashboard")
        user = User.objects.get(email="colleague@example.com")
        assert user.email_verified  # the emailed link proved the address
        membership = Membership.objects.get(user=user)
        assert (membership.organization, membership.role) == (org, Role.MARKETER)
        # They joined; they did not get an organisation of their own, nor a second email.
        assert Membership.objects.filter(user=user).count() == 1
        assert len(mailoutbox) == 1
        assert guest.get(response.url).wsgi_request.organization == org
        assert "member_joined" in _actions(org)

        # Single use.
        again = client_factory().get(link)
        assert again.status_code == 410
        assert "already been used" in again.content.decode()

    def test_invitation_sign_up_cannot_choose_another_email(
        self, owner_client, client_factory, mailoutbox, link_in, django_capture_on_commit_callbacks
    ):
        link = self._sent_link(
            owner_client, mailoutbox, link_in, django_capture_on_commit_callbacks
        )
        client_factory().post(
            link,
            {"full_name": "X", "password": "joining-pass-1", "email": "attacker@example.com"},
        )
        assert not User.objects.filter(email="attacker@example.com").exists()
        assert User.objects.filter(email="colleague@example.com").exists()

    def test_existing_user_signs_in_and_accepts(
        self,
        owner_client,
        client_factory,
        org,
        other_org,
        make_member,
        mailoutbox,
        link_in,
        django_capture_on_commit_callbacks,
    ):
        existing = make_member(other_org, Role.OWNER, "colleague@example.com")
        link = self._sent_link(
            owner_client, mailoutbox, link_in, django_capture_on_commit_callbacks, role="viewer"
        )
        guest = client_factory()
        page = guest.get(link).content.decode()
        assert "Sign in to accept" in page

        response = _login(guest, existing.email, next=link)
        assert response.url == link
        assert "Accept invitation" in guest.get(link).content.decode()
        response = guest.post(link)
        assert response.url == reverse("core:dashboard")
        assert Membership.objects.get(user=existing, organization=org).role == Role.VIEWER
        # Joining switches them to the new organisation.
        assert guest.get(response.url).wsgi_request.organization == org

    def test_signed_in_as_someone_else_is_refused(
        self,
        owner_client,
        client,
        org,
        marketer,
        mailoutbox,
        link_in,
        django_capture_on_commit_callbacks,
        client_factory,
    ):
        link = self._sent_link(
            owner_client, mailoutbox, link_in, django_capture_on_commit_callbacks
        )
        other = client_factory()
        other.force_login(marketer)
        response = other.post(link)
        assert "was sent to colleague@example.com" in response.content.decode()
        assert not User.objects.filter(email="colleague@example.com").exists()

    def test_expired_and_revoked_links_are_refused(
        self,
        owner_client,
        client_factory,
        mailoutbox,
        link_in,
        django_capture_on_commit_callbacks,
    ):
        expired = self._sent_link(
            owner_client, mailoutbox, link_in, django_capture_on_commit_callbacks
        )
        Invitation.objects.filter(email="colleague@example.com").update(
            expires_at=timezone.now() - timedelta(minutes=1)
        )
        revoked = self._sent_link(
            owner_client,
            mailoutbox,
            link_in,
            django_capture_on_commit_callbacks,
            email="second@example.com",
        )
        invitation = Invitation.objects.get(email="second@example.com")
        owner_client.post(reverse("accounts:invitation_revoke", args=[invitation.pk]))

        guest = client_factory()
        for link, reason in ((expired, "has expired"), (revoked, "was withdrawn")):
            response = guest.get(link)
            assert response.status_code == 410
            assert reason in response.content.decode()
            response = guest.post(link, {"full_name": "X", "password": "joining-pass-1"})
            assert response.status_code == 410
        assert not User.objects.filter(email__in=["colleague@example.com", "second@example.com"])

    def test_unknown_link_is_404(self, client):
        response = client.get(reverse("accounts:invitation_accept", args=["not-a-token"]))
        assert response.status_code == 404
        assert "not valid" in response.content.decode()


# --- Switching organisation ----------------------------------------------------------------------


class TestSwitchOrganisation:
    def test_switch_changes_the_organisation_and_the_data_shown(
        self, owner_client, owner, org, other_org
    ):
        Membership.objects.create(organization=other_org, user=owner, role=Role.VIEWER)
        with tenant_context(org):
            Job.objects.create(kind="demo", title="Acme import")
        with tenant_context(other_org):
            Job.objects.create(kind="demo", title="Rival import")

        page = owner_client.get(reverse("core:jobs"))
        assert page.wsgi_request.organization == org
        assert "Acme import" in page.content.decode()
        assert "Rival import" not in page.content.decode()
        assert 'id="org-switch"' in page.content.decode()

        response = owner_client.post(
            reverse("accounts:switch_organization"), {"organization": other_org.slug}
        )
        assert response.url == reverse("core:dashboard")
        page = owner_client.get(reverse("core:jobs"))
        assert page.wsgi_request.organization == other_org
        assert page.wsgi_request.membership.role == Role.VIEWER
        assert "Rival import" in page.content.decode()
        assert "Acme import" not in page.content.decode()

    def test_cannot_switch_to_an_organisation_you_are_not_in(self, owner_client, other_org):
        response = owner_client.post(
            reverse("accounts:switch_organization"), {"organization": other_org.slug}
        )
        assert response.status_code == 404

    def test_create_a_second_organisation(self, owner_client, owner, org):
        response = owner_client.post(
            reverse("accounts:organization_new"),
            {"name": "Second Shop", "time_zone": "Asia/Tokyo", "currency": "JPY"},
        )
        assert response.url == reverse("core:dashboard")
        second = Organization.objects.get(name="Second Shop")
        assert Membership.objects.get(user=owner, organization=second).role == Role.OWNER
        assert owner_client.get(response.url).wsgi_request.organization == second


# --- API keys and audit log pages ---------------------------------------------------------------


class TestApiKeyPages:
    def test_create_shows_the_key_once_and_stores_a_hash(self, owner_client, org):
        response = owner_client.post(
            reverse("accounts:api_keys"), {"name": "Shop sync", "scope": "write"}
        )
        assert response.status_code == 200
        api_key = ApiKey.objects.get(name="Shop sync")
        raw = response.context["new_key"]
        assert raw.startswith(f"sk_{api_key.prefix}_")
        assert raw in response.content.decode()
        assert api_key.key_hash == ApiKey.hash(raw)
        assert api_key.scope == "write"

        later = owner_client.get(reverse("accounts:api_keys")).content.decode()
        assert raw not in later
        assert f"sk_{api_key.prefix}_" in later
        assert "key_created" in _actions(org)

    def test_revoke(self, owner_client, org, owner):
        api_key, raw = services.api_key_create(organization=org, name="Old", actor=owner)
        owner_client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))
        api_key.refresh_from_db()
        assert api_key.revoked_at is not None
        assert "revoked" in owner_client.get(reverse("accounts:api_keys")).content.decode()
        assert "key_revoked" in _actions(org)

    def test_marketer_and_viewer_cannot_create_or_revoke(self, client, org, marketer, viewer):
        api_key, _ = services.api_key_create(organization=org, name="Keep")
        for user in (marketer, viewer):
            client.force_login(user)
            page = client.get(reverse("accounts:api_keys")).content.decode()
            assert "Create key" not in page
            client.post(reverse("accounts:api_keys"), {"name": "Mine", "scope": "write"})
            revoke = client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))
            assert revoke.status_code == 403
        assert list(ApiKey.objects.values_list("name", flat=True)) == ["Keep"]
        api_key.refresh_from_db()
        assert api_key.revoked_at is None


class TestAuditLogPage:
    def test_only_owners_see_it(self, client, owner, admin, org):
        client.force_login(admin)
        assert client.get(reverse("accounts:audit")).status_code == 403
        assert "Audit log" not in client.get(reverse("accounts:settings")).content.decode()
        client.force_login(owner)
        assert client.get(reverse("accounts:audit")).status_code == 200

    def test_records_security_events(self, client, owner, viewer, org):
        _login(client, owner.email, "wrong")
        _login(client, owner.email)
        membership = Membership.objects.get(user=viewer)
        client.post(reverse("accounts:member_edit", args=[membership.pk]), {"role": "marketer"})
        client.post(reverse("accounts:api_keys"), {"name": "CRM", "scope": "read"})
        api_key = ApiKey.objects.get(name="CRM")
        client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))

        page = client.get(reverse("accounts:audit")).content.decode()
        for label in (
            "Failed sign-in",
            "Signed in",
            "Role changed",
            "API key created",
            "API key revoked",
        ):
            assert label in page
        assert set(_actions(org)) >= {
            "sign_in_failed",
            "sign_in",
            "role_changed",
            "key_created",
            "key_revoked",
        }

    def test_details_are_readable(self, owner_client, org, owner):
        services.audit_log(
            organization=org, action="role_changed", details={"from": "viewer", "to": "admin"}
        )
        services.audit_log(
            organization=org, action="settings_changed", details={"changed": ["currency", "name"]}
        )
        page = owner_client.get(reverse("accounts:audit")).content.decode()
        assert "viewer → admin" in page
        assert "changed: currency, name" in page
        assert "{" not in page.split("<tbody>")[1].split("</tbody>")[0]

    def test_audit_shows_only_this_organisation(self, owner_client, other_org):
        services.audit_log(organization=other_org, action="sign_in", actor_label="rival@x.test")
        page = owner_client.get(reverse("accounts:audit")).content.decode()
        assert "rival@x.test" not in page
