from __future__ import annotations

from django import forms
from django.conf import settings

from core.uploads import too_large_message

from . import fields as customer_fields
from .models import Customer, ImportKind

DELIMITER_CHOICES = [
    ("", "Detect"),
    (",", "Comma ( , )"),
    (";", "Semicolon ( ; )"),
    ("tab", "Tab"),
    ("|", "Pipe ( | )"),
]
ENCODING_CHOICES = [
    ("", "Detect"),
    ("utf-8", "UTF-8"),
    ("cp1252", "Windows-1252 (Western Europe)"),
    ("latin-1", "ISO-8859-1 (Latin-1)"),
    ("utf-16", "UTF-16"),
]
DATE_FORMAT_CHOICES = [
    ("", "Detect (ISO 8601 and unambiguous dates)"),
    ("%d/%m/%Y %H:%M", "Day first: 31/12/2024 18:30"),
    ("%d/%m/%Y", "Day first: 31/12/2024"),
    ("%m/%d/%Y %H:%M", "Month first: 12/31/2024 18:30"),
    ("%m/%d/%Y", "Month first: 12/31/2024"),
    ("%d.%m.%Y %H:%M", "Day first with dots: 31.12.2024 18:30"),
    ("%d.%m.%Y", "Day first with dots: 31.12.2024"),
    ("%d-%m-%Y", "Day first with dashes: 31-12-2024"),
    ("%m-%d-%Y", "Month first with dashes: 12-31-2024"),
]


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(
        choices=ImportKind.choices,
        label="What the file holds",
        help_text="Orders: one row per order line. Customers: one row per customer.",
    )
    file = forms.FileField(
        label="CSV file (.csv or .csv.gz)",
        help_text="Comma, semicolon or tab separated; any common encoding.",
    )

    def clean_file(self):
        f = self.cleaned_data["file"]
        if f.size > settings.UPLOAD_MAX_BYTES:
            raise forms.ValidationError(too_large_message())
        return f


class ImportOptionsForm(forms.Form):
    date_format = forms.ChoiceField(
        choices=DATE_FORMAT_CHOICES, required=False, label="Date format"
    )
    delimiter = forms.ChoiceField(choices=DELIMITER_CHOICES, required=False, label="Delimiter")
    encoding = forms.ChoiceField(choices=ENCODING_CHOICES, required=False, label="Encoding")
    allow_deleted = forms.BooleanField(
        required=False,
        label="Bring back deleted orders",
        help_text="Orders someone deleted here are skipped by imports unless this is ticked.",
    )
    rates = forms.CharField(
        required=False,
        max_length=200,
        label="Exchange rates",
        help_text=(
            "For orders in another currency than yours: what one unit is worth in yours, "
            "such as ZAR=0.055. Left empty, they keep their own currency and are never "
            "added to yours."
        ),
    )

    def options(self) -> dict:
        data = self.cleaned_data
        delimiter = data.get("delimiter") or ""
        return {
            "date_format": data.get("date_format") or "",
            "delimiter": "\t" if delimiter == "tab" else delimiter,
            "encoding": data.get("encoding") or "",
            "allow_deleted": bool(data.get("allow_deleted")),
            "rates": (data.get("rates") or "").strip(),
        }


class CustomerForm(forms.ModelForm):
    email = forms.EmailField(required=False, label=customer_fields.FIELDS["email"].label)
    # The names first, as people read them; then the definition's order.
    field_order = ["first_name", "last_name"]

    class Meta:
        model = Customer
        fields = customer_fields.names(form=True)
        # A date input shows only ISO dates; the locale's 24/11/1976 would reach the
        # browser as an empty field, and saving the form unchanged would erase it.
        widgets = {"birth_date": forms.DateInput(format="%Y-%m-%d", attrs={"type": "date"})}
        labels = {f.name: f.label for f in customer_fields.select(form=True)}


class ConfirmNameForm(forms.Form):
    confirm_name = forms.CharField(
        label="Type the organisation's name to confirm", max_length=200, strip=True
    )


class OrderForm(forms.Form):
    """A person's correction of an order (the lines are an `OrderLineFormSet`)."""

    ordered_at = forms.DateTimeField(
        label="Ordered at",
        help_text="In the organisation's time zone.",
        input_formats=[
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M:%S",
            "%Y-%m-%d %H:%M",
            "%Y-%m-%d",
        ],
        # ISO with seconds (step=1), so saving unchanged keeps the stored second.
        widget=forms.DateTimeInput(
            format="%Y-%m-%dT%H:%M:%S", attrs={"type": "datetime-local", "step": "1"}
        ),
    )
    currency = forms.CharField(max_length=3, required=False)
    channel = forms.CharField(max_length=64, required=False)
    location = forms.CharField(max_length=255, required=False)


class OrderLineForm(forms.Form):
    sku = forms.CharField(max_length=255, required=False)
    product_name = forms.CharField(max_length=500, required=False, label="Product")
    category = forms.CharField(max_length=255, required=False)
    quantity = forms.IntegerField(min_value=-2_000_000_000, max_value=2_000_000_000, initial=1)
    unit_price = forms.DecimalField(max_digits=30, decimal_places=4, label="Unit price")


OrderLineFormSet = forms.formset_factory(OrderLineForm, extra=0, can_delete=True)


class ProductFlagsForm(forms.Form):
    """The owner's correction of what detection found (customers.merchandise)."""

    merchandise = forms.BooleanField(
        required=False,
        label="Counts as merchandise",
        help_text="Untick for postage, fees and adjustments: they are left out of "
        "favourites, recommendations and demand.",
    )
    hidden = forms.BooleanField(
        required=False,
        label="Hidden",
        help_text="Left out of favourites, recommendations and demand.",
    )
