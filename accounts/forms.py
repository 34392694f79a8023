from django import forms
from django.contrib.auth import password_validation

from .models import Role


class SignUpForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="Work email")
    organization_name = forms.CharField(label="Business name", max_length=120)
    password = forms.CharField(
        label="Password",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 10 characters.",
    )

    def clean(self):
        data = super().clean()
        if data.get("password"):
            try:
                password_validation.validate_password(data["password"])
            except forms.ValidationError as exc:
                self.add_error("password", exc)
        return data


class LoginForm(forms.Form):
    email = forms.EmailField(
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )


class TokenForm(forms.Form):
    token = forms.CharField(
        label="6-digit code",
        max_length=8,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}
        ),
    )


class OrganizationForm(forms.Form):
    name = forms.CharField(label="Business name", max_length=120)
    time_zone = forms.CharField(
        max_length=64, initial="UTC", help_text="For example Europe/London."
    )
    currency = forms.CharField(
        max_length=3, initial="USD", help_text="Three-letter code, such as GBP."
    )


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Where the key will be used, e.g. 'Shop sync'."
    )
    scope = forms.ChoiceField(choices=[("read", "Read only"), ("write", "Read and write")])
