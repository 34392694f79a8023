"""One definition of the customer fields.

`CUSTOMER_FIELDS` says, for every field of `Customer`, which customers-file column
reads it, whether the API shows it and a person may change it (API and the site's
form), which exports write it and whether erasure blanks it. Every place that lists
customer fields takes its list from here: the import's canonical columns and header
aliases (`services/imports/columns.py`), what an import writes
(`services/imports/kinds.py`, including the address an orders file carries),
`customer_update` (`services/customers.py`), the API serializer, the edit form, the
customers list's CSV, the organisation export, the person export and erasure
(`services/privacy.py`). `customers/tests/test_fields.py` fails when a model field
is neither here nor in `NOT_FIELDS`, or when one of those places differs.

Adding a profile field: add it to the model (with a migration) and one line here.
Consent fields are marked `consent`; changes of consent belong to the consent
service.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .models import Customer

# Model fields that are not customer fields: the row's key and its tenant, and the
# search keys the database derives from the names (customers.searchkeys).
NOT_FIELDS = ("id", "organization", "first_name_key", "last_name_key")


@dataclass(frozen=True)
class CustomerField:
    name: str  # the model field
    label: str  # for people: the edit form's label
    # How a value is read: for the file columns one of the import's types ("id",
    # "email", "str", "date", "datetime", "latitude", "longitude", "bool"); else
    # "json", "count" or "money".
    kind: str
    column: str = ""  # its column in files (customers file, list export) when not `name`
    personal: bool = False  # about the person: blanked when their data is erased
    imported: bool = False  # a canonical column of the customers file and bulk records
    editable: bool = False  # a person may change it (API PUT/PATCH, `customer_update`)
    form: bool = False  # on the site's edit form
    api: bool = True  # in the customers API
    listed: bool = False  # a column of the customers list's CSV export
    exported: bool = False  # a column of the organisation export's customers.csv
    profile: bool = False  # in the person export's "customer" part
    statistic: bool = False  # order figures imports keep up to date
    consent: bool = False  # consent state (changes go through the consent service)
    on_orders: bool = False  # an orders file may carry it: the latest order fills the profile
    aliases: tuple[str, ...] = ()  # normalised headers of a customers file, best first
    order_aliases: tuple[str, ...] = ()  # the same in an orders file (`on_orders` only)

    @property
    def file_column(self) -> str:
        return self.column or self.name

    @property
    def model_field(self):
        return Customer._meta.get_field(self.name)

    @property
    def max_length(self) -> int | None:
        return self.model_field.max_length

    @property
    def blank(self) -> Any:
        """The value of an empty field: what clearing or erasing it leaves."""
        f = self.model_field
        return None if f.null else f.get_default()


def _profile(name: str, label: str, kind: str, aliases: tuple[str, ...], **more) -> CustomerField:
    """A profile field: about the person, read from files, changed by people,
    shown and exported everywhere."""
    flags = {
        "personal": True,
        "imported": True,
        "editable": True,
        "form": True,
        "listed": True,
        "exported": True,
        "profile": True,
        **more,
    }
    return CustomerField(name, label, kind, aliases=aliases, **flags)


def _statistic(name: str, label: str, kind: str) -> CustomerField:
    return CustomerField(
        name, label, kind, personal=True, listed=True, exported=True, statistic=True
    )


def _consent_record(name: str, label: str, kind: str, **more) -> CustomerField:
    return CustomerField(name, label, kind, personal=True, exported=True, consent=True, **more)


# In the order of the organisation export's columns (the API and the list export
# keep that order too, except as noted in `listed_fields`).
CUSTOMER_FIELDS: tuple[CustomerField, ...] = (
    CustomerField(
        "external_id",
        "Customer id",
        "id",
        column="customer_id",
        imported=True,
        listed=True,
        exported=True,
        profile=True,
        aliases=(
            "customer_id",
            "customerid",
            "external_id",
            "customer_number",
            "customer_no",
            "customer_code",
            "cust_id",
            "client_id",
            "contact_id",
            "user_id",
            "member_id",
            "id",
            "customer",
        ),
    ),
    _profile(
        "email",
        "Email",
        "email",
        ("email", "e_mail", "email_address", "mail", "emailaddress"),
    ),
    _profile(
        "phone",
        "Phone",
        "str",
        (
            "phone",
            "phone_number",
            "mobile",
            "mobile_phone",
            "telephone",
            "tel",
            "default_address_phone",
        ),
    ),
    _profile(
        "first_name",
        "First name",
        "str",
        ("first_name", "firstname", "given_name", "forename", "first"),
    ),
    _profile(
        "last_name",
        "Last name",
        "str",
        ("last_name", "lastname", "surname", "family_name", "last"),
    ),
    _profile(
        "birth_date",
        "Birth date",
        "date",
        ("birth_date", "birthdate", "date_of_birth", "dob", "birthday"),
    ),
    _profile("gender", "Gender", "str", ("gender", "sex")),
    _profile(
        "city",
        "City",
        "str",
        ("city", "town", "default_address_city"),
        on_orders=True,
        order_aliases=("city", "customer_city", "billing_city", "shipping_city", "town"),
    ),
    _profile(
        "region",
        "Region",
        "str",
        (
            "region",
            "province",
            "state",
            "county",
            "province_code",
            "default_address_province_code",
            "state_code",
        ),
        on_orders=True,
        order_aliases=(
            "region",
            "province",
            "state",
            "county",
            "customer_region",
            "billing_region",
            "billing_province",
            "billing_state",
            "billing_province_code",
            "shipping_region",
            "shipping_province",
            "shipping_state",
            "shipping_province_code",
            "province_code",
            "state_code",
        ),
    ),
    _profile(
        "country",
        "Country",
        "str",
        ("country", "country_code", "default_address_country_code", "default_address_country"),
        on_orders=True,
        order_aliases=(
            "country",
            "customer_country",
            "billing_country",
            "shipping_country",
            "country_code",
            "billing_country_code",
            "shipping_country_code",
        ),
    ),
    _profile(
        "postal_code",
        "Postal code",
        "str",
        (
            "postal_code",
            "postcode",
            "post_code",
            "zip",
            "zip_code",
            "zipcode",
            "default_address_zip",
        ),
        on_orders=True,
        order_aliases=(
            "postal_code",
            "postcode",
            "post_code",
            "zip",
            "zip_code",
            "zipcode",
            "billing_zip",
            "billing_postcode",
            "billing_postal_code",
            "shipping_zip",
            "shipping_postcode",
            "shipping_postal_code",
        ),
    ),
    _profile("latitude", "Latitude", "latitude", ("latitude", "lat"), form=False),
    _profile(
        "longitude", "Longitude", "longitude", ("longitude", "lng", "lon", "long"), form=False
    ),
    _profile(
        "signup_at",
        "Signed up",
        "datetime",
        (
            "signup_at",
            "signup_date",
            "signed_up_at",
            "created_at",
            "registered_at",
            "registration_date",
            "date_joined",
            "customer_since",
            "created",
        ),
        form=False,
    ),
    _profile(
        "accepts_email",
        "Agrees to receive email marketing",
        "bool",
        (
            "accepts_email",
            "accepts_email_marketing",
            "accepts_marketing",
            "email_opt_in",
            "email_optin",
            "email_consent",
            "newsletter",
            "marketing_opt_in",
            "email_marketing",
        ),
        consent=True,
        profile=False,  # the person export's "consent" part
    ),
    _profile(
        "accepts_sms",
        "Agrees to receive SMS marketing",
        "bool",
        (
            "accepts_sms",
            "accepts_sms_marketing",
            "sms_opt_in",
            "sms_optin",
            "sms_consent",
            "sms_marketing",
        ),
        consent=True,
        profile=False,
    ),
    # When the person decided: read with `accepts_email` by the consent service's
    # rules (services/consent.py), never set on its own.
    _consent_record(
        "email_consent_at",
        "Email consent changed",
        "datetime",
        imported=True,
        aliases=(
            "email_consent_at",
            "email_consent_date",
            "email_opt_in_at",
            "email_optin_date",
            # shop and mailing systems' names for the time of the last consent change
            "email_marketing_consent_updated_at",
            "accepts_email_marketing_updated_at",
            "accepts_marketing_updated_at",
            "email_marketing_updated_at",
            "email_marketing_consent_timestamp",
            "optin_time",
        ),
    ),
    _consent_record("email_consent_source", "Email consent source", "str"),
    _consent_record(
        "sms_consent_at",
        "SMS consent changed",
        "datetime",
        imported=True,
        aliases=(
            "sms_consent_at",
            "sms_consent_date",
            "sms_opt_in_at",
            "sms_optin_date",
            "sms_marketing_consent_updated_at",
            "accepts_sms_marketing_updated_at",
            "sms_marketing_updated_at",
            "sms_marketing_consent_timestamp",
        ),
    ),
    _consent_record("sms_consent_source", "SMS consent source", "str"),
    # Columns of a file that are not canonical; set whole by the API and `customer_update`.
    CustomerField(
        "attributes",
        "Other attributes",
        "json",
        personal=True,
        editable=True,
        listed=True,
        exported=True,
        profile=True,
    ),
    _statistic("orders_count", "Orders", "count"),
    _statistic("total_spent", "Total spent", "money"),
    _statistic("first_order_at", "First order", "datetime"),
    _statistic("last_order_at", "Last order", "datetime"),
    # Set by erasure: the row is a tombstone (see `services/privacy.py`).
    CustomerField("erased_at", "Erased", "datetime", api=False),
    CustomerField("created_at", "Created", "datetime", exported=True, profile=True),
    CustomerField("updated_at", "Updated", "datetime", exported=False, profile=True),
)

FIELDS: dict[str, CustomerField] = {f.name: f for f in CUSTOMER_FIELDS}


def select(**wanted: Any) -> list[CustomerField]:
    """The fields whose attributes have the given values, in definition order:
    `select(imported=True, kind="str")`."""
    for name in wanted:
        if name not in CustomerField.__dataclass_fields__:
            raise TypeError(f"CustomerField has no attribute {name!r}")
    return [f for f in CUSTOMER_FIELDS if all(getattr(f, k) == v for k, v in wanted.items())]


def names(**wanted: Any) -> list[str]:
    """Names of the fields `select(**wanted)` gives."""
    return [f.name for f in select(**wanted)]


def listed_fields() -> list[CustomerField]:
    """The customers list's CSV columns: the import's column names, with the custom
    attributes (one JSON cell) last."""
    listed = select(listed=True)
    return [f for f in listed if f.kind != "json"] + [f for f in listed if f.kind == "json"]


def text_max_lengths(fields: list[CustomerField]) -> dict[str, int]:
    """Plain text fields and their column sizes (values longer are cut)."""
    return {f.name: f.max_length for f in fields if f.kind == "str" and f.max_length}
