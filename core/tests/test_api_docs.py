"""Docs people can use (issue 16, item 10): /api/docs/ groups the operations by
resource, each with a summary; the main writes show example requests and answers;
every error answer shows the one error shape with an example; the introduction
writes down pagination, rate limits and the behaviours that surprise; and every
answer under /api/v1/ (errors included) names the API version it follows, which
is the newest entry of docs/api-changelog.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator

from accounts.tests.factories import OrganizationFactory, make_api_key
from core.api.version import API_VERSION

ERROR_REF = "#/components/schemas/Error"
ERROR_CODES = ("400", "401", "403", "404", "409", "413", "429")
WRITES = ("post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_is_grouped_by_its_resource_and_has_a_summary(schema):
    described = {tag["name"]: tag.get("description", "") for tag in schema["tags"]}
    problems = []
    for path, method, operation in _operations(schema):
        tags = operation.get("tags", [])
        resource = path.split("/api/v1/", 1)[1].split("/")[0]
        if len(tags) != 1 or tags[0] in ("v1", "api") or not described.get(tags[0]):
            problems.append(f"{method.upper()} {path}: tags {tags}")
        if not (operation.get("summary") or "").strip():
            problems.append(f"{method.upper()} {path}: no summary")
        if tags and tags[0] not in (resource, "privacy", "recommendations", "loyalty"):
            problems.append(f"{method.upper()} {path}: tag {tags[0]} is not its resource")
    assert not problems, problems
    tag_of = {(p, m): o["tags"][0] for p, m, o in _operations(schema)}
    assert tag_of[("/api/v1/customers/bulk/", "post")] == "customers"
    assert tag_of[("/api/v1/customers/{id}/erase/", "post")] == "privacy"
    assert tag_of[("/api/v1/customers/{id}/export/", "get")] == "privacy"
    assert tag_of[("/api/v1/orders/bulk/", "post")] == "orders"
    assert tag_of[("/api/v1/jobs/{id}/cancel/", "post")] == "jobs"
    for resource in ("customers", "orders", "products", "events", "segments", "predictions"):
        assert resource in described
    summaries = {(p, m): o["summary"] for p, m, o in _operations(schema)}
    assert summaries[("/api/v1/orders/{id}/", "patch")] == "Change an order"
    assert summaries[("/api/v1/jobs/{id}/cancel/", "post")] == "Cancel a job"


def test_write_operations_document_every_error_status_with_an_example(schema):
    missing = []
    for path, method, operation in _operations(schema):
        if method not in WRITES:
            continue
        for code in ERROR_CODES:
            body = operation["responses"].get(code, {}).get("content", {}).get("application/json")
            if not body or body.get("schema", {}).get("$ref") != ERROR_REF:
                missing.append(f"{method.upper()} {path} {code}")
                continue
            examples = list(body.get("examples", {}).values())
            if not examples or set(examples[0]["value"]["error"]) != {"code", "message", "fields"}:
                missing.append(f"{method.upper()} {path} {code}: no example")
    assert not missing, missing
    conflict = schema["paths"]["/api/v1/customers/bulk/"]["post"]["responses"]["409"]
    example = next(iter(conflict["content"]["application/json"]["examples"].values()))
    assert example["value"]["error"]["code"] == "idempotency_key_reused"
    limited = schema["paths"]["/api/v1/customers/bulk/"]["post"]["responses"]["429"]
    assert "Retry-After" in limited["headers"]


def test_the_main_writes_show_a_request_and_an_answer(schema):
    for path in ("customers", "orders", "products", "events"):
        operation = schema["paths"][f"/api/v1/{path}/bulk/"]["post"]
        request = operation["requestBody"]["content"]["application/json"]["examples"]
        records = next(iter(request.values()))["value"]
        assert isinstance(records, list) and records, path
        answer = operation["responses"]["200"]["content"]["application/json"]["examples"]
        assert set(next(iter(answer.values()))["value"]) >= {"jobs", "created", "errors"}
    lines = next(
        iter(
            schema["paths"]["/api/v1/orders/bulk/"]["post"]["requestBody"]["content"][
                "application/json"
            ]["examples"].values()
        )
    )["value"]
    assert all(line["order_id"] and line["line_id"] for line in lines)
    patch = schema["paths"]["/api/v1/customers/{id}/"]["patch"]
    assert patch["requestBody"]["content"]["application/json"]["examples"]


def test_the_introduction_writes_down_the_rules_and_the_surprises(schema):
    text = schema["info"]["description"]
    for words in (
        "creates that customer",  # unknown customer ids
        "`attributes`",  # unknown fields
        "without an `order_id`",  # lines without an order id
        "?cursor=",  # pagination
        "page_size",
        "X-RateLimit-Remaining",  # rate limits
        "Retry-After",
        "Idempotency-Key",
        "API-Version",
        "deprecated",
        "docs/api-changelog.md",
    ):
        assert words in text, words
    for code in ERROR_CODES:
        assert code in text, code


def test_every_documented_answer_names_the_version_header(schema):
    for path, method, operation in _operations(schema):
        for code, response in operation["responses"].items():
            assert "API-Version" in response.get("headers", {}), (method, path, code)


def test_the_version_is_the_newest_changelog_entry():
    changelog = (Path(settings.BASE_DIR) / "docs" / "api-changelog.md").read_text()
    dates = re.findall(r"^## (\d{4}-\d{2}-\d{2})", changelog, flags=re.MULTILINE)
    assert dates and dates[0] == API_VERSION == max(dates)
    assert "Deprecation policy" in changelog and "`deprecated`" in changelog


@pytest.mark.django_db
def test_every_api_answer_carries_the_version_errors_included(client):
    cache.clear()
    organization = OrganizationFactory()
    _, raw = make_api_key(organization, "read")
    auth = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}
    answers = {
        "ok": client.get("/api/v1/customers/", **auth),
        "no key": client.get("/api/v1/customers/"),
        "read key writing": client.post(
            "/api/v1/customers/bulk/", data=[], content_type="application/json", **auth
        ),
        "no such object": client.get("/api/v1/customers/999999/", **auth),
        "no such route": client.get("/api/v1/nothing-here/", **auth),
        "unknown filter": client.get("/api/v1/customers/?colour=blue", **auth),
    }
    with override_settings(UPLOAD_MAX_BYTES=10):
        # refused by core.uploads before any view runs
        answers["too large"] = client.post(
            "/api/v1/imports/", data={"kind": "customers", "file": "x" * 300_000}, **auth
        )
    statuses = {name: response.status_code for name, response in answers.items()}
    assert statuses == {
        "ok": 200,
        "no key": 401,
        "read key writing": 403,
        "no such object": 404,
        "no such route": 404,
        "unknown filter": 400,
        "too large": 413,
    }
    for name, response in answers.items():
        assert response.headers.get("API-Version") == API_VERSION, name


@pytest.mark.django_db
def test_throttled_answers_carry_the_version(client):
    cache.clear()
    organization = OrganizationFactory()
    _, raw = make_api_key(organization, "read")
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "key": "2/min"}
    with override_settings(
        REST_FRAMEWORK={**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    ):
        for _ in range(3):
            response = client.get("/api/v1/customers/", HTTP_AUTHORIZATION=f"Api-Key {raw}")
    cache.clear()
    assert response.status_code == 429
    assert response.headers["API-Version"] == API_VERSION


@pytest.mark.django_db
def test_pages_outside_the_api_carry_no_version(client):
    assert "API-Version" not in client.get("/healthz").headers
