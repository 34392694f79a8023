from django import forms
from django.contrib.auth import password_validation

from .choices import currency_choices, time_zone_choices
from .models import Role


def _time_zone_field(**kwargs) -> forms.ChoiceField:
    # static/js/org-defaults.js preselects the browser's zone on an unbound form
    return forms.ChoiceField(
        choices=time_zone_choices,
        initial="UTC",
        label="Time zone",
        help_text="Dates in your files without a zone are read in this zone.",
        widget=forms.Select(attrs={"data-browser-default": "time_zone"}),
        **kwargs,
    )


def _currency_field(**kwargs) -> forms.ChoiceField:
    # static/js/org-defaults.js preselects the currency of the browser's locale
    return forms.ChoiceField(
        choices=currency_choices,
        initial="USD",
        label="Currency",
        help_text="The currency of your prices and order totals.",
        widget=forms.Select(attrs={"data-browser-default": "currency"}),
        **kwargs,
    )


class SignUpForm(forms.Form):
    full_name = forms.CharField(label="Your name", max_length=150)
    email = forms.EmailField(label="Work email")
    organization_name = forms.CharField(label="Business name", max_length=120)
    time_zone = _time_zone_field()
    currency = _currency_field()
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


class InvitationSignUpForm(SignUpForm):
    """Joining an organisation by invitation: its zone and currency are set."""

    time_zone = None
    currency = None


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
    time_zone = _time_zone_field()
    currency = _currency_field()


class InvitationForm(forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MARKETER)


class ApiKeyForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="Where the key will be used, e.g. 'Shop sync'."
    )
    scope = forms.ChoiceField(choices=[("read", "Read only"), ("write", "Read and write")])
