"""Segmenta's load test scenarios (Locust). Run through bench/loadtest/run.py, which
prepares the data, starts the servers and reads the results; by hand:

    LOADTEST_FIXTURES=var/loadtest/fixtures.json LOADTEST_GROUPS=out/groups.json \\
      .venv/bin/locust -f bench/loadtest/locustfile.py --headless -u 20 -r 4 -t 1m \\
      --host http://127.0.0.1:8108 --csv out/locust

Users running at the same time (weights in the classes; run.py sets them with
LOADTEST_MIX):
- Owner: signs in (the big organisation or a small one) and browses: dashboard,
  customers list, a search, a customer, segments, a segment, an audience, predictions.
- ApiReader: an integration reading single records with a small organisation's API key
  (customers/{id}/, customers/?external_id=, orders/{id}/, products/{id}/).
- BulkWriter: an integration posting bulk upserts (customers/bulk/, orders/bulk/ with
  100 records) with a small organisation's key.
- Importer: uploads a small CSV (`POST imports/`) and follows its job to the end.
- CampaignSender: creates an email campaign for a small organisation's largest segment,
  sends it and follows the send job (email goes to Django's locmem backend: nothing
  leaves the machine).
Request names start with their group: `page:`, `api:` (single record), `bulk:` (bulk
API), `write:` (other API writes: imports, campaigns); `job:` entries are not requests
but the time a job took from queued to started / finished, reported alongside.
Each request's time and outcome is also kept per group (LOADTEST_GROUPS), so the groups'
percentiles are exact, not averaged from the per-name figures.
"""

from __future__ import annotations

import http.cookiejar
import io
import itertools
import json
import os
import random
import threading
import time
import uuid
from datetime import datetime

from locust import HttpUser, between, events, task

FIXTURES = json.load(open(os.environ.get("LOADTEST_FIXTURES", "var/loadtest/fixtures.json")))
ORGS = FIXTURES["orgs"]
BIG = [o for o in ORGS if o["big"] and o["customers"]]
SMALL = [o for o in ORGS if not o["big"] and o["customers"]]
BIG_SHARE = float(os.environ.get("LOADTEST_BIG_SHARE", "0.3"))
MIX = dict(
    (k, int(v))
    for k, v in (
        part.split("=") for part in os.environ.get("LOADTEST_MIX", "").split(",") if "=" in part
    )
)

# --- exact per-group percentiles ---------------------------------------------------------
_samples: dict[str, list[tuple[float, bool]]] = {}
_lock = threading.Lock()


def group_of(name: str) -> str:
    return name.split(":", 1)[0] if ":" in name else "other"


@events.request.add_listener
def _record(request_type, name, response_time, response_length, exception=None, **kw):
    row = (response_time, exception is not None)
    group = group_of(name)
    with _lock:
        _samples.setdefault(group, []).append(row)
        if group == "page" and name.endswith("]"):  # pages of the big / the small organisations
            _samples.setdefault("page " + name.rsplit("[", 1)[1].rstrip("]"), []).append(row)


@events.test_start.add_listener
def _started(environment, **kw):
    with _lock:
        _samples.clear()
    environment.loadtest_started = time.time()


@events.quitting.add_listener
def _dump(environment, **kw):
    path = os.environ.get("LOADTEST_GROUPS")
    if not path:
        return
    seconds = time.time() - getattr(environment, "loadtest_started", time.time())
    out = {"seconds": round(seconds, 1), "groups": {}}
    with _lock:
        everything = [
            row
            for group, rows in _samples.items()
            if group.split()[0] in ("page", "api", "bulk", "write")
            and group not in ("page big", "page small")
            for row in rows
        ]
        for group, rows in [*_samples.items(), ("all", everything)]:
            times = sorted(t for t, _ in rows)
            n = len(times)

            def pct(q, times=times, n=n):
                return round(times[min(n - 1, int(q * n))], 1) if n else None

            out["groups"][group] = {
                "requests": n,
                "failures": sum(1 for _, failed in rows if failed),
                "rps": round(n / seconds, 2) if seconds else None,
                "p50": pct(0.50),
                "p95": pct(0.95),
                "p99": pct(0.99),
                "max": round(times[-1], 1) if n else None,
            }
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)


def job_event(environment, name: str, seconds: float, exc: Exception | None = None) -> None:
    """A job's duration as a locust entry (request_type JOB)."""
    environment.events.request.fire(
        request_type="JOB",
        name=name,
        response_time=seconds * 1000.0,
        response_length=0,
        exception=exc,
        context={},
    )


# Production settings mark the session and CSRF cookies Secure (HTTPS ends at a proxy in
# front); the test talks plain HTTP on loopback, so its client sends them anyway. (A
# policy on the session's jar is not enough: requests copies cookies into fresh jars.)
http.cookiejar.DefaultCookiePolicy.return_ok_secure = lambda self, cookie, request: True


def _iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


# --- owners browsing pages ----------------------------------------------------------------


_owner_numbers = itertools.count()


class Owner(HttpUser):
    weight = MIX.get("owner", 10)
    wait_time = between(1, 4)

    def on_start(self):
        # owners 0, 1, 2, …: a BIG_SHARE of them on the big organisation, the first one first
        n = next(_owner_numbers)
        on_big = bool(BIG) and (n == 0 or int((n + 1) * BIG_SHARE) > int(n * BIG_SHARE))
        self.org = random.choice(BIG) if on_big else random.choice(SMALL)
        self.tag = "big" if self.org["big"] else "small"
        self.client.get("/accounts/login/", name=f"page: sign-in form [{self.tag}]")
        token = self.client.cookies.get("csrftoken", "")
        with self.client.post(
            "/accounts/login/",
            data={
                "email": self.org["owner"],
                "password": self.org["password"],
                "csrfmiddlewaretoken": token,
            },
            name=f"page: sign in [{self.tag}]",
            allow_redirects=False,  # the sign-in alone; the dashboard is its own entry
            catch_response=True,
        ) as r:
            where = r.headers.get("Location", "")
            if r.status_code != 302 or "/accounts/login" in where:
                r.failure(f"sign-in failed: {r.status_code} {where}")

    def _page(self, path: str, name: str):
        with self.client.get(path, name=f"page: {name} [{self.tag}]", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}")
            elif "/accounts/login" in r.url:
                r.failure("sent to sign-in")

    @task(3)
    def dashboard(self):
        self._page("/", "dashboard")

    @task(3)
    def customers(self):
        self._page("/customers/", "customers list")

    @task(2)
    def search(self):
        pk, ext, last, email = random.choice(self.org["customers"])
        q = random.choice([ext, last, email])
        self._page(f"/customers/?q={q}", "customers search")

    @task(3)
    def customer(self):
        pk = random.choice(self.org["customers"])[0]
        self._page(f"/customers/{pk}/", "a customer")

    @task(1)
    def segments(self):
        self._page("/segments/", "segments")

    @task(2)
    def segment(self):
        if self.org["segments"]:
            self._page(f"/segments/{random.choice(self.org['segments'])}/", "a segment")

    @task(1)
    def audience(self):
        if self.org["audiences"]:
            self._page(f"/audiences/{random.choice(self.org['audiences'])}/", "an audience")

    @task(1)
    def predictions(self):
        self._page("/segments/predictions/", "predictions")


# --- integrations -------------------------------------------------------------------------


class _ApiUser(HttpUser):
    abstract = True

    def on_start(self):
        self.org = random.choice(SMALL)
        self.client.headers.update(
            {"Authorization": f"Api-Key {self.org['key']}", "Accept": "application/json"}
        )

    def _get(self, path: str, name: str):
        with self.client.get(path, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            return r


class ApiReader(_ApiUser):
    weight = MIX.get("reader", 6)
    wait_time = between(0.5, 2)

    @task(4)
    def customer(self):
        pk = random.choice(self.org["customers"])[0]
        self._get(f"/api/v1/customers/{pk}/", "api: GET customers/{id}/")

    @task(2)
    def by_external_id(self):
        ext = random.choice(self.org["customers"])[1]
        self._get(f"/api/v1/customers/?external_id={ext}", "api: GET customers/?external_id=")

    @task(2)
    def order(self):
        if self.org["orders"]:
            pk = random.choice(self.org["orders"])
            self._get(f"/api/v1/orders/{pk}/", "api: GET orders/{id}/")

    @task(1)
    def product(self):
        pk = random.choice(self.org["products"])[0]
        self._get(f"/api/v1/products/{pk}/", "api: GET products/{id}/")


class BulkWriter(_ApiUser):
    weight = MIX.get("bulk", 3)
    wait_time = between(2, 6)
    size = int(os.environ.get("LOADTEST_BULK_SIZE", "100"))

    def _post(self, path: str, body, name: str):
        with self.client.post(path, json=body, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"{r.status_code}: {r.text[:200]}")
            else:
                answer = r.json()
                if answer.get("rejected"):
                    r.failure(f"rejected {answer['rejected']}: {json.dumps(answer['errors'][:2])}")

    @task(1)
    def customers(self):
        records = []
        for i in range(self.size):
            if i % 2 == 0:  # an update of a known customer
                _, ext, _, _ = random.choice(self.org["customers"])
            else:  # a new one
                ext = f"LT-{uuid.uuid4().hex[:12]}"
            records.append(
                {
                    "customer_id": ext,
                    "email": f"{ext.lower()}@example.com",
                    "first_name": random.choice(["Ann", "Bo", "Cy", "Di"]),
                    "city": random.choice(["Leeds", "York", "Bath", "Ely"]),
                    "country": "GB",
                }
            )
        # an update and a new customer may share an id by chance: keep the last
        self._post("/api/v1/customers/bulk/", records, "bulk: POST customers/bulk/")

    @task(1)
    def orders(self):
        records = []
        while len(records) < self.size:
            order_id = f"LT-{uuid.uuid4().hex[:12]}"
            ext = random.choice(self.org["customers"])[1]
            when = f"2026-11-{random.randint(1, 28):02d}T{random.randint(8, 20):02d}:00:00+00:00"
            for n in range(random.randint(1, 3)):
                sku = random.choice(self.org["products"])[1]
                records.append(
                    {
                        "order_id": order_id,
                        "line_id": str(n + 1),
                        "customer_id": ext,
                        "ordered_at": when,
                        "sku": sku,
                        "quantity": random.randint(1, 3),
                        "unit_price": f"{random.uniform(3, 60):.2f}",
                    }
                )
        self._post("/api/v1/orders/bulk/", records[: self.size], "bulk: POST orders/bulk/")


def _follow_job(user, job_id: int, *, timeout: float, poll: float = 1.0) -> dict | None:
    """Poll GET jobs/{id}/ until the job finishes; its last answer (None on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = user._get(f"/api/v1/jobs/{job_id}/", "api: GET jobs/{id}/")
        if r.status_code == 200:
            job = r.json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                return job
        time.sleep(poll)
    return None


def _job_times(user, name: str, job: dict | None, timeout: float) -> None:
    env = user.environment
    if job is None:
        job_event(env, f"job: {name} finished", timeout, RuntimeError("not finished in time"))
        return
    created, started, finished = (
        _iso(job.get(k)) for k in ("created_at", "started_at", "finished_at")
    )
    if created and started:
        job_event(env, f"job: {name} queued->started", (started - created).total_seconds())
    failed = (
        None
        if job["status"] == "succeeded"
        else RuntimeError(f"{job['status']}: {job.get('message')}")
    )
    if created and finished:
        job_event(
            env, f"job: {name} queued->finished", (finished - created).total_seconds(), failed
        )


class Importer(_ApiUser):
    """A small CSV through POST imports/ every half minute or so, followed to its end."""

    abstract = MIX.get("importer", 1) == 0  # 0: no importer (the baseline run)
    fixed_count = MIX.get("importer", 1)
    wait_time = between(15, 30)
    rows = 50
    timeout = float(os.environ.get("LOADTEST_JOB_TIMEOUT", "240"))

    @task
    def import_customers(self):
        buf = io.StringIO()
        buf.write("customer_id,email,first_name,last_name,country\n")
        for _ in range(self.rows):
            ext = f"IMP-{uuid.uuid4().hex[:10]}"
            buf.write(f"{ext},{ext.lower()}@example.com,Ivy,Import,GB\n")
        with self.client.post(
            "/api/v1/imports/",
            files={"file": ("customers.csv", buf.getvalue().encode(), "text/csv")},
            data={"kind": "customers"},
            name="write: POST imports/",
            catch_response=True,
        ) as r:
            if r.status_code != 202:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            job_id = r.json()["job"]
        _job_times(
            self, "import (50 rows)", _follow_job(self, job_id, timeout=self.timeout), self.timeout
        )


class CampaignSender(_ApiUser):
    """One email campaign to a small organisation's largest segment, sent and followed."""

    abstract = MIX.get("campaign", 1) == 0
    fixed_count = MIX.get("campaign", 1)
    wait_time = between(45, 75)
    timeout = float(os.environ.get("LOADTEST_JOB_TIMEOUT", "240"))

    def on_start(self):
        choices = [o for o in SMALL if o["segments"]] or SMALL
        self.org = random.choice(choices)
        self.client.headers.update(
            {"Authorization": f"Api-Key {self.org['key']}", "Accept": "application/json"}
        )

    @task
    def send(self):
        if not self.org["segments"]:
            return
        body = {
            "name": f"Load test {uuid.uuid4().hex[:8]}",
            "channel": "email",
            "segment_ids": [self.org["segments"][0]],
            "subject": "Hello {{ first_name }}",
            "body": "Hello {{ first_name }}, a note from the load test.",
        }
        with self.client.post(
            "/api/v1/campaigns/", json=body, name="write: POST campaigns/", catch_response=True
        ) as r:
            if r.status_code != 201:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            cid = r.json()["id"]
        with self.client.post(
            f"/api/v1/campaigns/{cid}/send/",
            json={},
            name="write: POST campaigns/{id}/send/",
            catch_response=True,
        ) as r:
            if r.status_code != 202:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return
            job_id = r.json()["job"]
        _job_times(
            self, "campaign send", _follow_job(self, job_id, timeout=self.timeout), self.timeout
        )
        self._get(f"/api/v1/campaigns/{cid}/stats/", "api: GET campaigns/{id}/stats/")
