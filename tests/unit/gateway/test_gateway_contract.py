"""The OpenAPI document is a contract: every success has a schema, every route lists every
error status it can answer, and all errors share one body."""

from __future__ import annotations

from typing import Any

import pytest

from campus_gateway.contract import ERROR_STATUSES
from campus_gateway.main import app

pytestmark = pytest.mark.unit


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = app.openapi()
    return [(m.upper(), p, op) for p, ops in spec["paths"].items() for m, op in ops.items()]


def json_schema(response: dict[str, Any]) -> dict[str, Any] | None:
    return response.get("content", {}).get("application/json", {}).get("schema")


def test_no_success_response_has_an_empty_schema() -> None:
    empty = [
        f"{method} {path} {code}"
        for method, path, op in operations()
        for code, response in op["responses"].items()
        if code.startswith("2") and code != "204" and not json_schema(response)
    ]
    assert not empty, empty
    assert len(operations()) >= 50


def test_every_route_documents_every_error_status_with_the_one_error_body() -> None:
    missing, other_shape = [], []
    for method, path, op in operations():
        # The health routes answer with their own bodies (campus_common.web), 503 included.
        if path in ("/health", "/health/live", "/health/ready"):
            continue
        for code in ERROR_STATUSES:
            response = op["responses"].get(str(code))
            if response is None:
                missing.append(f"{method} {path} {code}")
            elif json_schema(response) != {"$ref": "#/components/schemas/ErrorBody"}:
                other_shape.append(f"{method} {path} {code}: {json_schema(response)}")
    assert not missing, missing
    assert not other_shape, other_shape
