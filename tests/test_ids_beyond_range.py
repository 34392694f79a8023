"""Object ids no database column can hold (beyond 2^63-1) answer 404, never 500.

Swept over every site and API route that takes an id (found by the isolation
sweep's route walk, so new routes are covered without being listed), with GET and
every write method. SQLite refuses to even compare such a number; PostgreSQL
compares it fine, and both must answer the same."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.models import Membership, Role
from accounts.services import api_key_create
from accounts.tests.factories import OrganizationFactory, UserFactory
from tests.test_tenant_isolation import WRITE_METHODS, id_routes

pytestmark = pytest.mark.django_db

HUGE_IDS = [2**63, 10**25]


@pytest.fixture
def owner_of_org(db):
    organization = OrganizationFactory(name="Range Shop", slug="range-shop")
    user = UserFactory(email="owner@range.test")
    Membership.objects.create(organization=organization, user=user, role=Role.OWNER)
    user.current_organization = organization
    user.save()
    return user


def _codes(client, url, **write_kwargs):
    codes = {"get": client.get(url).status_code}
    for method in WRITE_METHODS:
        codes[method] = getattr(client, method)(url, **write_kwargs).status_code
    return codes


def test_site_routes_answer_404_for_ids_beyond_any_column(owner_of_org, client):
    client.raise_request_exception = False
    client.force_login(owner_of_org)
    failures = []
    for route, params in id_routes():
        if route.startswith("api") or "-" in route:
            continue
        for pk in HUGE_IDS:
            url = reverse(route, kwargs=dict.fromkeys(params, pk))
            codes = _codes(client, url, data={}, content_type="application/json")
            if not set(codes.values()) <= {400, 404, 405}:
                failures.append(f"{url}: {codes}")
    assert not failures, "\n".join(failures)


def test_api_routes_answer_404_for_ids_beyond_any_column(owner_of_org):
    _, raw = api_key_create(
        organization=owner_of_org.current_organization, name="range", scope="write"
    )
    api = APIClient(raise_request_exception=False)
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    failures = []
    for route, params in id_routes():
        if not (route.startswith("api") or "-" in route):
            continue
        for pk in HUGE_IDS:
            url = reverse(route, kwargs=dict.fromkeys(params, pk))
            codes = _codes(api, url, data={}, format="json")
            if not set(codes.values()) <= {400, 404, 405}:
                failures.append(f"{url}: {codes}")
    assert not failures, "\n".join(failures)
