"""Requests a schema-driven fuzzer (schemathesis on /docs.json) found answered wrongly: each
is sent again exactly as found and must get a JSON answer that its own document allows."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from overblik.serving import ROLES
from tests.serving._setup import Served, bearer


def _numeric_exclusive_bounds(node: Any, path: str = "") -> list[str]:
    """Where a schema uses JSON Schema 2020-12's numeric exclusiveMinimum/Maximum."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
                found.append(f"{path}/{key}")
            found += _numeric_exclusive_bounds(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _numeric_exclusive_bounds(value, f"{path}/{i}")
    return found


def test_openapi_version_matches_its_schemas(client: TestClient) -> None:
    # Was "3.0.2" with pydantic's 2020-12 schemas: /allocate's budget (exclusiveMinimum: 0,
    # no minimum) is invalid OpenAPI 3.0, and a client generated from it refused the route.
    doc = client.get("/docs.json").json()
    assert _numeric_exclusive_bounds(doc), "the check below would be vacuous"
    assert doc["openapi"].startswith("3.1.")
    body = doc["paths"]["/allocate"]["post"]["requestBody"]["content"]["application/json"]
    budget = body["schema"]["properties"]["budget"]
    assert any(s.get("exclusiveMinimum") == 0 for s in budget.get("anyOf", [budget]))


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/healthz"), ("PUT", "/readyz"), ("DELETE", "/docs"), ("PATCH", "/docs.json"),
    ("OPTIONS", "/livez"), ("POST", "/")])
def test_wrong_method_on_a_public_route_is_json(client: TestClient, served: Served,
                                               method: str, path: str) -> None:
    # Was Starlette's text/plain "Method Not Allowed".
    for headers in ({}, bearer(served, "admin")):
        answer = client.request(method, path, headers=headers)
        assert answer.status_code == 405
        assert answer.headers["content-type"] == "application/json"
        assert "GET" in answer.headers["allow"]
        assert answer.json()["error"] == f"{path} takes GET"


def test_unknown_swagger_asset_is_json(client: TestClient) -> None:
    # Was Starlette's text/plain "Not Found".
    answer = client.get("/static_content/no-such-file.js")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/json"
    assert "GET /docs lists the endpoints" in answer.json()["error"]


def test_public_routes_still_answer(client: TestClient, served: Served) -> None:
    for path in ("/healthz", "/livez", "/readyz", "/docs", "/docs.json"):
        assert client.get(path).status_code == 200, path
    assert client.get("/static_content/swagger-ui.css").headers["content-type"].startswith(
        "text/css")
    assert client.get("/", follow_redirects=False).status_code in (302, 307)
    assert client.get("/metadata", headers=bearer(served, sorted(ROLES)[0])).status_code == 200


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/allocate", {"citizens": [], "places": {"family_support": True}}, "places"),
    ("/allocate", {"citizens": [], "places": {"family_support": "20"}}, "places"),
    ("/allocate", {"citizens": [], "costs": {"family_support": True}}, "costs"),
    ("/allocate", {"citizens": [], "budget": "1000"}, "budget"),
    ("/score", {"cpr": "0101901234", "top": True}, "top"),
    ("/recommend", {"cpr": "0101901234", "top": "3"}, "top"),
    ("/score/batch", {"items": [{"cpr": "0101901234"}], "top": False}, "top"),
])
def test_a_boolean_or_text_is_no_number(client: TestClient, served: Served, path: str,
                                        body: dict[str, Any], field: str) -> None:
    # Were read as 1 place, 3 reasons, ...: a client bug taken for a value (features were
    # already strict; now every number of a request is).
    role = "analyst" if path == "/allocate" else "caseworker-system"
    answer = client.post(path, json=body, headers=bearer(served, role))
    assert answer.status_code == 422, answer.text[:300]
    assert any(f["field"].startswith(field) for f in answer.json()["fields"]), answer.json()


def test_whole_numbers_still_count_as_numbers(client: TestClient, served: Served) -> None:
    answer = client.post("/allocate", json={"citizens": [], "places": {"family_support": 5},
                                            "costs": {"family_support": 2},
                                            "budget": 100},
                         headers=bearer(served, "analyst"))
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["totals"]["places"] == {"family_support": 5}
