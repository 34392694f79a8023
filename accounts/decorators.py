"""Site view guards: signed in, in an organisation, with at least a given role."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect

from .actor import Actor
from .models import Role


def org_required(view=None, *, role: str = Role.VIEWER, write: bool | None = None):
    """Requires a signed-in member of an organisation with at least `role`.

    `write=True` is shorthand for marketer, the least role that may change data.
    Viewers get a 403 page; users with no organisation are sent to create one.
    """
    needed = Role.MARKETER if write else role

    def decorator(func):
        @wraps(func)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                return redirect("accounts:organization_new")
            actor = Actor.from_request(request)
            if not actor.can(needed):
                raise PermissionDenied(actor.refusal(needed))
            if request.method not in ("GET", "HEAD", "OPTIONS") and not actor.can_edit:
                raise PermissionDenied("Viewers cannot change anything.")
            return func(request, *args, **kwargs)

        return wrapped

    return decorator(view) if view is not None else decorator
