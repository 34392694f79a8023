"""Rate limits per API key, with X-RateLimit-* headers on every answer (issue 16, item 8)."""

from __future__ import annotations

from rest_framework.test import APIClient

from accounts.tests.factories import make_api_key


def _client(org, scope):
    _, raw = make_api_key(org, scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {raw}")
    return client


def _limits(response):
    return tuple(
        int(response[h])
        for h in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")
    )


def test_headers_count_per_key_and_a_read_burst_leaves_the_write_key_alone(org, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "60/min", "key": "5/min"},
    }
    reader, writer = _client(org, "read"), _client(org, "write")
    seen = [_limits(reader.get("/api/v1/customers/")) for _ in range(5)]
    assert [(limit, left) for limit, left, _ in seen] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    assert all(0 < reset <= 60 for *_, reset in seen)

    refused = reader.get("/api/v1/customers/")
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == "throttled"
    assert _limits(refused)[:2] == (5, 0)

    # the same organisation's write key has its own budget
    written = writer.post("/api/v1/customers/bulk/", [{"customer_id": "W1"}], format="json")
    assert written.status_code == 200
    assert _limits(written)[:2] == (5, 4)


def test_headers_on_errors_too(org, api):
    missing = api.get("/api/v1/customers/999999/")
    assert missing.status_code == 404
    assert _limits(missing)[0] > 0
    nobody = APIClient().get("/api/v1/customers/")
    assert nobody.status_code in (401, 403)
    assert "X-RateLimit-Limit" in nobody


def test_429_and_headers_are_in_the_schema(client):
    import yaml

    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/customers/"]["get"]
    assert "Retry-After" in operation["responses"]["429"]["headers"]
    assert "X-RateLimit-Remaining" in operation["responses"]["200"]["headers"]
