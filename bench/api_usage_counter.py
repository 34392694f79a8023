"""Benchmark: the per-request cost of counting API usage — the one UPDATE of the
organisation's `accounts.models.ApiUsage` row of the day that
`accounts.api.throttling.RateLimitHeadersMiddleware` makes after every API
answer — against the same requests with the counting patched out, measured in
the same run.

    .venv/bin/python bench/api_usage_counter.py [--requests 2000] [--threads 4]

Database: the embedded SQLite in a temporary directory (the default), or
PostgreSQL as the application role (row-level security on, as in production)
when DATABASE_URL is a postgres URL (with DATABASE_OWNER_URL: the script
migrates with it first; ``pgenv`` of /work/hx.sh sets it and Redis, so the
throttle's cache is Redis there and the database cache on SQLite). The
organisation (slug ``bench-apiusage-<time>``, 1,000 customers) is deleted at
the end.

Timed, through Django's test client with a read API key (authentication, tenant
scoping, throttling — its rate raised so nothing is refused —, the JSON
renderer; no network or WSGI server): `GET /api/v1/customers/?page_size=1`,
`--requests` with counting on and as many with `api_usage_count` replaced by a
no-op (the baseline, 1.0x), in interleaved blocks of 100 after 50 warm-ups of
each; per request p50, p95, mean, and the difference of the means (the
counter's cost). Also `api_usage_count` alone, called `--requests` times.

PostgreSQL only, the proposal's variant: `api_usage_count` alone with the
connection's `synchronous_commit` off (the commit does not wait for the WAL
flush; a crash may lose the last fraction of a second of counts).

Concurrent (PostgreSQL only, `--threads` > 1): the same requests split over
`--threads` threads, each with its own client and database connection; counting
off (baseline), counting on with every thread on one organisation's row of the
day, counting on with each thread on its own organisation (no shared row: what
the row lock costs is the difference to the one-row run), and one organisation
with `synchronous_commit` off; wall time, requests a second, p95 and p99.
Checked afterwards: the row counted every request (no update lost).

Prints tables and one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _django_setup import cleanup, setup_django  # noqa: E402

BLOCK = 100
WARM_UP = 50
PATH = "/api/v1/customers/?page_size=1"


def _setup() -> str:
    # the rate limit is not what is measured (the throttle's cache write still is)
    os.environ["API_THROTTLE_KEY"] = "100000000/min"
    return setup_django("bench-apiusage-")


def _summary(samples: list[float], wall: float | None = None) -> dict:
    ms = sorted(s * 1000 for s in samples)

    def pct(p: float) -> float:
        return round(ms[min(len(ms) - 1, int(p / 100 * len(ms)))], 3)

    out = {
        "requests": len(ms),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_ms": round(statistics.fmean(ms), 3),
    }
    if wall is not None:
        out["wall_s"] = round(wall, 2)
        out["per_second"] = round(len(ms) / wall, 1)
    return out


def _no_counting():
    return mock.patch("accounts.api.throttling.api_usage_count", lambda **kwargs: None)


def _client(raw: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def _get(client, samples: list[float]) -> None:
    t = time.perf_counter()
    response = client.get(PATH)
    samples.append(time.perf_counter() - t)
    assert response.status_code == 200, response.content[:300]


def counted(org) -> int:
    from accounts.models import ApiUsage
    from accounts.tenancy import tenant_context

    with tenant_context(org):
        return sum(ApiUsage.objects.values_list("requests", flat=True))


def sequential(raw: str, n: int) -> dict:
    client = _client(raw)
    for _ in range(WARM_UP):
        _get(client, [])
        with _no_counting():
            _get(client, [])
    on: list[float] = []
    off: list[float] = []
    for _ in range(max(1, n // BLOCK)):
        for _ in range(BLOCK):
            _get(client, on)
        with _no_counting():
            for _ in range(BLOCK):
                _get(client, off)
    return {"counting off (baseline)": _summary(off), "counting on": _summary(on)}


@contextlib.contextmanager
def _async_commit(on: bool):
    """With `on`, this thread's PostgreSQL connection commits without waiting for
    the WAL to reach the disk (`synchronous_commit = off`): the proposal's variant."""
    from django.db import connections

    if not on:
        yield
        return
    with connections["default"].cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute("RESET synchronous_commit")


def counter_alone(org, n: int, async_commit: bool = False) -> dict:
    from accounts.api.throttling import api_usage_count

    samples = []
    with _async_commit(async_commit):
        for _ in range(n):
            t = time.perf_counter()
            api_usage_count(organization=org)
            samples.append(time.perf_counter() - t)
    return _summary(samples)


def concurrent(
    keys: list[str], n: int, threads: int, counting: bool, async_commit: bool = False
) -> dict:
    """`threads` threads; thread i uses keys[i % len(keys)]."""
    from django.db import connections

    per_thread = n // threads
    samples: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def work(i: int) -> None:
        try:
            client = _client(keys[i % len(keys)])
            for _ in range(10):  # its own connection and session warm
                _get(client, [])
            with _async_commit(async_commit):
                start.wait()
                for _ in range(per_thread):
                    _get(client, samples[i])
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            start.abort()
        finally:
            connections.close_all()

    with contextlib.nullcontext() if counting else _no_counting():
        pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for thread in pool:
            thread.start()
        start.wait()
        t = time.perf_counter()
        for thread in pool:
            thread.join()
        wall = time.perf_counter() - t
    if errors:
        raise errors[0]
    return _summary([s for part in samples for s in part], wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args()
    engine = _setup()

    from accounts.models import Organization
    from accounts.services import api_key_create
    from accounts.tenancy import tenant_context, unscoped_context
    from customers.models import Customer

    stamp = time.strftime("%Y%m%d%H%M%S")
    org = Organization.objects.create(name="API usage bench", slug=f"bench-apiusage-{stamp}")
    with tenant_context(org):
        Customer.objects.bulk_create(
            [Customer(organization=org, external_id=f"C{i:05d}") for i in range(1000)]
        )
    _, raw = api_key_create(organization=org, name="bench read", scope="read")
    others = [
        Organization.objects.create(name=f"API usage bench {i}", slug=f"bench-apiusage-{stamp}-{i}")
        for i in range(1, args.threads)
    ]
    keys = [raw]
    for other in others:
        with tenant_context(other):
            Customer.objects.create(organization=other, external_id="C00000")
        keys.append(api_key_create(organization=other, name="bench read", scope="read")[1])
    figures: dict = {}
    try:
        before = counted(org)
        figures["sequential"] = sequential(raw, args.requests)
        expected = WARM_UP + figures["sequential"]["counting on"]["requests"]
        figures["sequential_counted_ok"] = counted(org) - before == expected
        figures["api_usage_count alone"] = counter_alone(org, args.requests)
        if engine == "postgresql":
            figures["api_usage_count alone, synchronous_commit off"] = counter_alone(
                org, args.requests, async_commit=True
            )
        if engine == "postgresql" and args.threads > 1:
            n, t = args.requests, args.threads
            c: dict = {"threads": t}
            c["counting off (baseline)"] = concurrent([raw], n, t, counting=False)
            before = counted(org)
            c["counting on, one organisation"] = concurrent([raw], n, t, counting=True)
            # every request counted (the warm-ups of the threads too): no update lost
            c["counted_ok"] = counted(org) - before == n // t * t + 10 * t
            c[f"counting on, {t} organisations"] = concurrent(keys, n, t, counting=True)
            c["counting on, one organisation, synchronous_commit off"] = concurrent(
                [raw], n, t, counting=True, async_commit=True
            )
            figures["concurrent"] = c
    finally:
        with unscoped_context():
            for one in [org, *others]:
                one.delete()

    seq = figures["sequential"]
    base, with_counter = seq["counting off (baseline)"], seq["counting on"]
    print(
        f"\n{engine}: {args.requests:,} × GET {PATH} with an API key, counting on and off "
        f"(interleaved blocks of {BLOCK})\n"
    )
    print(f"{'':26} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'mean × base':>12}")
    for name, f in seq.items():
        print(
            f"{name:26} {f['p50_ms']:8.2f} {f['p95_ms']:8.2f} {f['mean_ms']:8.2f} "
            f"{f['mean_ms'] / base['mean_ms']:11.2f}×"
        )
    print(
        f"cost of counting: {with_counter['mean_ms'] - base['mean_ms']:+.2f} ms a request "
        f"(mean); every request counted: {figures['sequential_counted_ok']}"
    )
    for name, f in figures.items():
        if name.startswith("api_usage_count alone"):
            print(
                f"{name}: p50 {f['p50_ms']:.2f} ms, p95 {f['p95_ms']:.2f} ms, mean {f['mean_ms']:.2f} ms"
            )
    if "concurrent" in figures:
        c = figures["concurrent"]
        print(f"\n{c['threads']} threads, one organisation, {args.requests:,} requests in all\n")
        print(
            f"{'':56} {'wall s':>7} {'req/s':>7} {'p95 ms':>8} {'p99 ms':>8} {'req/s × base':>13}"
        )
        cbase = c["counting off (baseline)"]
        for name, f in c.items():
            if not isinstance(f, dict):
                continue
            print(
                f"{name:56} {f['wall_s']:7.2f} {f['per_second']:7.1f} {f['p95_ms']:8.2f} "
                f"{f['p99_ms']:8.2f} {f['per_second'] / cbase['per_second']:12.2f}×"
            )
        print(f"every request counted: {c['counted_ok']}")
    out = {
        "engine": engine,
        "requests": args.requests,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        **figures,
    }
    print(json.dumps(out, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    try:
        main()
    finally:
        cleanup()  # the temporary var directory (its SQLite database: hundreds of MB)
