"""Tenant scoping: who is the current organisation, and the walls that enforce it.

The current organisation lives in a context variable, set in a `with` block and
reset in `finally`: by `TenantMiddleware` for site requests, by the DRF
authentication classes for API requests, by `core.tasks.TenantTask` for jobs and
by `tenant_context()` in commands and tests.

The public scope API (nothing else in this module is for other modules):
- `tenant_context(organization)`: a block run as one organisation (commands,
  tasks, tests); `no_tenant_context()`: a block with none.
- `unscoped_context()`: the one named bypass, for platform code.
- `scope_enter(organization, bypass=False) -> token` / `scope_exit(token)`: the
  same without a block, for the middleware (enter at the start of a request,
  exit in `finally`) and the API authentication (enters after the middleware;
  the middleware's exit restores what was there before both).
- `scope_check(organization=...)`: services that are handed an organisation call
  it first; it raises `ScopeMismatch` when the current scope is another
  organisation's, so a caller's mix-up cannot write one shop's results under
  another's scope.

Tenant models (`TenantModel`) get `objects`, a manager that filters by the
current organisation and refuses to run with none set. Code that must cross
organisations (the admin back office, the nightly fan-out) calls
`Model.objects.unscoped()` or runs inside `unscoped_context()`; grep for those
names to review every crossing.

On PostgreSQL the same value reaches the database as the transaction-local
setting `segmenta.org_id` before every statement, and row-level security
policies (see `accounts/rls.py`) admit only that organisation's rows. Nothing
the application role can set lifts them: inside `unscoped_context()` the ORM's
queries go to a separate connection that logs in as the platform role, which the
policies admit to every row (`platform_alias()`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


class TenantNotSet(RuntimeError):
    """A tenant-scoped query ran with no organisation set: fail closed."""


class ScopeMismatch(RuntimeError):
    """A service was handed one organisation while the scope is another's."""


@dataclass(frozen=True)
class Scope:
    organization_id: int | None
    bypass: bool = False


# Scope is a frozen dataclass, so sharing the default is safe.
_NEVER_SET = Scope(None)
_scope: ContextVar[Scope] = ContextVar("segmenta_tenant_scope", default=_NEVER_SET)  # noqa: B039

ScopeToken = Token


def _org_id(organization) -> int | None:
    if organization is None or isinstance(organization, int):
        return organization
    return organization.pk


def scope_enter(organization=None, *, bypass: bool = False) -> ScopeToken:
    """Make `organization` (an Organization, its id or None) the current scope, or
    with `bypass=True` every organisation's (platform code only). Returns the token
    `scope_exit` takes to restore what was current before."""
    if bypass and organization is not None:
        raise ValueError("A bypass scope is not one organisation's.")
    return _scope.set(Scope(_org_id(organization), bypass=bypass))


def scope_exit(token: ScopeToken) -> None:
    """Restore the scope that was current before the `scope_enter` that gave `token`."""
    _scope.reset(token)


def scope_check(*, organization) -> None:
    """Raise unless the current scope is `organization`'s (or the platform bypass).

    Services that take `organization=` call this before reading or writing: the
    manager filters by the scope, not by the argument, so a disagreement would
    mix one organisation's rows with another's figures."""
    scope = _scope.get()
    if scope.bypass:
        return
    if scope.organization_id is None:
        raise TenantNotSet(
            f"No organisation is set; the service was called for organisation {_org_id(organization)}."
        )
    if scope.organization_id != _org_id(organization):
        raise ScopeMismatch(
            f"The service was called for organisation {_org_id(organization)} "
            f"inside organisation {scope.organization_id}'s scope."
        )


def scope_never_set() -> bool:
    """True where nothing (request, job, command, test block) has set a scope."""
    return _scope.get() is _NEVER_SET


def current_organization_id() -> int | None:
    return _scope.get().organization_id


def bypass_active() -> bool:
    return _scope.get().bypass


def require_organization_id() -> int:
    org_id = current_organization_id()
    if org_id is None:
        raise TenantNotSet("No organisation is set for this tenant-scoped query.")
    return org_id


@contextlib.contextmanager
def tenant_context(organization) -> Iterator[None]:
    """Run the block as `organization` (an Organization or its id)."""
    token = _scope.set(Scope(_org_id(organization)))
    try:
        yield
    finally:
        _scope.reset(token)


@contextlib.contextmanager
def unscoped_context() -> Iterator[None]:
    """The escape hatch: every organisation's rows, for platform code only.

    On PostgreSQL the ORM's queries in the block go to the platform connection
    (`platform_alias()`); raw SQL and `transaction.atomic()` must name that alias
    themselves, or they run as the application role and see no tenant row."""
    token = _scope.set(Scope(None, bypass=True))
    try:
        yield
    finally:
        _scope.reset(token)


def platform_alias() -> str:
    """The database alias platform code reads and writes every organisation through."""
    alias = settings.PLATFORM_DATABASE_ALIAS
    if not alias:
        raise ImproperlyConfigured(
            "Work across organisations needs the platform database role on PostgreSQL: "
            "set DATABASE_PLATFORM_URL (or at least DATABASE_OWNER_URL)."
        )
    return alias


def carry_scope(iterable) -> Iterator:
    """Iterate `iterable` later in the scope that is current now.

    A streaming response is read by the server after the view and the middleware
    have returned (and reset the scope): without this, its queries would run with
    no organisation and, on PostgreSQL, see no rows."""
    scope = _scope.get()
    iterator = iter(iterable)

    def steps():
        try:
            while True:
                token = _scope.set(scope)
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    _scope.reset(token)
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                token = _scope.set(scope)
                try:
                    close()
                finally:
                    _scope.reset(token)

    return steps()


@contextlib.contextmanager
def no_tenant_context() -> Iterator[None]:
    """Clear any organisation (for example around a request that has none)."""
    token = _scope.set(Scope(None))
    try:
        yield
    finally:
        _scope.reset(token)


class TenantQuerySet(models.QuerySet):
    pass


class TenantManager(models.Manager.from_queryset(TenantQuerySet)):
    """Filters by the current organisation; raises `TenantNotSet` with none."""

    def get_queryset(self):
        qs = super().get_queryset()
        scope = _scope.get()
        if scope.organization_id is not None:
            return qs.filter(organization_id=scope.organization_id)
        if scope.bypass:
            return qs
        raise TenantNotSet(f"{self.model.__name__}: no organisation set for this query.")

    def unscoped(self):
        """Every organisation's rows as far as this manager goes. Deliberate:
        platform code only. On PostgreSQL, row-level security still binds the
        statement to the current organisation unless it runs inside
        `unscoped_context()`, which lifts both walls (by connecting as the
        platform role)."""
        return super().get_queryset()


def organization_field(*, db_index: bool = True, db_constraint: bool = True) -> models.ForeignKey:
    """The organisation column of a tenant table. `db_index=False` for the big tables
    whose other indexes all lead with it (a lone index on it is then one more index
    for every insert and update to keep, and one no query needs). `db_constraint=False`
    for the tables a pipeline run writes a million rows into (see `RUN_ROWS_NO_DB_FK`):
    row-level security already binds each row to the organisation in scope, and
    deletions still cascade through Django's `on_delete`."""
    return models.ForeignKey(
        "accounts.Organization",
        on_delete=models.CASCADE,
        related_name="+",
        editable=False,
        db_index=db_index,
        db_constraint=db_constraint,
    )


class TenantModel(models.Model):
    """Base for every table that belongs to one organisation."""

    organization = organization_field()

    objects = TenantManager()
    # Plain manager for admin, related-object access and prefetching; the admin
    # runs inside unscoped_context and filters by organisation itself.
    all_objects = models.Manager()  # noqa: DJ012

    class Meta:
        abstract = True
        default_manager_name = "all_objects"
        base_manager_name = "all_objects"

    def save(self, *args, **kwargs):
        if self.organization_id is None:
            self.organization_id = require_organization_id()
        super().save(*args, **kwargs)
