from django import forms

from .events import EVENT_TYPES, SUBSCRIBABLE


class EndpointForm(forms.Form):
    url = forms.CharField(
        label="Address that receives the notifications",
        max_length=500,
        help_text="Starts with https://. We send a POST with a JSON body for each event.",
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/segmenta-hook"}),
    )
    event_types = forms.MultipleChoiceField(
        label="Send me",
        choices=[(t, EVENT_TYPES[t]) for t in SUBSCRIBABLE],
        widget=forms.CheckboxSelectMultiple,
        initial=list(SUBSCRIBABLE),
    )
    description = forms.CharField(
        label="Note (optional)", max_length=200, required=False, help_text="What it is for."
    )
