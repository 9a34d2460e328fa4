"""Malformed requests get a 4xx naming the field, are logged, and never cause a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from overblik.serving import AuditLog, contains_cpr, open_database
from tests.serving._setup import Served, bearer

CASEWORKER = "caseworker-system"
CPR_LIKE_KEY = "0101901234"


def _cases(served: Served, features: dict[str, Any], units: dict[str, str]
           ) -> list[tuple[str, str, Any, int, str]]:
    """(endpoint, id, body, status, field): ``body`` is JSON, or bytes sent as they are."""
    some = dict(list(features.items())[:-1])
    first = next(iter(features))
    count = next(n for n, u in units.items() if u == "count")
    flag = next(n for n, u in units.items() if u == "flag")
    wide = served.cprs[0].translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    feedback = {"request_id": "a" * 32, "decision": "overridden"}
    return [
        ("/score", "cpr-full-width-digits", {"cpr": wide}, 422, "cpr"),
        ("/score", "feature-text-number", {"features": {**features, first: "3"}}, 422,
         f"features.{first}"),
        ("/score", "feature-boolean", {"features": {**features, first: True}}, 422,
         f"features.{first}"),
        ("/score", "count-negative", {"features": {**features, count: -1}}, 422,
         f"features.{count}"),
        ("/score", "count-fraction", {"features": {**features, count: 1.5}}, 422,
         f"features.{count}"),
        ("/score", "flag-seven", {"features": {**features, flag: 7}}, 422, f"features.{flag}"),
        ("/score", "value-enormous", {"features": {**features, first: 1e300}}, 422,
         f"features.{first}"),
        ("/score", "all-null", {"features": dict.fromkeys(features)}, 422, "features"),
        ("/recommend", "recommend-all-null", {"features": dict.fromkeys(features)}, 422,
         "features"),
        *[("/feedback", f"cpr-in-reason-{i}", {**feedback, "reason": text}, 422, "reason")
          for i, text in enumerate(["barnet cpr0101901234 flyttet", "cpr_010190-1234",
                                    "borger 01.01.90-1234", "borger 010190 - 1234",
                                    "borger 010190\u20131234", "0 1 0 1 9 0 1 2 3 4"])],
        ("/feedback", "cpr-in-action", {**feedback, "reason": "x", "action": "0101901234"},
         422, "action"),
        ("/feedback", "invisible-reason", {**feedback, "reason": "\u00a0\u200b"}, 422,
         "reason"),
        ("/score", "cpr-not-a-string", {"cpr": 101901234}, 422, "cpr"),
        ("/score", "cpr-bad-date", {"cpr": "320190-1234"}, 422, "cpr"),
        ("/score", "cpr-too-long", {"cpr": "0" * 5000}, 422, "cpr"),
        ("/score", "nothing", {}, 422, "features"),
        ("/score", "both", {"cpr": served.cprs[0], "features": features}, 422, "features"),
        ("/score", "unknown-field", {"cpr": served.cprs[0], "extra": 1}, 422, "extra"),
        ("/score", "top-out-of-range", {"cpr": served.cprs[0], "top": 21}, 422, "top"),
        ("/score", "top-negative", {"cpr": served.cprs[0], "top": -1}, 422, "top"),
        ("/score", "top-wrong-type", {"cpr": served.cprs[0], "top": "five"}, 422, "top"),
        ("/score", "feature-not-a-number", {"features": {**features, next(iter(features)): "x"}},
         422, f"features.{next(iter(features))}"),
        ("/score", "feature-key-like-cpr", {"features": {CPR_LIKE_KEY: "x"}}, 422,
         "features.<key>"),
        ("/score", "unknown-feature", {"features": {**features, "no_such_feature": 1}}, 422,
         "features"),
        ("/score", "missing-feature", {"features": some}, 422, "features"),
        ("/score", "infinite", b'{"features": {"a": Infinity}}', 422, "features.a"),
        ("/score", "not-json", b"{cpr: 010190-1234", 422, "body"),
        ("/score", "array", b"[1, 2, 3]", 422, "body"),
        ("/score", "deeply-nested", b"[" * 20_000 + b"]" * 20_000, 422, "body"),
        ("/score", "huge", json.dumps({"cpr": "x" * 3_000_000}).encode(), 413, "body"),
        ("/score/batch", "empty", {"items": []}, 422, "items"),
        ("/score/batch", "too-many", {"items": [{"cpr": served.cprs[0]}] * 1001}, 422, "items"),
        ("/score/batch", "bad-item", {"items": [{"cpr": served.cprs[0]}, {"cpr": "1"}]}, 422,
         "items[1].cpr"),
        ("/explain", "explain-bad-cpr", {"cpr": "999999-9999"}, 422, "cpr"),
        ("/explain", "unknown-citizen", {"cpr": served.outsider}, 404, "cpr"),
        ("/score", "unknown-citizen", {"cpr": served.outsider}, 404, "cpr"),
        ("/recommend", "recommend-bad-cpr", {"cpr": "320190-1234"}, 422, "cpr"),
        ("/recommend", "recommend-unknown-citizen", {"cpr": served.outsider}, 404, "cpr"),
        ("/recommend", "recommend-top", {"cpr": served.cprs[0], "top": 21}, 422, "top"),
        ("/recommend", "recommend-both", {"cpr": served.cprs[0], "features": features}, 422,
         "features"),
        ("/recommend", "recommend-missing-feature", {"features": some}, 422, "features"),
        ("/recommend", "recommend-unknown-field", {"cpr": served.cprs[0], "ref": "x"}, 422,
         "ref"),
        ("/feedback", "bad-request-id", {"request_id": "abc", "decision": "followed"}, 422,
         "request_id"),
        ("/feedback", "unknown-request-id", {"request_id": "a" * 32, "decision": "followed"},
         404, "request_id"),
        ("/feedback", "bad-decision", {"request_id": "a" * 32, "decision": "maybe"}, 422,
         "decision"),
        ("/feedback", "no-reason", {"request_id": "a" * 32, "decision": "overridden"}, 422,
         "reason"),
        ("/feedback", "cpr-in-reason", {"request_id": "a" * 32, "decision": "overridden",
                                        "reason": "borger 010190-1234 har flyttet"}, 422,
         "reason"),
        ("/feedback", "long-reason", {"request_id": "a" * 32, "decision": "followed",
                                      "reason": "x" * 5000}, 422, "reason"),
    ]


@pytest.fixture(scope="module")
def units(client: TestClient, served: Served) -> dict[str, str]:
    answer = client.get("/metadata", headers=bearer(served, CASEWORKER))
    return {f["name"]: f["unit"] for f in answer.json()["features"]}


@pytest.fixture(scope="module")
def features(client: TestClient, served: Served) -> dict[str, Any]:
    answer = client.post("/explain", json={"cpr": served.cprs[0]},
                         headers=bearer(served, CASEWORKER))
    return {c["feature"]: c["value"] for c in answer.json()["contributions"]}


def test_malformed_requests(client: TestClient, served: Served,
                            features: dict[str, Any], units: dict[str, str]) -> None:
    headers = {**bearer(served, CASEWORKER), "Content-Type": "application/json"}
    log = AuditLog(open_database(served.store_url))
    for endpoint, name, body, status, field in _cases(served, features, units):
        before = log.head()[0]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post(endpoint, content=content, headers=headers)
        assert answer.status_code == status, (name, answer.status_code, answer.text[:300])
        error = answer.json()
        assert field in [f["field"] for f in error["fields"]], (name, error)
        assert error["request_id"] == answer.headers["x-request-id"]
        logged = list(log.entries())[before:]
        assert [e.entry.status for e in logged] == [status], name  # still logged, once
        assert CPR_LIKE_KEY not in answer.text


def test_malformed_allocations(client: TestClient, served: Served,
                               features: dict[str, Any]) -> None:
    """``/allocate`` (analysts): the same 4xx naming the field, logged once, never echoed."""
    headers = {**bearer(served, "analyst"), "Content-Type": "application/json"}
    one = {"ref": "sag-1", "features": features}
    name = next(iter(features))
    cases: list[tuple[str, Any, int, str]] = [
        ("not-json", b'{"citizens": [', 422, "body"),
        ("array", b"[]", 422, "body"),
        ("no-citizens", {}, 422, "citizens"),
        ("citizens-not-a-list", {"citizens": {"sag-1": features}}, 422, "citizens"),
        ("feature-key-like-cpr", {"citizens": [{"ref": "a", "features": {CPR_LIKE_KEY: "x"}}]},
         422, "citizens[0].features.<key>"),
        ("unknown-feature", {"citizens": [{"ref": "a", "features": {CPR_LIKE_KEY: 1}}]}, 422,
         "citizens[0].features"),
        ("missing-feature", {"citizens": [one, {"ref": "b", "features": {name: 1}}]}, 422,
         "citizens[1].features"),
        ("feature-not-a-number", {"citizens": [{**one, "features": {**features, name: "x"}}]},
         422, f"citizens[0].features.{name}"),
        ("infinite", b'{"citizens": [{"ref": "a", "features": {"a": Infinity}}]}', 422,
         "citizens[0].features.a"),
        ("ref-too-long", {"citizens": [{**one, "ref": "x" * 65}]}, 422, "citizens[0].ref"),
        ("ref-with-spaces", {"citizens": [{**one, "ref": "sag 1"}]}, 422, "citizens[0].ref"),
        ("ref-cpr", {"citizens": [{**one, "ref": f"a{CPR_LIKE_KEY}"}]}, 422, "citizens[0].ref"),
        ("ref-cpr-dots", {"citizens": [{**one, "ref": "01.01.90-1234"}]}, 422,
         "citizens[0].ref"),
        ("ref-cpr-colon", {"citizens": [{**one, "ref": "010190:1234"}]}, 422,
         "citizens[0].ref"),
        ("cost-enormous", {"citizens": [one], "costs": {"family_support": 1e15},
                           "budget": 1e16}, 422, "costs.family_support"),
        ("budget-enormous", {"citizens": [one], "budget": 1e300}, 422, "budget"),
        ("count-negative", {"citizens": [{**one, "features": {**features, name: -1}}]}, 422,
         f"citizens[0].features.{name}"),
        ("programme-key-like-cpr", {"citizens": [one], "places": {CPR_LIKE_KEY: 1}}, 422,
         "places.<key>"),
        # Keys of a name's shape with a CPR number glued on: refused without being named.
        ("programme-key-glued-cpr", {"citizens": [one], "places": {f"c{CPR_LIKE_KEY}": 1}},
         422, "places.<key>"),
        ("cost-key-glued-cpr", {"citizens": [one], "costs": {f"x{CPR_LIKE_KEY}": 1}}, 422,
         "costs.<key>"),
        ("feature-key-glued-cpr",
         {"citizens": [{**one, "features": {**features, f"c{CPR_LIKE_KEY}": 1}}]}, 422,
         "citizens[0].features"),
        ("places-not-whole", {"citizens": [one], "places": {"family_support": 1.5}}, 422,
         "places.family_support"),
        ("budget-infinite", b'{"citizens": [], "budget": Infinity}', 422, "budget"),
        ("budget-text", {"citizens": [one], "budget": "lots"}, 422, "budget"),
    ]
    log = AuditLog(open_database(served.store_url))
    for name_, body, status, field in cases:
        before = log.head()[0]
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        answer = client.post("/allocate", content=content, headers=headers)
        assert answer.status_code == status, (name_, answer.status_code, answer.text[:300])
        error = answer.json()
        assert field in [f["field"] for f in error["fields"]], (name_, error)
        logged = list(log.entries())[before:]
        assert [e.entry.status for e in logged] == [status], name_
        assert CPR_LIKE_KEY not in answer.text
        assert CPR_LIKE_KEY not in repr(logged), name_  # the log is append-only


def test_no_request_id_reads_as_a_cpr_number(client: TestClient, served: Served) -> None:
    """Request ids are quoted in /feedback reasons and scanned in the logs: none may hold a
    CPR number, alone or as a batch item's ``<id>-<index>`` (a uuid4's hex did about once
    in 400 with a four-digit index)."""
    from overblik.serving._middleware import new_request_id

    ids = [new_request_id() for _ in range(3000)]
    ids += [client.post("/score", json={"cpr": served.cprs[0]}).json()["request_id"]
            for _ in range(40)]  # refused (no key), yet given an id
    assert len(set(ids)) == len(ids)
    for request_id in ids:
        assert len(request_id) == 32 and int(request_id, 16) >= 0
        for item in ("", "-7", "-1234", "-9999"):
            assert not contains_cpr(request_id + item), request_id + item


def test_values_outside_the_contracts_range_are_refused(client: TestClient, served: Served,
                                                        features: dict[str, Any]) -> None:
    """A mean grade of 55, a negative amount in DKK or an age of 200 is no profile's value:
    refused with the range the source contract sets (which /metadata gives); the range's
    own ends are scored."""
    meta = client.get("/metadata", headers=bearer(served, CASEWORKER)).json()["features"]
    bounded = {f["name"]: (f["low"], f["high"]) for f in meta if f["low"] is not None}
    grade = next(n for n in bounded if "grade_mean" in n)
    dkk = next(n for n in bounded if n.endswith("amount_dkk_sum_365d"))
    assert bounded[grade] == (-3.0, 12.0) and bounded[dkk] == (0.0, None)
    cases = {grade: (55, "a number from -3 to 12"), dkk: (-500, "a number from 0 to 1e+09"),
             "population__age_years": (200, "a number of years from 0 to 130")}
    headers = bearer(served, CASEWORKER)
    for name, (value, what) in cases.items():
        answer = client.post("/score", json={"features": {**features, name: value}},
                             headers=headers)
        assert answer.status_code == 422, (name, answer.text[:300])
        error = answer.json()["fields"][0]
        assert error["field"] == f"features.{name}"
        assert error["message"].startswith(f"{name} must be {what}")
    for name, (low, high) in bounded.items():
        for value in (low, high if high is not None else low + 1):
            answer = client.post("/score", json={"features": {**features, name: value}},
                                 headers=headers)
            assert answer.status_code == 200, (name, value, answer.text[:300])


def test_answers_count_the_unknown_features(client: TestClient, served: Served,
                                            features: dict[str, Any]) -> None:
    """A payload of mostly nulls still gets a score, but says how much of it was unknown;
    a profile from the store knows every feature."""
    headers = bearer(served, CASEWORKER)
    names = list(features)
    sparse = {**dict.fromkeys(names), names[0]: features[names[0]]}
    for endpoint in ("/score", "/recommend"):
        answer = client.post(endpoint, json={"features": sparse}, headers=headers).json()
        assert answer["unknown_features"] == len(names) - 1, endpoint
        stored = client.post(endpoint, json={"cpr": served.cprs[0]}, headers=headers).json()
        assert stored["unknown_features"] == 0, endpoint
    two_null = {**features, names[1]: None, names[2]: None}
    batch = client.post("/score/batch", json={"items": [
        {"features": two_null}, {"cpr": served.cprs[0]}]}, headers=headers).json()
    assert [r["unknown_features"] for r in batch["results"]] == [2, 0]


def test_a_misspelt_feature_is_named(client: TestClient, served: Served,
                                     features: dict[str, Any]) -> None:
    """A misspelt feature is told by the feature it was meant to be; the client's own key
    is not echoed (it may hold anything)."""
    last = list(features)[-1]
    typo = {**{k: v for k, v in features.items() if k != last}, f"{last}x": 1}
    answer = client.post("/score", json={"features": typo},
                         headers=bearer(served, CASEWORKER))
    assert answer.status_code == 422
    error = answer.json()["fields"][0]
    assert error["field"] == "features"
    assert f"1 name(s) are not features of {served.model_name} (did you mean {last}?)" \
        in error["message"]
    assert f"{last}x" not in answer.text


def test_messages_say_what_is_allowed_in_words(client: TestClient, served: Served,
                                                features: dict[str, Any]) -> None:
    """No regular expression, no library wording: the client reads what to send."""
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("/allocate", {"citizens": [{"ref": "sag 1", "features": features}]},
         "citizens[0].ref", "may hold only letters A-Z and a-z, digits and _ . : -"),
        ("/allocate", {"citizens": [{"ref": "a", "features": features}], "places": {"X": 1}},
         "places.<key>", "may hold only a programme's name: a small letter, then small "
         "letters, digits and _"),
        ("/score/batch", {"items": []}, "items", "is empty: give at least one"),
        ("/feedback", {"request_id": "a" * 32, "decision": "followed", "action": "a/b"},
         "action", "may hold only letters, digits, _, - and spaces")]
    for endpoint, body, field, message in cases:
        role = "analyst" if endpoint == "/allocate" else CASEWORKER
        answer = client.post(endpoint, json=body, headers=bearer(served, role))
        assert answer.status_code == 422, (endpoint, answer.text[:300])
        found = {f["field"]: f["message"] for f in answer.json()["fields"]}
        assert found.get(field) == message, (endpoint, found)
        assert "pattern" not in answer.text and "after validation" not in answer.text
    big = json.dumps({"request_id": "a" * 32, "decision": "overridden",
                      "reason": "x" * 3_000_000})
    answer = client.post("/feedback", content=big.encode(), headers={
        **bearer(served, CASEWORKER), "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert "split the batch" not in answer.text and "send only what" in answer.text


def test_two_authorization_headers_are_refused(client: TestClient, served: Served) -> None:
    """Which key would count? Neither: one header is asked for (the last used to win)."""
    headers = [("Authorization", bearer(served, "analyst")["Authorization"]),
               ("Authorization", bearer(served, CASEWORKER)["Authorization"])]
    answer = client.post("/score", json={"cpr": served.cprs[0]}, headers=headers)
    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["fields"][0] == {
        "field": "Authorization", "message": "send one Authorization header, not several",
        "index": None, "ref": None}


def test_a_key_given_twice_is_refused(client: TestClient, served: Served,
                                      features: dict[str, Any]) -> None:
    """The JSON parser kept the last of two values ({"cpr": A, "cpr": B} scored B; a
    feature given twice took its second value): refused, naming the key, at any depth; a
    key holding a CPR number is not echoed."""
    headers = {**bearer(served, CASEWORKER), "Content-Type": "application/json"}
    one = json.dumps({"cpr": served.cprs[1]})[1:-1]
    inner = json.dumps({"features": features})[1:-1]
    first = next(iter(features))
    cases = [
        ("/score", "{" + one + ", " + json.dumps({"cpr": served.cprs[2]})[1:-1] + "}", "cpr"),
        ("/score", "{" + inner[:-1] + f', "{first}": 1' + "}}", first),
        ("/score/batch", '{"items": [{' + one + "}, {" + one + ', "top": 1, "top": 2}]}',
         "top"),
        ("/feedback", '{"request_id": "' + "a" * 32 + '", "decision": "followed", '
         '"0101901234": 1, "0101901234": 2}', "<key>")]
    for endpoint, body, key in cases:
        answer = client.post(endpoint, content=body.encode(), headers=headers)
        assert answer.status_code == 422, (endpoint, answer.text[:300])
        assert answer.json()["fields"][0]["field"] == key, answer.text[:300]
        assert f"the key '{key}' appears twice" in answer.json()["error"]
        assert "0101901234" not in answer.text
    # The same key in two different objects is no duplicate.
    both = '{"items": [{' + one + "}, {" + one + "}]}"
    assert client.post("/score/batch", content=both.encode(),
                       headers=headers).status_code == 200


def test_wrong_content_type(client: TestClient, served: Served) -> None:
    answer = client.post("/score", content=b"cpr=0101901234",
                         headers={**bearer(served, CASEWORKER),
                                  "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415
    assert answer.json()["fields"][0]["field"] == "Content-Type"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({}, optional={"cpr": json_values, "features": json_values,
                                        "top": json_values, "items": json_values,
                                        "request_id": json_values, "decision": json_values,
                                        "citizens": json_values, "places": json_values,
                                        "budget": json_values}))


@settings(max_examples=90, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, endpoint=st.sampled_from(["/score", "/score/batch", "/explain", "/feedback",
                                              "/recommend", "/allocate"]))
def test_fuzzed_bodies_never_cause_a_500(client: TestClient, served: Served, body: Any,
                                         endpoint: str) -> None:
    role = "analyst" if endpoint == "/allocate" else CASEWORKER
    answer = client.post(endpoint, json=body, headers=bearer(served, role))
    assert 400 <= answer.status_code < 500 or answer.status_code == 200, answer.text[:300]
    if answer.status_code >= 400:
        assert answer.json()["error"]
