from rest_framework import permissions

from accounts.models import ApiKeyScope


class IsOrganizationMember(permissions.BasePermission):
    """Reads for any member or key; writes need a marketer (or better) or a write key."""

    message = "Your role in this organisation cannot change data."

    def has_permission(self, request, view):
        if getattr(request, "organization", None) is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        api_key = getattr(request, "api_key", None)
        if api_key is not None:
            return api_key.scope == ApiKeyScope.WRITE
        membership = getattr(request, "membership", None)
        return bool(membership and membership.can_edit)


class IsOrganizationManager(IsOrganizationMember):
    message = "Only owners and admins can do this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        membership = getattr(request, "membership", None)
        return bool(membership and membership.can_manage)
