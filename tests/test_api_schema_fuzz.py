"""Schema fuzzing: every operation of `/api/schema/`, called in-process with a write key.

Schemathesis generates requests from the OpenAPI document (valid and invalid
ones) and checks each answer: no server error, a status code the schema
documents, and a body that matches the documented schema. It runs against a
throwaway organisation seeded with one of every object (the isolation sweep's
`build_world`), and half of the calls that take an `{id}` address a real object
so the 200 answers are checked too, not only the 404s.

Bounded and deterministic: a fixed number of examples per operation and
derandomised Hypothesis, so CI sees the same requests on every run.
"""

from __future__ import annotations

import itertools
import os
import re

import pytest
import schemathesis
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from accounts.tenancy import tenant_context
from accounts.tests.factories import OrganizationFactory, make_api_key
from customers.tests.factories import OrderLineFactory

# CI's bound; SCHEMA_FUZZ_EXAMPLES=200 digs deeper locally
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]

# first path segment under /api/v1/ -> the model its `{id}` addresses
ID_MODELS = {
    "customers": "customers.Customer",
    "products": "customers.Product",
    "orders": "customers.Order",
    "events": "customers.Event",
    "imports": "customers.Import",
    "jobs": "core.Job",
    "segments": "segmentation.Segment",
    "personas": "segmentation.Persona",
    "webhooks": "webhooks.WebhookEndpoint",
    "offers": "offers.Offer",
}
RESOURCE = re.compile(r"^/api/v1/([^/]+)/\{id\}/")


@pytest.fixture
def keep_test_connection():
    """The test's transaction must outlive each request: a bare WSGI handler closes
    connections when a request starts and finishes (Django's test client does the same)."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def fuzz_world(db, keep_test_connection):
    """A throwaway organisation with a write key and one of every object."""
    from tests.test_tenant_isolation import build_worlds

    organization = OrganizationFactory(name="Fuzz Shop", slug="fuzz-shop")
    build_worlds(organization)
    with tenant_context(organization):
        # a few more people, and a guest order (no customer) for the nullable fields
        for _ in range(3):
            OrderLineFactory()
        OrderLineFactory(order__customer=None)
    _, raw_key = make_api_key(organization, "write")
    # the organisation's request budget is a cache counter: start it empty
    cache.clear()
    return {"organization": organization, "key": raw_key}


# Loaded once at collection: generating the document needs no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())
_turn = itertools.count()


def _real_id(organization, resource: str) -> int | None:
    from django.apps import apps

    label = ID_MODELS.get(resource)
    if label is None:
        return None
    model = apps.get_model(label)
    with tenant_context(organization):
        qs = model.objects.all()
        if label == "customers.Customer":
            qs = qs.filter(erased_at__isnull=True)
        return qs.order_by("pk").values_list("pk", flat=True).first()


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=False,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_schema(case, fuzz_world):
    match = RESOURCE.match(case.path)
    if match and case.path_parameters and next(_turn) % 2 == 0:
        real = _real_id(fuzz_world["organization"], match.group(1))
        if real is not None:
            case.path_parameters["id"] = real
    case.call_and_validate(
        headers={"Authorization": f"Api-Key {fuzz_world['key']}"},
        checks=CHECKS,
    )
