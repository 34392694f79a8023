from .selectors import memberships_of_user

NAV = [
    ("core:dashboard", "Dashboard"),
    ("customers:list", "Customers"),
    ("segmentation:segments", "Segments"),
    ("segmentation:personas", "Personas"),
    ("segmentation:predictions", "Predictions"),
    ("core:audiences", "Audiences"),
    ("core:campaigns", "Campaigns"),
    ("core:research", "Research"),
    ("accounts:settings", "Settings"),
]


def tenant(request):
    user = getattr(request, "user", None)
    membership = getattr(request, "membership", None)
    return {
        "organization": getattr(request, "organization", None),
        "membership": membership,
        "can_edit": bool(membership and membership.can_edit),
        "can_manage": bool(membership and membership.can_manage),
        "all_memberships": memberships_of_user(user=user)
        if user is not None and user.is_authenticated
        else [],
        "nav_items": NAV,
    }
