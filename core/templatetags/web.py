"""Template filters for addresses that come from users' data."""

from django import template

from core.web import is_web_url as _is_web_url

register = template.Library()


@register.filter
def is_web_url(value) -> bool:
    """Link a stored address only when it is http(s); anything else is shown as text."""
    return _is_web_url(value)
