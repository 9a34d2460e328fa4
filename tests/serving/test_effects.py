"""``/recommend`` and ``/allocate``: programme effects with intervals and reasons, and the
allocation of places, answered from the effect models of the served version."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from starlette.testclient import TestClient

from overblik.experiments._approval import CHAMPION
from overblik.features import demo_key
from overblik.features._pseudonym import pseudonymise_one
from overblik.serving import (
    MAX_ALLOCATE,
    AuditLog,
    ProfileStore,
    ServedModel,
    load_served_model,
    open_database,
)
from overblik.serving._effects import MATERIAL_SHARE
from tests.serving._setup import AS_OF, Served, bearer

CASEWORKER = "caseworker-system"


@pytest.fixture(scope="module")
def model(served: Served) -> ServedModel:
    m = load_served_model(served.model_name, CHAMPION, tracking_uri=served.tracking_uri)
    assert m.effects is not None, "the test experiment has an effects section"
    return m


@pytest.fixture(scope="module")
def store(served: Served, model: ServedModel) -> ProfileStore:
    return ProfileStore.load(served.profiles, features=model.feature_names,
                             key_fingerprint=demo_key().fingerprint)


def _payload(names: list[str], row: np.ndarray) -> dict[str, float | None]:
    return {n: (None if np.isnan(v) else float(v)) for n, v in zip(names, row, strict=True)}


def _row(store: ProfileStore, cpr: str) -> np.ndarray:
    row = store.row(pseudonymise_one(cpr, demo_key()))
    assert row is not None
    return row


def test_recommend_by_cpr_in_danish(client: TestClient, served: Served,
                                    model: ServedModel) -> None:
    answer = client.post("/recommend", json={"cpr": served.cprs[70]},
                         headers=bearer(served, CASEWORKER))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-language"] == "da"
    body = answer.json()
    assert body["model"] == {"name": served.model_name, "version": served.version,
                             "alias": CHAMPION}
    assert body["outcome"] == "child_placement" and body["horizon_days"] == 366
    assert body["source"] == "profile_store" and body["as_of"] == AS_OF.isoformat()
    assert model.effects is not None
    assert sorted(p["programme"] for p in body["programmes"]) == sorted(model.effects.programmes)
    effects = [p["effect"] for p in body["programmes"]]
    assert effects == sorted(effects, reverse=True)
    for p in body["programmes"]:
        assert p["ci_low"] <= p["effect"] <= p["ci_high"]
        assert p["cost"] == model.effects.costs[model.effects.programmes.index(p["programme"])]
        assert len(p["reasons"]) <= 5
        sizes = [abs(r["contribution"]) for r in p["reasons"]]
        assert sizes == sorted(sizes, reverse=True)
        assert all(r["sentence"].endswith(("øger den forventede effekt",
                                           "mindsker den forventede effekt"))
                   for r in p["reasons"])
        assert all((r["contribution"] > 0) == (r["direction"] == "raises") for r in p["reasons"])
    assert "træffer ikke en afgørelse" in body["notice"]
    assert "procentpoint" in body["scale"]


def test_recommend_in_english_with_top(client: TestClient, served: Served) -> None:
    headers = {**bearer(served, CASEWORKER), "Accept-Language": "en"}
    body = client.post("/recommend", json={"cpr": served.cprs[71], "top": 2},
                       headers=headers).json()
    assert body["language"] == "en" and "does not make one" in body["notice"]
    for p in body["programmes"]:
        assert len(p["reasons"]) <= 2
        assert all(r["sentence"].endswith(("raises the expected effect",
                                           "lowers the expected effect"))
                   for r in p["reasons"])
    bare = client.post("/recommend", json={"cpr": served.cprs[71], "top": 0},
                       headers=headers).json()
    assert all(p["reasons"] == [] for p in bare["programmes"])
    assert [p["effect"] for p in bare["programmes"]] == [p["effect"] for p in body["programmes"]]


def test_recommend_equals_the_effect_models(client: TestClient, served: Served,
                                            model: ServedModel, store: ProfileStore) -> None:
    """The served effect, interval and flag are the EffectsModel's for the same features;
    the reasons are its contributions; a payload answers as the CPR lookup does."""
    assert model.effects is not None
    for cpr in served.cprs[72:75]:
        row = _row(store, cpr)
        frame = model.effects.frame(row.reshape(1, -1)).set_index("programme")
        contributions = model.effects.contributions(row.reshape(1, -1))
        by_cpr = client.post("/recommend", json={"cpr": cpr, "top": 20},
                             headers=bearer(served, CASEWORKER)).json()
        by_payload = client.post("/recommend", json={
            "features": _payload(model.feature_names, row), "top": 20},
            headers=bearer(served, "analyst")).json()
        assert by_payload["source"] == "payload" and by_payload["as_of"] is None
        assert by_payload["programmes"] == by_cpr["programmes"]
        for p in by_cpr["programmes"]:
            expected = frame.loc[p["programme"]]
            assert p["effect"] == expected["effect"]
            assert p["ci_low"] == expected["ci_low"] and p["ci_high"] == expected["ci_high"]
            assert p["extrapolated"] == bool(expected["trimmed"])
            shares = contributions[p["programme"]][0]
            assert p["average"] == shares[-1]
            assert shares.sum() == pytest.approx(p["effect"], abs=1e-9)
            column = {n: j for j, n in enumerate(model.feature_names)}
            assert all(r["contribution"] == shares[column[r["feature"]]] for r in p["reasons"])
            # The 20 largest contributions, of those of at least 1 % of the effect (or of
            # the average, if larger): the rest do not move it in any way that matters.
            material = np.abs(shares[:-1])[
                np.abs(shares[:-1]) >= MATERIAL_SHARE * max(abs(p["effect"]), abs(p["average"]))]
            top = np.sort(material)[::-1][:20]
            assert [abs(r["contribution"]) for r in p["reasons"]] == list(top)


def test_suggested_follows_the_intervals(client: TestClient, served: Served) -> None:
    headers = bearer(served, CASEWORKER)
    suggested = 0
    for cpr in served.cprs[100:180]:
        body = client.post("/recommend", json={"cpr": cpr, "top": 0}, headers=headers).json()
        eligible = [p for p in body["programmes"]
                    if p["ci_low"] is not None and p["ci_low"] > 0 and not p["extrapolated"]]
        if eligible:
            suggested += 1
            assert body["suggested"] == max(eligible, key=lambda p: p["effect"])["programme"]
        else:
            assert body["suggested"] is None
    assert suggested > 0, "no citizen with a clearly helpful programme among 80"


def test_recommend_is_audited_and_takes_feedback(client: TestClient, served: Served) -> None:
    log = AuditLog(open_database(served.store_url))
    headers = bearer(served, CASEWORKER)
    body = client.post("/recommend", json={"cpr": served.cprs[75]}, headers=headers).json()
    found = log.find(body["request_id"])
    assert found is not None
    entry = found.entry
    assert entry.endpoint == "/recommend" and entry.status == 200 and entry.role == CASEWORKER
    assert entry.pseudonyms == (pseudonymise_one(served.cprs[75], demo_key()),)
    assert set(entry.summary) == {"source", "suggested", "effects"}
    assert entry.summary["suggested"] == body["suggested"]
    decision = client.post("/feedback", headers=headers, json={
        "request_id": body["request_id"], "decision": "followed", "action": "family_support"})
    assert decision.status_code == 200, decision.text
    stored = log.find(decision.json()["request_id"])
    assert stored is not None and stored.entry.pseudonyms == entry.pseudonyms


def test_recommend_roles(client: TestClient, served: Served, model: ServedModel,
                         store: ProfileStore) -> None:
    refused = client.post("/recommend", json={"cpr": served.cprs[76]},
                          headers=bearer(served, "analyst"))
    assert refused.status_code == 403 and refused.json()["fields"][0]["field"] == "cpr"
    payload = {"features": _payload(model.feature_names, _row(store, served.cprs[76]))}
    for role in ("auditor", "admin"):
        assert client.post("/recommend", json=payload,
                           headers=bearer(served, role)).status_code == 403
    unknown = client.post("/recommend", json={"cpr": served.outsider},
                          headers=bearer(served, CASEWORKER))
    assert unknown.status_code == 404 and unknown.json()["fields"][0]["field"] == "cpr"


def _citizens(model: ServedModel, store: ProfileStore, n: int) -> list[dict[str, Any]]:
    return [{"ref": f"sag-{i}", "features": _payload(model.feature_names, row)}
            for i, row in enumerate(store.matrix[:n])]


def test_allocate_within_places_and_budget(client: TestClient, served: Served,
                                           model: ServedModel, store: ProfileStore) -> None:
    assert model.effects is not None
    citizens = _citizens(model, store, 300)
    analyst = bearer(served, "analyst")
    answer = client.post("/allocate", json={"citizens": citizens,
                                            "places": {"family_support": 20}}, headers=analyst)
    assert answer.status_code == 200, answer.text[:500]
    body = answer.json()
    totals = body["totals"]
    assert [c["ref"] for c in body["citizens"]] == [c["ref"] for c in citizens]
    given = [c for c in body["citizens"] if c["programme"] is not None]
    assert totals["citizens"] == 300 and totals["assigned"] == len(given) <= 20
    assert totals["places_used"]["family_support"] == len(given)
    assert totals["places"] == {"family_support": 20}
    assert totals["status"] == "optimal"
    assert totals["cost"] == pytest.approx(len(given) * model.effects.costs[0])
    assert totals["expected_benefit"] == pytest.approx(sum(c["expected_benefit"] for c in given))
    # The audit log says who got which place (positions in the request).
    entry = list(AuditLog(open_database(served.store_url)).entries())[-1].entry
    assert entry.request_id == body["request_id"]
    assert entry.summary["assigned_items"] == {"family_support": [
        i for i, c in enumerate(body["citizens"]) if c["programme"] is not None]}
    # The same allocation as the effect models make for these rows. (This fixture's effect
    # model finds no differences between citizens; test_effects_scorer.py checks who gets
    # the places, and the reasons, where effects differ.)
    effect = model.effects.effect(store.matrix[:300])
    direct = model.effects.allocate(effect, places=[20])
    assert [c["programme"] is not None for c in body["citizens"]] == \
        list(direct.assignment >= 0)
    assert all(c["expected_benefit"] == effect[i, 0]
               for i, c in enumerate(body["citizens"]) if c["programme"])
    assert all(c["expected_benefit"] is None and c["extrapolated"] is None
               for c in body["citizens"] if c["programme"] is None)
    # A budget that buys fewer places than there are.
    cost = model.effects.costs[0]
    tight = client.post("/allocate", headers=analyst, json={
        "citizens": citizens, "places": {"family_support": 20}, "budget": 7.5 * cost}).json()
    assert tight["totals"]["assigned"] <= 7 and tight["totals"]["cost"] <= 7.5 * cost
    assert tight["totals"]["budget"] == 7.5 * cost
    cheaper = client.post("/allocate", headers=analyst, json={
        "citizens": citizens, "costs": {"family_support": cost / 2},
        "budget": 7.5 * cost}).json()["totals"]
    assert cheaper["places"] == {"family_support": model.effects.places[0]}  # the default
    assert cheaper["assigned"] <= 15 and cheaper["cost"] <= 7.5 * cost


def test_allocate_defaults_empty_list_and_audit(client: TestClient, served: Served,
                                                model: ServedModel, store: ProfileStore) -> None:
    assert model.effects is not None
    analyst = bearer(served, "analyst")
    empty = client.post("/allocate", json={"citizens": []}, headers=analyst)
    assert empty.status_code == 200, empty.text
    totals = empty.json()["totals"]
    assert totals["assigned"] == 0 and totals["method"] == "none"
    assert totals["places"] == dict(zip(model.effects.programmes, model.effects.places,
                                        strict=True))
    assert totals["budget"] == model.effects.budget
    answer = client.post("/allocate", json={"citizens": _citizens(model, store, 50)},
                         headers=analyst)
    found = AuditLog(open_database(served.store_url)).find(answer.json()["request_id"])
    assert found is not None
    entry = found.entry
    assert entry.role == "analyst" and entry.pseudonyms == ()
    assert entry.summary["n"] == 50 and "sag-" not in repr(entry)


def test_allocate_refuses_bad_requests(client: TestClient, served: Served,
                                       model: ServedModel, store: ProfileStore) -> None:
    analyst = bearer(served, "analyst")
    citizens = _citizens(model, store, 3)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"citizens": citizens, "places": {"mentor_programme": 5}}, 422,
         "places.mentor_programme"),
        ({"citizens": citizens, "costs": {"family_support": 1.0, "debt_counselling": 2.0}},
         422, "costs.debt_counselling"),
        ({"citizens": citizens, "places": {"family_support": -1}}, 422,
         "places.family_support"),
        ({"citizens": citizens, "budget": 0}, 422, "budget"),
        ({"citizens": [citizens[0], {**citizens[1], "ref": citizens[0]["ref"]}]}, 422,
         "citizens[1].ref"),
        ({"citizens": [{**citizens[0], "ref": "010190-1234"}]}, 422, "citizens[0].ref"),
        ({"citizens": [{"ref": "x", "features": {"age": 1.0}}]}, 422, "citizens[0].features"),
        ({"citizens": [{"ref": "x"}]}, 422, "citizens[0].features"),
        ({"citizens": [{"ref": "x", "cpr": "0101901234", "features": {}}]}, 422,
         "citizens[0].cpr"),
        ({"citizens": [{"ref": f"r{i}", "features": {}} for i in range(MAX_ALLOCATE + 1)]},
         422, "citizens"),
    ]
    for body, status, field in cases:
        answer = client.post("/allocate", json=body, headers=analyst)
        assert answer.status_code == status, (field, answer.text[:300])
        error = answer.json()
        assert field in [f["field"] for f in error["fields"]], (field, error)
        assert "0101901234" not in answer.text and "010190-1234" not in answer.text
    too_many = client.post("/allocate", headers=analyst, json=cases[-1][0]).json()
    assert "20000" in too_many["error"] or "20,000" in too_many["error"]
    caseworker = client.post("/allocate", json={"citizens": citizens},
                             headers=bearer(served, CASEWORKER))
    assert caseworker.status_code == 403


def test_metadata_lists_the_programmes(client: TestClient, served: Served,
                                       model: ServedModel) -> None:
    assert model.effects is not None
    body = client.get("/metadata", headers=bearer(served, "analyst")).json()
    effects = body["effects"]
    assert effects["available"] is True and effects["how_to"] is None
    assert [p["name"] for p in effects["programmes"]] == list(model.effects.programmes)
    assert effects["programmes"][0]["places"] == model.effects.places[0]
    assert body["roles"]["/recommend"] == sorted([CASEWORKER, "analyst"])
    assert body["roles"]["/allocate"] == ["analyst"]
