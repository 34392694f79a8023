"""The plan's limit of customers against bulk API calls made at the same time
(issue 17): two calls that each fit alone cannot together pass the limit."""

from __future__ import annotations

import os
import threading
import time

import pytest
from django.db import connection, connections, transaction

from accounts.limits import LimitReached
from accounts.models import OrganizationLimits
from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory
from customers.models import Customer
from customers.services.imports.engine import run_records


def _backend_waits_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        # pg_locks is read afresh on every call (pg_stat_activity is kept per transaction)
        cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
        return cursor.fetchone()[0] > 0


@pytest.mark.skipif(
    os.environ.get("DATABASE_URL", "").split(":")[0] not in ("postgres", "postgresql"),
    reason="PostgreSQL only (two connections at once)",
)
@pytest.mark.django_db(transaction=True)
def test_two_bulk_calls_at_once_do_not_pass_the_customer_limit():
    org = OrganizationFactory()
    OrganizationLimits.objects.create(organization=org, customers=1)
    outcome: dict = {}

    def second_call() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_backend_pid()")
                outcome["pid"] = cursor.fetchone()[0]
            with tenant_context(org):
                run_records(organization=org, kind="customers", records=[{"customer_id": "B"}])
            outcome["second"] = "written"
        except LimitReached:
            outcome["second"] = "refused"
        finally:
            connections.close_all()

    with tenant_context(org), transaction.atomic():
        # the first call has written its new customer and not committed yet
        run_records(organization=org, kind="customers", records=[{"customer_id": "A"}])
        thread = threading.Thread(target=second_call)
        thread.start()
        # the second call either finishes (it did not wait for the first) or waits
        # on a lock held by the first: no timing involved
        while thread.is_alive() and not (
            "pid" in outcome and _backend_waits_on_a_lock(outcome["pid"])
        ):
            time.sleep(0.02)
    thread.join()
    with tenant_context(org):
        held = sorted(Customer.objects.values_list("external_id", flat=True))
    assert held == ["A"]
    assert outcome["second"] == "refused"
