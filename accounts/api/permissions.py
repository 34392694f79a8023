from rest_framework import permissions

from accounts.actor import Actor
from accounts.models import Role


class IsOrganizationMember(permissions.BasePermission):
    """Reads for any member or key; writes need a marketer (or better) or a write key."""

    message = "Your role in this organisation cannot change data."

    def has_permission(self, request, view):
        if getattr(request, "organization", None) is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return Actor.from_request(request).can(Role.MARKETER)


class IsOrganizationManager(IsOrganizationMember):
    message = "Only owners and admins can do this."

    def has_permission(self, request, view):
        if not super().has_permission(request, view):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        actor = Actor.from_request(request)
        return actor.is_user and actor.can(Role.ADMIN)
