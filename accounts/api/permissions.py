from rest_framework import permissions

from accounts.actor import Actor
from accounts.models import Role
from core.api.idempotency import idempotency_claim


class IsOrganizationMember(permissions.BasePermission):
    """Reads for any member or key; writes need a marketer (or better) or a write key."""

    message = "Your role in this organisation cannot change data."

    def has_permission(self, request, view):
        if not self.allowed(request):
            return False
        # a write with an Idempotency-Key claims it, or gets its first answer
        idempotency_claim(request, view)
        return True

    def allowed(self, request) -> bool:
        if getattr(request, "organization", None) is None:
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return Actor.from_request(request).can(Role.MARKETER)


class IsOrganizationManager(IsOrganizationMember):
    message = "Only owners and admins can do this."

    def allowed(self, request) -> bool:
        if not super().allowed(request):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        actor = Actor.from_request(request)
        return actor.is_user and actor.can(Role.ADMIN)
