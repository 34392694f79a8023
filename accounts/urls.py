from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from . import support_views, suspension_views, views

app_name = "accounts"

urlpatterns = [
    path("login/", views.login_view, name="login"),
    path("login/verify/", views.login_verify, name="login_verify"),
    path("logout/", views.logout_view, name="logout"),
    path("signup/", views.signup, name="signup"),
    path("signup/done/", views.signup_done, name="signup_done"),
    path("verify/<str:token>/", views.verify_email, name="verify_email"),
    path("verify-resend/", views.verify_resend, name="verify_resend"),
    path("organizations/new/", views.organization_new, name="organization_new"),
    path("organizations/switch/", views.switch_organization, name="switch_organization"),
    path("invitations/<str:token>/", views.invitation_accept, name="invitation_accept"),
    path("profile/", views.profile, name="profile"),
    path("two-factor/", views.two_factor_setup, name="two_factor_setup"),
    path("two-factor/disable/", views.two_factor_disable, name="two_factor_disable"),
    path("settings/", views.settings_view, name="settings"),
    path("settings/members/", views.members, name="members"),
    path("settings/members/<int:pk>/", views.member_edit, name="member_edit"),
    path("settings/members/<int:pk>/remove/", views.member_remove, name="member_remove"),
    path(
        "settings/invitations/<int:pk>/revoke/", views.invitation_revoke, name="invitation_revoke"
    ),
    path("settings/api-keys/", views.api_keys, name="api_keys"),
    path("settings/api-keys/<int:pk>/revoke/", views.api_key_revoke, name="api_key_revoke"),
    path("settings/audit/", views.audit, name="audit"),
    path("settings/support/", support_views.support, name="support"),
    # One name, one pattern per decision (approve, decline, revoke; POST), so the
    # id is the route's only parameter (the isolation sweep builds it from ids):
    # reverse("accounts:support_decide", kwargs={"pk": …, "decision": "approve"}).
    *(
        path(
            f"settings/support/<int:pk>/{decision}/",
            support_views.support_decide,
            {"decision": decision},
            name="support_decide",
        )
        for decision in ("approve", "decline", "revoke")
    ),
    path("suspended/", suspension_views.suspended, name="suspended"),
    path(
        "password/change/",
        views.PasswordChangeView.as_view(
            template_name="accounts/password_change.html",
            success_url=reverse_lazy("accounts:profile"),
        ),
        name="password_change",
    ),
    path(
        "password/reset/",
        auth_views.PasswordResetView.as_view(
            template_name="accounts/password_reset.html",
            email_template_name="accounts/email/password_reset.txt",
            subject_template_name="accounts/email/password_reset_subject.txt",
            success_url=reverse_lazy("accounts:password_reset_done"),
        ),
        name="password_reset",
    ),
    path(
        "password/reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(
            template_name="accounts/password_reset_confirm.html",
            success_url=reverse_lazy("accounts:password_reset_complete"),
        ),
        name="password_reset_confirm",
    ),
    path(
        "password/reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
]
