"""Figures the pages keep, refreshed in the background for big organisations.

Some figures a page shows are worked out from every row an organisation has: the
dashboard's (7 s at 1,000,000 customers), a big segment's best channel (1.2 s at
500,000 members). They are kept in the cache per organisation and figure, with the
version of the data they were worked out from and the time they were.

When a page asks for one that is missing or out of date (its data changed, or it is
older than the page allows):

- a small organisation (at most `KEPT_FIGURES_BACKGROUND_ABOVE` customers) works it
  out in the request, as before: fast at its size, and always exact;
- a big one is shown the value it had ("stale while revalidate") and a refresh is
  queued, one at a time per organisation and figure (a lock in the cache, taken with
  `cache.add`, so a burst of views queues one), and at most one every
  `REFRESH_MIN_INTERVAL` seconds. The refresh runs as `core.tasks.kept_refresh` on
  the interactive queue, in the organisation's tenant scope. A refresh that fails is
  logged; the earlier value keeps being served, and the next try waits a little.
- With no usable earlier value a page chooses (`first=`): work it out once now, or
  show that it is being worked out (`Kept.state == WORKING`).

What may run in a refresh is named in the task's message as "module:function"; only
functions marked with `@kept_callable` are ever called that way.

The values are aggregates (counts, sums, rates): nothing about a person is kept, so
an erasure has nothing to remove here (it moves the data version, and the figures
follow at their next refresh).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.cache import cache

from accounts.tenancy import require_organization_id

log = logging.getLogger("segmenta.kept")

KEPT_SECONDS = 7 * 24 * 3600  # an earlier value stays available this long
REFRESH_MIN_INTERVAL = 60  # at most one refresh of a figure per organisation a minute
REFRESH_LOCK_SECONDS = 600  # a refresh queued but lost (worker killed) frees its lock then
FAILED_PAUSE_SECONDS = 60  # after a failed refresh the next one waits this long
BIG_CHECK_SECONDS = 3600  # whether an organisation is big is looked at once an hour
REFRESH_TIME_LIMIT = 300  # seconds a refresh may run (core.tasks.kept_refresh)

CURRENT = "current"  # up to date
UPDATING = "updating"  # an earlier value, while a refresh works out the new one
WORKING = "working"  # nothing to show yet: a refresh is working it out

KEPT_MARK = "kept_callable"


@dataclass(frozen=True)
class Kept:
    """A kept figure as a page shows it: its value (None while `WORKING`), when it
    was worked out, and whether it is current."""

    value: Any
    at: dt.datetime | None
    state: str

    @property
    def current(self) -> bool:
        return self.state == CURRENT


def kept_callable(fn: Callable) -> Callable:
    """Mark `fn` as one a refresh may call by name (`kept_resolve`)."""
    setattr(fn, KEPT_MARK, True)
    return fn


def kept_resolve(path: str) -> Callable:
    """The function a "module:function" path names, if it is marked `@kept_callable`
    (and in an installed app); ValueError otherwise."""
    from django.apps import apps

    module_name, _, attr = path.partition(":")
    if not module_name or not attr or apps.get_containing_app_config(module_name) is None:
        raise ValueError(f"{path!r} names no function of an installed app.")
    fn = getattr(import_module(module_name), attr, None)
    if fn is None or not getattr(fn, KEPT_MARK, False):
        raise ValueError(f"{path!r} is not marked @kept_callable.")
    return fn


def _key(name: str, organization_id: int) -> str:
    return f"kept:{name}:org_{organization_id}"


def _lock_key(name: str, organization_id: int) -> str:
    return f"kept:refreshing:{name}:org_{organization_id}"


def _when(at: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(at, tz=dt.UTC)


def organization_is_big(organization_id: int) -> bool:
    """Whether the organisation has more than `KEPT_FIGURES_BACKGROUND_ABOVE`
    customers: reads at most that many index entries, once an hour."""
    from accounts.tenancy import tenant_context
    from customers.models import Customer

    threshold = int(settings.KEPT_FIGURES_BACKGROUND_ABOVE)
    key = f"kept:big:{threshold}:org_{organization_id}"
    found = cache.get(key)
    if found is None:
        with tenant_context(organization_id):
            found = (
                Customer.objects.order_by()
                .values_list("pk", flat=True)[threshold : threshold + 1]
                .exists()
            )
        cache.set(key, found, BIG_CHECK_SECONDS)
    return bool(found)


def kept_entry(name: str) -> dict | None:
    """The current organisation's kept `name` as stored ({"version", "at", "value"}),
    whatever its age, or None: for a page that only asks whether it moved on."""
    return cache.get(_key(name, require_organization_id()))


def kept_at(name: str) -> dt.datetime | None:
    """When the current organisation's `name` was last worked out, or None."""
    entry = kept_entry(name)
    return _when(entry["at"]) if entry else None


def kept_store(*, name: str, version: str, value: Any) -> dt.datetime:
    """Keep `value` as the current organisation's `name`, worked out from `version`
    now. Read the version before working the value out: data written meanwhile then
    leaves the figure out of date, as it is."""
    at = time.time()
    entry = {"version": version, "at": at, "value": value}
    cache.set(_key(name, require_organization_id()), entry, KEPT_SECONDS)
    return _when(at)


def kept_get(
    *,
    name: str,
    version: str,
    compute: Callable[[], Any],
    max_age: int,
    refresh: str | None = None,
    params: dict | None = None,
    earlier_usable: Callable[[dict], bool] | None = None,
    first: str = "inline",
) -> Kept:
    """The current organisation's figure `name` for data at `version`.

    Current (same version, younger than `max_age` seconds): read. Otherwise a small
    organisation, or a figure with no `refresh`, works it out with `compute()` now.
    A big organisation gets the earlier value (if `earlier_usable(entry)`, default:
    any) while `refresh` ("module:function", called as `fn(organization=...,
    **params)` in a task; it stores the new value with `kept_store`) works out the
    new one. With no usable earlier value, `first="inline"` works it out now and
    `first="later"` answers `WORKING` (value None) while the refresh does."""
    org_id = require_organization_id()
    entry = cache.get(_key(name, org_id))
    now = time.time()
    if entry is not None and entry["version"] == version and now - entry["at"] < max_age:
        return Kept(entry["value"], _when(entry["at"]), CURRENT)
    if refresh is None or not organization_is_big(org_id):
        value = compute()
        return Kept(value, kept_store(name=name, version=version, value=value), CURRENT)
    usable = entry is not None and (earlier_usable is None or earlier_usable(entry))
    if not usable and first != "later":
        value = compute()
        return Kept(value, kept_store(name=name, version=version, value=value), CURRENT)
    after = max(0.0, REFRESH_MIN_INTERVAL - (now - entry["at"])) if entry is not None else 0.0
    if kept_refresh_queue(name=name, refresh=refresh, params=params or {}, after=after):
        # a worker in this process (CELERY_TASK_ALWAYS_EAGER) has worked it out already
        done = cache.get(_key(name, org_id))
        if done is not None and done["version"] == version:
            return Kept(done["value"], _when(done["at"]), CURRENT)
    if usable:
        # only older than `max_age`, its data unchanged: refreshed all the same (data the
        # version does not name may have moved), but shown as current, not "updating"
        # every few minutes to an owner whose shop did not change
        same = entry["version"] == version
        return Kept(entry["value"], _when(entry["at"]), CURRENT if same else UPDATING)
    return Kept(None, None, WORKING)


def kept_refresh_queue(*, name: str, refresh: str, params: dict, after: float = 0.0) -> bool:
    """Queue a refresh of the current organisation's `name` in `after` seconds unless
    one is queued or running already (or one failed a moment ago). True if queued."""
    from core.jobs import queue_interactive
    from core.tasks import kept_refresh

    org_id = require_organization_id()
    lock = _lock_key(name, org_id)
    if not cache.add(lock, "queued", int(after) + REFRESH_LOCK_SECONDS):
        return False
    try:
        kept_refresh.apply_async(
            kwargs={
                "organization_id": org_id,
                "job_id": None,
                "name": name,
                "refresh": refresh,
                "params": params,
            },
            countdown=int(after) or None,
            queue=queue_interactive(),
        )
    except Exception:  # noqa: BLE001 - a broker down: the page shows what it has
        log.exception("kept.queue_failed name=%s org_id=%s", name, org_id)
        cache.set(lock, "failed", FAILED_PAUSE_SECONDS)
        return False
    log.info("kept.refresh_queued name=%s org_id=%s after=%s", name, org_id, int(after))
    return True


def kept_refresh_run(*, name: str, refresh: str, params: dict) -> bool:
    """The refresh task's body, in the organisation's scope: call `refresh` to work
    out and store the figure. A failure is logged and leaves the earlier value in
    place; the next refresh waits `FAILED_PAUSE_SECONDS`. True if it refreshed."""
    from accounts.models import Organization
    from accounts.suspension import organization_is_active

    org_id = require_organization_id()
    lock = _lock_key(name, org_id)
    started = time.monotonic()
    try:
        if not organization_is_active(org_id):
            log.info("kept.refresh_skipped_inactive name=%s org_id=%s", name, org_id)
            cache.delete(lock)
            return False
        organization = Organization.objects.get(pk=org_id)
        kept_resolve(refresh)(organization=organization, **params)
    except Exception:  # noqa: BLE001 - the page keeps its earlier value
        log.exception("kept.refresh_failed name=%s org_id=%s", name, org_id)
        cache.set(lock, "failed", FAILED_PAUSE_SECONDS)
        return False
    cache.delete(lock)
    log.info(
        "kept.refreshed name=%s org_id=%s seconds=%.2f",
        name,
        org_id,
        time.monotonic() - started,
    )
    return True
