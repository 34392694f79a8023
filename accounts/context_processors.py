from .actor import Actor
from .models import Role
from .selectors import memberships_of_user


def _nav() -> list[tuple[str, str]]:
    """The main menu, from what each capability declares (core/capabilities.py)."""
    from core.capabilities import nav_entries

    return [(entry.url_name, entry.label) for entry in nav_entries()]


def tenant(request):
    user = getattr(request, "user", None)
    membership = getattr(request, "membership", None)
    actor = Actor.from_request(request)
    return {
        "organization": getattr(request, "organization", None),
        "membership": membership,
        "can_edit": bool(membership) and actor.can(Role.MARKETER),
        "can_manage": bool(membership) and actor.can(Role.ADMIN),
        "all_memberships": memberships_of_user(user=user)
        if user is not None and user.is_authenticated
        else [],
        "nav_items": _nav(),
    }
