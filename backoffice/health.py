"""The platform's health for the back office: workers, the broker's queues, the
database and the jobs, each as a status line in plain words (OK or attention) with
its figures. A service that does not answer is a line saying so, never an error
page: every check catches its own failures and waits at most about a second.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connections
from django.utils import timezone

from core.formats import size_text

from . import usage

log = logging.getLogger("segmenta.backoffice")

TIMEOUT = 1.0  # seconds any one service may take to answer


@dataclass
class Check:
    name: str
    ok: bool
    summary: str
    details: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "OK" if self.ok else "Attention"


def _messages(n: int) -> str:
    return f"{n:,} message" + ("" if n == 1 else "s")


def _age_text(age: timedelta | None) -> str:
    if age is None:
        return "—"
    seconds = int(age.total_seconds())
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _broker_url() -> str:
    return getattr(settings, "CELERY_BROKER_URL", "") or ""


def _uses_redis() -> bool:
    return _broker_url().startswith(("redis://", "rediss://"))


def _redis_client():
    import redis

    return redis.Redis.from_url(
        _broker_url(), socket_connect_timeout=TIMEOUT, socket_timeout=TIMEOUT
    )


def _redis_answers() -> str | None:
    """None when Redis answers a PING, else why not, in words."""
    try:
        _redis_client().ping()
    except Exception as exc:
        return f"Redis at {_redis_location()} does not answer ({exc.__class__.__name__})."
    return None


def _redis_location() -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(_broker_url())
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def _queue_names() -> list[str]:
    from celery import current_app

    names = {current_app.conf.task_default_queue or "celery"}
    for queue in current_app.conf.task_queues or ():
        names.add(getattr(queue, "name", str(queue)))
    return sorted(names)


# --- workers ----------------------------------------------------------------------------


def check_workers() -> Check:
    from core.jobs import WORKER_HEARTBEAT_EVERY, worker_last_seen

    details = []
    try:
        seen = worker_last_seen()
    except Exception as exc:
        log.warning("health.cache_unreachable", exc_info=True)
        return Check(
            "Workers",
            False,
            f"Cannot read the workers' heartbeat: the cache does not answer "
            f"({exc.__class__.__name__}).",
        )
    age = timezone.now() - seen if seen else None
    fresh = age is not None and age.total_seconds() < 3 * WORKER_HEARTBEAT_EVERY
    if seen is None:
        summary = "No worker has reported: jobs are not being picked up."
    elif fresh:
        summary = f"A worker reported {_age_text(age)} ago."
    else:
        summary = f"The last worker report was {_age_text(age)} ago: is a worker running?"
    details.append(f"Last heartbeat: {seen:%Y-%m-%d %H:%M:%S} UTC" if seen else "No heartbeat.")
    ok = fresh
    if _uses_redis():
        down = _redis_answers()
        if down:
            details.append(f"Ping to Celery workers not sent: {down}")
            ok = False
        else:
            try:
                from celery import current_app

                replies = current_app.control.inspect(timeout=TIMEOUT).ping() or {}
            except Exception as exc:
                log.warning("health.ping_failed", exc_info=True)
                details.append(f"Ping to Celery workers failed ({exc.__class__.__name__}).")
                ok = False
            else:
                if replies:
                    details.append(
                        f"{len(replies)} worker(s) answered a ping: " + ", ".join(sorted(replies))
                    )
                else:
                    details.append(f"No worker answered a ping within {TIMEOUT:.0f} s.")
                    ok = False
    return Check("Workers", ok, summary, details)


# --- broker queues ------------------------------------------------------------------------


def check_broker() -> Check:
    if _uses_redis():
        return _redis_queues()
    return _folder_queues()


def _redis_queues() -> Check:
    down = _redis_answers()
    if down:
        return Check(
            "Broker", False, f"{down} Jobs cannot be queued or picked up until it is back."
        )
    try:
        client = _redis_client()
        lengths = {}
        for name in _queue_names():
            # kombu keeps priorities other than the default in keys `<queue>\x06\x16<n>`
            keys = [name] + [f"{name}\x06\x16{p}" for p in (3, 6, 9)]
            lengths[name] = sum(int(client.llen(k)) for k in keys)
    except Exception as exc:
        log.warning("health.redis_failed", exc_info=True)
        return Check(
            "Broker",
            False,
            f"Redis answered but the queues could not be read ({exc.__class__.__name__}).",
        )
    total = sum(lengths.values())
    details = [f"Queue “{name}”: {_messages(n)} waiting" for name, n in lengths.items()]
    return Check(
        "Broker",
        True,
        f"Redis at {_redis_location()} answers; {_messages(total)} waiting.",
        details,
    )


def _folder_queues() -> Check:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    folder = options.get("data_folder_in")
    if not folder:
        return Check("Broker", False, "The broker's queue folder is not configured.")
    path = Path(folder)
    try:
        names = os.listdir(path)
    except OSError as exc:
        return Check(
            "Broker",
            False,
            f"The broker's queue folder {path} cannot be read ({exc.__class__.__name__}): "
            "jobs cannot be queued.",
        )
    lengths = {name: 0 for name in _queue_names()}
    for filename in names:
        rest = filename.partition(".")[2]
        if filename.startswith(".") or not rest.endswith(".msg"):
            continue  # a message still being written, or not a message
        queue = rest[: -len(".msg")]
        lengths[queue] = lengths.get(queue, 0) + 1
    details = [f"Queue “{name}”: {_messages(n)} waiting" for name, n in sorted(lengths.items())]
    broken = path.parent / "broken"
    if broken.is_dir():
        count = sum(1 for _ in broken.iterdir())
        if count:
            details.append(f"{count:,} unreadable message file(s) set aside in {broken}")
    total = sum(lengths.values())
    return Check(
        "Broker",
        True,
        f"Embedded broker (folder {path}); {_messages(total)} waiting.",
        details,
    )


# --- database ------------------------------------------------------------------------


def check_database() -> Check:
    from accounts.tenancy import platform_alias

    try:
        alias = platform_alias()
    except Exception:
        alias = "default"
    connection = connections[alias]
    details = [f"Database: {connection.vendor} ({connection.settings_dict.get('NAME')})"]
    try:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        latency_ms = (time.perf_counter() - started) * 1000
    except Exception as exc:
        log.warning("health.database_failed", exc_info=True)
        return Check(
            "Database", False, f"The database does not answer ({exc.__class__.__name__}).", details
        )
    details.append(f"SELECT 1 took {latency_ms:.1f} ms")
    ok = True
    try:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_database_size(current_database())")
                details.append(f"Size: {size_text(int(cursor.fetchone()[0]))}")
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                )
                used = int(cursor.fetchone()[0])
                cursor.execute("SHOW max_connections")
                most = int(cursor.fetchone()[0])
            details.append(f"Connections: {used:,} of at most {most:,}")
            if used >= 0.8 * most:
                ok = False
                details.append("Connections are close to the server's maximum.")
        elif connection.vendor == "sqlite":
            name = str(connection.settings_dict.get("NAME") or "")
            if name and os.path.exists(name):
                details.append(f"Size: {size_text(os.path.getsize(name))}")
    except Exception as exc:
        log.warning("health.database_figures_failed", exc_info=True)
        details.append(f"Size and connections could not be read ({exc.__class__.__name__}).")
    pending = _unapplied_migrations(connection)
    if pending is None:
        details.append("Migrations could not be checked.")
    elif pending:
        ok = False
        details.append(
            f"{len(pending)} migration(s) not applied: "
            + ", ".join(pending[:10])
            + (" …" if len(pending) > 10 else "")
        )
    else:
        details.append("Every migration is applied.")
    summary = (
        f"{connection.vendor} answers in {latency_ms:.0f} ms."
        if ok
        else f"{connection.vendor} answers in {latency_ms:.0f} ms, but needs attention."
    )
    return Check("Database", ok, summary, details)


def _unapplied_migrations(connection) -> list[str] | None:
    from django.db.migrations.executor import MigrationExecutor

    try:
        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception:
        log.warning("health.migrations_failed", exc_info=True)
        return None
    return [f"{m.app_label}.{m.name}" for m, _backwards in plan]


# --- jobs --------------------------------------------------------------------------------


def check_jobs() -> Check:
    try:
        state = usage.jobs_state()
    except Exception as exc:
        log.warning("health.jobs_failed", exc_info=True)
        return Check("Jobs", False, f"The jobs could not be counted ({exc.__class__.__name__}).")
    age = state["oldest_queued_age"]
    waiting_too_long = age is not None and age.total_seconds() > settings.JOB_QUEUED_WARNING_SECONDS
    ok = not state["stale"] and not waiting_too_long
    details = [
        f"Queued: {state['queued']:,}",
        f"Running: {state['running']:,}",
        f"Running without a heartbeat for {settings.JOB_STALE_AFTER_SECONDS // 60} min "
        f"(worker gone?): {state['stale']:,}",
        f"Oldest queued job waiting: {_age_text(age)}",
    ]
    if ok:
        summary = f"{state['queued']:,} queued, {state['running']:,} running; nothing is stuck."
    else:
        parts = []
        if state["stale"]:
            parts.append(f"{state['stale']:,} running job(s) lost their worker")
        if waiting_too_long:
            parts.append(f"the oldest queued job has waited {_age_text(age)}")
        summary = "; ".join(parts).capitalize() + "."
    return Check("Jobs", ok, summary, details)


def platform_health() -> list[Check]:
    return [check_workers(), check_broker(), check_database(), check_jobs()]
