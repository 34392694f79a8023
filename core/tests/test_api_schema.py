"""The OpenAPI document tells the truth about errors and the shapes the fuzzing
found wrong (issue 8, item 14); tests/test_api_schema_fuzz.py checks real answers."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def test_every_operation_documents_the_error_answers_with_the_error_shape(schema):
    missing = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for code in ("400", "401", "403", "404", "409", "413", "429"):
                response = operation["responses"].get(code)
                ref = (
                    (response or {})
                    .get("content", {})
                    .get("application/json", {})
                    .get("schema", {})
                    .get("$ref")
                )
                if ref != ERROR_REF:
                    missing.append(f"{method.upper()} {path} {code}")
    assert not missing, missing


def test_the_error_component_is_the_contract_shape(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["error"]
    detail = components["ErrorDetail"]
    assert set(detail["properties"]) == {"code", "message", "fields"}


def test_shapes_match_what_the_api_returns(schema):
    components = schema["components"]["schemas"]
    errors = components["Import"]["properties"]["errors"]
    assert errors["type"] == "array"
    assert components["Order"]["properties"]["customer_id"].get("nullable") is True
    predictions = components["Predictions"]["properties"]["expected_next_order_at"]
    assert predictions["format"] == "date"
