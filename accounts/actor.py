"""Who is acting: a member of the organisation, an API key, or the platform itself.

Every audit entry, every permission check and every record of a change (consent
history, for one) takes an `Actor` instead of working it out from a request, a
user, an API key's principal or `None`:

- `Actor.from_request(request)` for site and API requests (the API key when the
  request came with one, else the signed-in member with their role);
- `Actor.for_user(user, organization)` where a service is handed a user;
- `Actor.system(reason)` for jobs, schedules and commands.

Roles follow `ROLE_RANK`: a write key acts as a marketer, a read key as a viewer,
and the system may do anything. `actor.can(role)` answers, `actor.require(role)`
raises `PermissionDenied` with a sentence for people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.exceptions import PermissionDenied

from .models import ROLE_RANK, ApiKey, ApiKeyScope, Membership, Role

USER, API_KEY, SYSTEM = "user", "api_key", "system"
STAFF = "staff"  # platform staff in the back office; owners see "Segmenta support"
KINDS = ((USER, "Member"), (API_KEY, "API key"), (SYSTEM, "System"), (STAFF, "Segmenta support"))


@dataclass(frozen=True)
class Actor:
    kind: str  # "user", "api_key", "system" or "staff"
    id: int | None  # the user's or the key's id; None for the system
    label: str  # email, "API key <name> (<prefix>)", or the system's reason
    organization: Any = None  # the Organization acted in, when known
    role: str | None = None  # the member's role; a key's equivalent; None for system
    user: Any = None
    api_key: ApiKey | None = None

    # --- making one -------------------------------------------------------------

    @classmethod
    def for_user(cls, user, organization=None, membership: Membership | None = None) -> Actor:
        """A person; their role in `organization` (none when not a member of it)."""
        if membership is None and organization is not None and user is not None:
            membership = Membership.objects.filter(organization=organization, user=user).first()
        if membership is not None and organization is None:
            organization = membership.organization
        return cls(
            kind=USER,
            id=getattr(user, "pk", None),
            label=getattr(user, "email", "") or "",
            organization=organization,
            role=membership.role if membership is not None else None,
            user=user,
        )

    @classmethod
    def for_api_key(cls, api_key: ApiKey) -> Actor:
        return cls(
            kind=API_KEY,
            id=api_key.pk,
            label=f"API key {api_key.name} ({api_key.prefix})",
            organization=api_key.organization,
            role=Role.MARKETER if api_key.scope == ApiKeyScope.WRITE else Role.VIEWER,
            api_key=api_key,
        )

    @classmethod
    def system(cls, reason: str = "system", organization=None) -> Actor:
        return cls(kind=SYSTEM, id=None, label=reason[:254], organization=organization)

    @classmethod
    def staff(cls, user, organization=None) -> Actor:
        """A member of the platform staff acting on an organisation from the back
        office (support access, suspension): no role in it; its audit log shows
        "Segmenta support" and who."""
        email = getattr(user, "email", "") or ""
        return cls(
            kind=STAFF,
            id=getattr(user, "pk", None),
            label=f"Segmenta support ({email})"[:254],
            organization=organization,
            user=user,
        )

    @classmethod
    def from_request(cls, request) -> Actor:
        """The API key a request came with, else its signed-in member (site or API
        session). A visitor who is not signed in is a user actor with no role."""
        api_key = getattr(request, "api_key", None)
        if api_key is None:
            api_key = getattr(getattr(request, "_request", None), "api_key", None)
        if api_key is not None:
            return cls.for_api_key(api_key)
        user = getattr(request, "user", None)
        if user is None or not getattr(user, "is_authenticated", False):
            return cls(kind=USER, id=None, label="", organization=None, role=None)
        membership = getattr(request, "membership", None)
        organization = getattr(request, "organization", None)
        if membership is not None:
            return cls.for_user(user, organization or membership.organization, membership)
        return cls.for_user(user, organization)

    @classmethod
    def of(cls, value, *, organization=None, request=None, reason: str = "command line") -> Actor:
        """Any of the ways callers name who acts (an Actor, a user, an API key's
        principal, an API key, or nothing) as an Actor. Nothing means the request's
        actor when there is a request, else the system for `reason`."""
        if isinstance(value, Actor):
            return value
        if isinstance(value, ApiKey):
            return cls.for_api_key(value)
        key = getattr(value, "api_key", None)  # the API's principal for a key
        if isinstance(key, ApiKey):
            return cls.for_api_key(key)
        if value is not None and getattr(value, "is_authenticated", False):
            if request is not None and getattr(request, "user", None) is value:
                actor = cls.from_request(request)
                if organization is None or _same(actor.organization, organization):
                    return actor
            return cls.for_user(value, organization)
        if request is not None:
            actor = cls.from_request(request)
            if actor.kind == API_KEY or actor.id is not None:
                return actor
        return cls.system(reason, organization)

    @staticmethod
    def person(value):
        """The User behind `value` (an Actor, a user or an API key's principal), for
        "created by" and "updated by" columns; None for API keys and the system."""
        if isinstance(value, Actor):
            return value.user if value.is_user and value.id else None
        if getattr(value, "is_authenticated", False) and getattr(value, "pk", None):
            return value
        return None

    # --- what it may do ------------------------------------------------------------

    @property
    def is_system(self) -> bool:
        return self.kind == SYSTEM

    @property
    def is_api_key(self) -> bool:
        return self.kind == API_KEY

    @property
    def is_user(self) -> bool:
        return self.kind == USER

    @property
    def is_staff(self) -> bool:
        return self.kind == STAFF

    def can(self, role: str) -> bool:
        """At least `role` (owner > admin > marketer > viewer); the system may do anything."""
        if self.is_system:
            return True
        if self.role is None:
            return False
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def can_edit(self) -> bool:
        return self.can(Role.MARKETER)

    @property
    def can_manage(self) -> bool:
        return self.can(Role.ADMIN)

    def require(self, role: str, message: str | None = None) -> Actor:
        if not self.can(role):
            raise PermissionDenied(message or self.refusal(role))
        return self

    def refusal(self, role: str) -> str:
        label = Role(role).label.lower()
        if self.is_api_key:
            if self.role == Role.VIEWER:
                return "A read-only API key cannot change data."
            return f"This needs the {label} role; an API key cannot do it."
        if self.role is None:
            return "You are not a member of this organisation."
        return f"This needs the {label} role or higher."

    def __str__(self) -> str:
        return self.label


def _same(a, b) -> bool:
    return getattr(a, "pk", a) == getattr(b, "pk", b)
