"""A batch with several bad items gets one 4xx naming every one of them (index, ref, field,
problem), capped at 20 with "and N more"; before, only the first was named."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from overblik.serving import AuditLog, open_database
from tests.serving._setup import Served, bearer

CASEWORKER = "caseworker-system"


@pytest.fixture(scope="module")
def features(client: TestClient, served: Served) -> dict[str, Any]:
    answer = client.post("/explain", json={"cpr": served.cprs[0]},
                         headers=bearer(served, CASEWORKER))
    return {c["feature"]: c["value"] for c in answer.json()["contributions"]}


@pytest.fixture(scope="module")
def count(client: TestClient, served: Served) -> str:
    """A feature whose values are counts (whole and not negative)."""
    answer = client.get("/metadata", headers=bearer(served, CASEWORKER))
    return next(f["name"] for f in answer.json()["features"] if f["unit"] == "count")


def _post(client: TestClient, served: Served, endpoint: str, body: Any, role: str
          ) -> tuple[int, dict[str, Any], list[Any]]:
    """Status, error body and the audit entries the request added."""
    log = AuditLog(open_database(served.store_url))
    before = log.head()[0]
    answer = client.post(endpoint, json=body, headers=bearer(served, role))
    return answer.status_code, answer.json(), list(log.entries())[before:]


def test_every_bad_payload_of_a_batch_is_named(client: TestClient, served: Served,
                                               features: dict[str, Any], count: str) -> None:
    items: list[dict[str, Any]] = [{"cpr": cpr} for cpr in served.cprs[:50]]
    items[7] = {"features": {**features, count: -1}}
    items[23] = {"features": {**features, count: 1.5}}
    items[41] = {"features": dict(list(features.items())[:-1])}
    status, error, logged = _post(client, served, "/score/batch", {"items": items}, CASEWORKER)
    assert status == 422, error
    bad = {7: "must be a whole number", 23: "must be a whole number", 41: "is missing 1"}
    # A value out of range is named down to its feature; a missing feature at the payload.
    fields = {7: f"items[7].features.{count}", 23: f"items[23].features.{count}",
              41: "items[41].features"}
    assert [(f["index"], f["field"]) for f in error["fields"]] == list(fields.items())
    for f in error["fields"]:
        assert bad[f["index"]] in f["message"] and f["ref"] is None
    assert error["error"].startswith("3 of 50 items cannot be used: ")
    for i, words in bad.items():
        assert f"{fields[i]}: " in error["error"] and words in error["error"]
    assert error["more"] == 0
    # Logged once, naming the fields; refused before anyone was looked up.
    assert [e.entry.status for e in logged] == [422]
    assert logged[0].entry.summary["fields"] == list(fields.values())
    assert logged[0].entry.pseudonyms == ()


def test_every_invalid_cpr_of_a_batch_is_named(client: TestClient, served: Served) -> None:
    """The schema's own errors (pydantic) list every bad item too, in message and fields."""
    items = [{"cpr": cpr} for cpr in served.cprs[:50]]
    for i in (3, 17, 44):
        items[i] = {"cpr": "320190-1234"}
    status, error, logged = _post(client, served, "/score/batch", {"items": items}, CASEWORKER)
    assert status == 422
    assert [(f["index"], f["field"]) for f in error["fields"]] == [
        (3, "items[3].cpr"), (17, "items[17].cpr"), (44, "items[44].cpr")]
    assert all(f"items[{i}].cpr: " in error["error"] for i in (3, 17, 44))
    assert [e.entry.status for e in logged] == [422]


def test_many_bad_items_are_capped_at_20(client: TestClient, served: Served) -> None:
    status, error, _ = _post(client, served, "/score/batch",
                             {"items": [{"cpr": "1"}] * 30}, CASEWORKER)
    assert status == 422
    assert [f["index"] for f in error["fields"]] == list(range(20))
    assert error["more"] == 10 and error["error"].endswith("; and 10 more")
    assert "items[19].cpr: " in error["error"] and "items[20]" not in error["error"]


def test_every_bad_citizen_of_an_allocation_is_named(client: TestClient, served: Served,
                                                     features: dict[str, Any],
                                                     count: str) -> None:
    """/allocate names each bad citizen with the caller's own ref."""
    citizens = [{"ref": f"sag-{i}", "features": features} for i in range(10)]
    citizens[2] = {"ref": "sag-2", "features": {**features, count: -1}}
    citizens[5] = {"ref": "sag-0", "features": features}
    citizens[8] = {"ref": "sag-8", "features": {**features, "no_such_feature": 1}}
    status, error, logged = _post(client, served, "/allocate", {"citizens": citizens},
                                  "analyst")
    assert status == 422, error
    assert [(f["index"], f["ref"], f["field"]) for f in error["fields"]] == [
        (2, "sag-2", f"citizens[2].features.{count}"), (5, "sag-0", "citizens[5].ref"),
        (8, "sag-8", "citizens[8].features")]
    assert error["error"].startswith("3 of 10 citizens cannot be used: ")
    said = error["error"]
    assert f"citizens[2].features.{count} (ref sag-2): " in said
    assert "must be a whole number" in said
    assert "citizens[5].ref (ref sag-0): repeats the ref of citizens[0]" in said
    assert "citizens[8].features (ref sag-8): 1 name(s) are not features" in said
    assert "no_such_feature" not in said  # a client's keys are never echoed
    assert [e.entry.status for e in logged] == [422]
