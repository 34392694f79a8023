from django import forms

# Plain text fields: stores.services checks every value (the API uses the same rules),
# and its messages are put back on the fields.


class StoreForm(forms.Form):
    name = forms.CharField(label="Name", max_length=200, required=False)
    address = forms.CharField(
        label="Address (optional)",
        max_length=500,
        required=False,
        help_text="For you and your team; it is not used to find the store.",
    )
    latitude = forms.CharField(
        label="Latitude",
        required=False,
        help_text="Between -90 and 90, for example 51.5074. A map app shows it when you "
        "drop a pin on the shop.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    longitude = forms.CharField(
        label="Longitude",
        required=False,
        help_text="Between -180 and 180, for example -0.1278.",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    postal_prefixes = forms.CharField(
        label="Postcodes it serves",
        required=False,
        help_text="Beginnings of postcodes near the shop, separated by commas (for example "
        "SW1, SW3). Customers whose postcode starts with one count as near it. Give these, "
        "the latitude and longitude, or both.",
    )

    @classmethod
    def for_store(cls, store, data=None):
        initial = {
            "name": store.name,
            "address": store.address,
            "latitude": "" if store.latitude is None else str(store.latitude),
            "longitude": "" if store.longitude is None else str(store.longitude),
            "postal_prefixes": ", ".join(store.postal_prefixes or []),
        }
        return cls(data, initial=initial)


class LocalPromotionForm(forms.Form):
    """Start a local promotion: the customers within `km` of a store, as an audience."""

    km = forms.FloatField(
        label="Within how many km",
        min_value=0.1,
        max_value=20_000,
        required=False,
        help_text="Leave empty for 10 km. Customers placed within this distance of the "
        "store count, and so do those whose postcode starts with one the store serves.",
        # a placeholder, not a value: the form starts something new rather than editing
        widget=forms.NumberInput(
            attrs={"step": "any", "inputmode": "decimal", "placeholder": "10"}
        ),
    )
    name = forms.CharField(
        label="Audience name (optional)",
        max_length=200,
        required=False,
        strip=True,
        help_text="Leave empty to name it after the store and the distance.",
    )


class RegionPromotionForm(forms.Form):
    """A promotion for a region: the customers in regions, countries or postcodes."""

    regions = forms.CharField(
        label="Regions",
        required=False,
        strip=True,
        help_text="As your customers' addresses spell them, separated by commas "
        "(for example Kent, Surrey).",
    )
    postal_prefixes = forms.CharField(
        label="Postcodes beginning with",
        required=False,
        strip=True,
        help_text="Separated by commas, for example BN1, BN2.",
    )
    countries = forms.CharField(
        label="Countries (optional)",
        required=False,
        strip=True,
        help_text="Codes or names, separated by commas (GB, France).",
    )
    name = forms.CharField(
        label="Audience name (optional)", max_length=200, required=False, strip=True
    )

    def clean(self):
        data = super().clean()
        if not any(data.get(f) for f in ("regions", "postal_prefixes", "countries")):
            raise forms.ValidationError("Give at least one region, postcode beginning or country.")
        return data

    @staticmethod
    def split(text: str) -> list[str]:
        return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]
