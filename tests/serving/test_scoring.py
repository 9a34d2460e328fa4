"""What the endpoints answer: scores with reasons, batches, explanations, feedback stored with
its request, metadata, documentation; every request in the audit log."""

from __future__ import annotations

import re
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor

import mlflow
import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from overblik.experiments._approval import CHAMPION, FAIRNESS_PASSED
from overblik.features import demo_key
from overblik.features._pseudonym import pseudonymise_one
from overblik.serving import AuditLog, ProfileStore, load_served_model, open_database
from tests.serving._setup import AS_OF, Served, bearer

CASEWORKER = "caseworker-system"


def _audit(served: Served) -> AuditLog:
    return AuditLog(open_database(served.store_url))


def test_score_by_cpr_in_danish(client: TestClient, served: Served) -> None:
    answer = client.post("/score", json={"cpr": served.cprs[10]},
                         headers=bearer(served, CASEWORKER))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert answer.headers["x-request-id"] == body["request_id"]
    assert answer.headers["content-language"] == "da"
    assert 0.0 <= body["probability"] <= 1.0
    low, high = 0.05, 0.20
    expected = "low" if body["probability"] < low else "medium" if body["probability"] < high \
        else "high"
    assert body["risk_band"] == expected
    assert body["risk_band_text"] in ("lav", "middel", "høj")
    assert body["model"] == {"name": served.model_name, "version": served.version,
                             "alias": CHAMPION}
    assert body["source"] == "profile_store" and body["as_of"] == AS_OF.isoformat()
    assert len(body["reasons"]) == 5
    assert all("risikoen" in r["sentence"] for r in body["reasons"])
    sizes = [abs(r["contribution"]) for r in body["reasons"]]
    assert sizes == sorted(sizes, reverse=True)
    assert "træffer ikke en afgørelse" in body["notice"]
    assert body["outcome"] == "child_placement" and body["horizon_days"] == 366


def test_score_in_english_and_top(client: TestClient, served: Served) -> None:
    answer = client.post("/score", json={"cpr": served.cprs[10], "top": 3},
                         headers={**bearer(served, CASEWORKER),
                                  "Accept-Language": "en-GB,en;q=0.9,da;q=0.5"})
    body = answer.json()
    assert answer.headers["content-language"] == "en" and body["language"] == "en"
    assert answer.headers["vary"] == "Accept-Language"
    assert len(body["reasons"]) == 3
    assert all(r["sentence"].endswith(("raises the risk", "lowers the risk"))
               for r in body["reasons"])
    assert "does not make one" in body["notice"]
    # top 0: the score without reasons, as /score/batch and /recommend allow (was a 422).
    bare = client.post("/score", json={"cpr": served.cprs[10], "top": 0},
                       headers=bearer(served, CASEWORKER))
    assert bare.status_code == 200, bare.text
    assert bare.json()["reasons"] == []
    assert bare.json()["probability"] == body["probability"]


def test_score_equals_the_registered_model(client: TestClient, served: Served) -> None:
    """The served probability is exactly the estimator's predict_proba on the profile row,
    and a feature payload scores the same as the CPR lookup."""
    model = load_served_model(served.model_name, CHAMPION, tracking_uri=served.tracking_uri)
    store = ProfileStore.load(served.profiles, features=model.feature_names,
                              key_fingerprint=demo_key().fingerprint)
    headers = bearer(served, CASEWORKER)
    for cpr in served.cprs[20:25]:
        row = store.row(pseudonymise_one(cpr, demo_key()))
        assert row is not None
        expected = model.estimator.predict_proba(
            pd.DataFrame([row], columns=model.feature_names))[0, 1]
        by_cpr = client.post("/score", json={"cpr": cpr}, headers=headers).json()
        payload = {n: (None if np.isnan(v) else float(v))
                   for n, v in zip(model.feature_names, row, strict=True)}
        by_features = client.post("/score", json={"features": payload}, headers=headers).json()
        assert by_cpr["probability"] == expected == by_features["probability"]
        assert by_features["source"] == "payload" and by_features["as_of"] is None


def test_unknown_citizen_is_404(client: TestClient, served: Served) -> None:
    answer = client.post("/score", json={"cpr": served.outsider},
                         headers=bearer(served, CASEWORKER))
    assert answer.status_code == 404
    body = answer.json()
    assert body["fields"][0]["field"] == "cpr"
    assert AS_OF.isoformat() in body["error"]
    assert served.outsider.replace("-", "")[:6] not in answer.text


def test_batch(client: TestClient, served: Served) -> None:
    headers = bearer(served, CASEWORKER)
    cprs = served.cprs[30:34]
    items = [{"cpr": c} for c in cprs] + [{"cpr": served.outsider}]
    answer = client.post("/score/batch", json={"items": items}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["scored"] == 4 and body["not_found"] == 1
    results = body["results"]
    assert [r["index"] for r in results] == list(range(5))
    assert results[4]["status"] == "not_found" and results[4]["probability"] is None
    assert all(r["request_id"] == f"{body['request_id']}-{i}" for i, r in enumerate(results))
    for cpr, result in zip(cprs, results, strict=False):
        single = client.post("/score", json={"cpr": cpr}, headers=headers).json()
        assert result["probability"] == single["probability"]
        assert [r["feature"] for r in result["reasons"]] == \
            [r["feature"] for r in single["reasons"]]
    # The audit log keeps each item's probability and band, so a decision on an item joins
    # to what the caseworker saw.
    entry = next(e.entry for e in _audit(served).entries()
                 if e.entry.request_id == body["request_id"])
    assert entry.summary["items"] == [
        [round(r["probability"], 6), r["risk_band"]] for r in results[:4]] + [None]
    bare = client.post("/score/batch", json={"items": items[:2], "top": 0}, headers=headers)
    assert all(r["reasons"] == [] for r in bare.json()["results"])


def test_explain_adds_up_to_the_margin(client: TestClient, served: Served) -> None:
    answer = client.post("/explain", json={"cpr": served.cprs[40]},
                         headers=bearer(served, CASEWORKER))
    assert answer.status_code == 200
    body = answer.json()
    total = body["base_value"] + sum(c["contribution"] for c in body["contributions"])
    assert total == pytest.approx(body["margin"], abs=1e-9)
    model = load_served_model(served.model_name, CHAMPION, tracking_uri=served.tracking_uri)
    assert sorted(c["feature"] for c in body["contributions"]) == sorted(model.feature_names)
    sizes = [abs(c["contribution"]) for c in body["contributions"]]
    assert sizes == sorted(sizes, reverse=True)
    assert "log-odds" in body["scale"]
    raw = 1 / (1 + np.exp(-body["margin"]))
    assert body["probability"] == pytest.approx(float(model.estimator.calibrate([raw])[0]))


def test_feedback_is_stored_with_its_request(client: TestClient, served: Served) -> None:
    headers = bearer(served, CASEWORKER)
    scored = client.post("/score", json={"cpr": served.cprs[50]}, headers=headers).json()
    answer = client.post("/feedback", headers=headers, json={
        "request_id": scored["request_id"], "decision": "overridden",
        "action": "family_support", "reason": "Familien har allerede et forløb"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stored"] and body["for_request"] == scored["request_id"]
    log = _audit(served)
    request = log.find(scored["request_id"])
    decision = log.find(body["request_id"])
    assert request is not None and decision is not None
    assert decision.entry.kind == "feedback" and decision.seq > request.seq
    assert decision.entry.pseudonyms == request.entry.pseudonyms
    assert decision.entry.pseudonyms == (pseudonymise_one(served.cprs[50], demo_key()),)
    assert decision.entry.summary["decision"] == "overridden"
    assert decision.entry.summary["for_request"] == scored["request_id"]
    batch = client.post("/score/batch", headers=headers,
                        json={"items": [{"cpr": served.cprs[51]}, {"cpr": served.cprs[52]}]})
    item = batch.json()["results"][1]["request_id"]
    on_item = client.post("/feedback", headers=headers,
                          json={"request_id": item, "decision": "followed"})
    assert on_item.status_code == 200
    stored = log.find(on_item.json()["request_id"])
    assert stored is not None
    assert stored.entry.pseudonyms == (pseudonymise_one(served.cprs[52], demo_key()),)
    whole = client.post("/feedback", headers=headers,
                        json={"request_id": batch.json()["request_id"], "decision": "followed"})
    assert whole.status_code == 422 and whole.json()["fields"][0]["field"] == "request_id"
    unknown = client.post("/feedback", headers=headers,
                          json={"request_id": "0" * 32, "decision": "followed"})
    assert unknown.status_code == 404


def test_a_second_decision_on_a_score_names_the_one_it_corrects(client: TestClient,
                                                                  served: Served) -> None:
    """Two decisions on one score (followed, then overridden) with nothing linking them left
    the log saying both: the second is refused until it names the latest in ``corrects``,
    and the log then reads as a chain (a batch item's decisions the same, per item)."""
    headers = bearer(served, CASEWORKER)
    log = _audit(served)
    scored = client.post("/score", json={"cpr": served.cprs[55]}, headers=headers).json()
    target = scored["request_id"]
    first = client.post("/feedback", headers=headers,
                        json={"request_id": target, "decision": "followed"})
    assert first.status_code == 200, first.text
    first_id = first.json()["request_id"]
    assert first.json()["corrects"] is None
    again = client.post("/feedback", headers=headers, json={
        "request_id": target, "decision": "overridden", "reason": "Ny viden om familien"})
    assert again.status_code == 409, again.text
    assert again.json()["fields"][0]["field"] == "request_id"
    assert f'"corrects": "{first_id}"' in again.json()["error"]
    assert "followed at" in again.json()["error"]
    correction = {"request_id": target, "decision": "overridden",
                  "reason": "Ny viden om familien", "corrects": first_id}
    fixed = client.post("/feedback", headers=headers, json=correction)
    assert fixed.status_code == 200, fixed.text
    assert fixed.json()["corrects"] == first_id
    stored = log.find(fixed.json()["request_id"])
    assert stored is not None and stored.entry.summary["corrects"] == first_id
    assert [d.entry.request_id for d in log.decisions_on(target)] == [
        first_id, fixed.json()["request_id"]]
    # A client with a stale view (correcting the first again) is refused, naming the latest.
    stale = client.post("/feedback", headers=headers, json=correction)
    assert stale.status_code == 409 and stale.json()["fields"][0]["field"] == "corrects"
    assert fixed.json()["request_id"] in stale.json()["error"]
    # corrects without an earlier decision, or not a decision's id: refused, nothing stored.
    other = client.post("/score", json={"cpr": served.cprs[56]}, headers=headers).json()
    for bad, status in ((first_id, 422), (f"{first_id}-1", 422), ("x" * 32, 422)):
        answer = client.post("/feedback", headers=headers, json={
            "request_id": other["request_id"], "decision": "followed", "corrects": bad})
        assert answer.status_code == status, answer.text
        assert answer.json()["fields"][0]["field"] == "corrects"
    assert log.decisions_on(other["request_id"]) == []
    # Decisions on a batch's items are per item: one on item 0 does not block item 1.
    batch = client.post("/score/batch", headers=headers, json={"items": [
        {"cpr": served.cprs[57]}, {"cpr": served.cprs[58]}]}).json()
    for result in batch["results"]:
        answer = client.post("/feedback", headers=headers,
                             json={"request_id": result["request_id"], "decision": "followed"})
        assert answer.status_code == 200, answer.text
    repeat = client.post("/feedback", headers=headers, json={
        "request_id": batch["results"][0]["request_id"], "decision": "followed"})
    assert repeat.status_code == 409


def test_decisions_sent_at_once_on_one_score_store_one(client: TestClient,
                                                        served: Served) -> None:
    """Decisions on one score sent at once all passed the check before any was stored (the
    log is written after the answer is made) and all were stored: one is, the others get the
    409 that names it, and the log records them as refused requests."""
    headers = bearer(served, CASEWORKER)
    target = client.post("/score", json={"cpr": served.cprs[59]}, headers=headers
                         ).json()["request_id"]
    # Another writer holds the log's write lock while the decisions arrive, so each passes
    # the service's check before any of them is stored (WAL: the checks' reads go on).
    holder = sqlite3.connect(served.store_url.removeprefix("sqlite:///"), isolation_level=None)
    holder.execute("begin immediate")
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(client.post, "/feedback", headers=headers, json={
            "request_id": target, "decision": "followed", "action": action})
            for action in ("familiestøtte", "mentor", "ingen", "samtale")]
        time.sleep(1.0)
        holder.execute("commit")
        answers = [f.result(timeout=60) for f in futures]
    holder.close()
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409, 409], [a.text for a in answers]
    stored = next(a.json() for a in answers if a.status_code == 200)["request_id"]
    log = _audit(served)
    assert [d.entry.request_id for d in log.decisions_on(target)] == [stored]
    for refused in (a for a in answers if a.status_code == 409):
        assert stored in refused.json()["error"]
        entry = log.find(refused.headers["x-request-id"])
        assert entry is not None and entry.entry.kind == "request"
        assert entry.entry.status == 409 and entry.entry.summary["error"] == 409
    assert log.verify().intact


def test_feedback_only_on_scored_batch_items(client: TestClient, served: Served) -> None:
    """A decision needs a score: not on an item that was not found, and only under the id the
    results give it (``-0002`` would not join the log's ``-2``)."""
    headers = bearer(served, CASEWORKER)
    batch = client.post("/score/batch", headers=headers, json={"items": [
        {"cpr": served.cprs[53]}, {"cpr": served.outsider}, {"cpr": served.cprs[54]}]}).json()
    assert [r["status"] for r in batch["results"]] == ["scored", "not_found", "scored"]
    log = _audit(served)
    before = log.head()[0]
    missed = client.post("/feedback", headers=headers, json={
        "request_id": batch["results"][1]["request_id"], "decision": "followed"})
    assert missed.status_code == 404, missed.text
    assert "not scored" in missed.json()["error"]
    for odd in (f"{batch['request_id']}-0002", f"{batch['request_id']}-\u0662"):
        answer = client.post("/feedback", headers=headers,
                             json={"request_id": odd, "decision": "followed"})
        assert answer.status_code == 422, (odd, answer.text)
        assert "request id" in answer.json()["error"]
    assert [e.entry.kind for e in list(log.entries())[before:]] == ["request"] * 3
    scored = client.post("/feedback", headers=headers, json={
        "request_id": batch["results"][2]["request_id"], "decision": "followed"})
    assert scored.status_code == 200, scored.text


def test_every_request_is_audited(client: TestClient, served: Served) -> None:
    log = _audit(served)
    before = log.head()[0]
    headers = bearer(served, CASEWORKER)
    statuses = [
        client.post("/score", json={"cpr": served.cprs[60]}, headers=headers).status_code,
        client.post("/score", json={"cpr": "nonsense"}, headers=headers).status_code,
        client.post("/score", json={"cpr": served.cprs[60]}).status_code,
        client.get("/metadata", headers=headers).status_code,
        client.get("/audit/verify", headers=headers).status_code,
        client.get("/healthz").status_code,  # public probe: not audited
    ]
    assert statuses == [200, 422, 401, 200, 403, 200]
    after = list(log.entries())[before:]
    assert [e.entry.status for e in after] == [200, 422, 401, 200, 403]
    first = after[0].entry
    assert first.key_id is not None and first.role == CASEWORKER
    assert first.model == served.model_name and first.model_version == served.version
    assert first.pseudonyms == (pseudonymise_one(served.cprs[60], demo_key()),)
    assert set(first.summary) == {"probability", "band", "source"}
    assert first.latency_ms > 0
    assert after[1].entry.summary == {"error": 422, "fields": ["cpr"]}
    assert after[2].entry.key_id is None
    verified = client.get("/audit/verify", headers=bearer(served, "auditor"))
    assert verified.status_code == 200 and verified.json()["intact"]


def test_metadata(client: TestClient, served: Served) -> None:
    body = client.get("/metadata", headers=bearer(served, "analyst")).json()
    assert body["model"]["version"] == served.version
    assert body["approval"]["decision"] == "approved"
    # Typed, as the board decided (was the string "false", and no audit verdict).
    tags = mlflow.MlflowClient(tracking_uri=served.tracking_uri, registry_uri=served.tracking_uri
                               ).get_model_version(served.model_name, served.version).tags
    passed = tags[FAIRNESS_PASSED] == "true"
    assert body["approval"]["fairness_passed"] is passed
    assert body["approval"]["overrides_fairness"] is (not passed)
    assert body["profile_store"]["as_of"] == AS_OF.isoformat()
    assert body["profile_store"]["rows"] == len(pd.read_parquet(served.profiles))
    assert body["features"] and all(f["description_da"] and f["description_en"]
                                    for f in body["features"])
    assert body["roles"]["/score"] == [CASEWORKER]
    assert body["demo_data"] is True
    assert "log-odds" in body["explanation"]
    assert "roc_auc" in body["metrics"]


def test_docs_and_openapi(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text
    assert not re.search(r"src=\"https?://", page.text)  # no third-party scripts
    assert client.get("/", follow_redirects=False).headers["location"] == "/docs"
    doc = client.get("/docs.json").json()
    assert doc["info"]["title"] == "overblik scoring service"
    assert doc["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    for path in ("/score", "/score/batch", "/explain", "/recommend", "/allocate", "/feedback"):
        operation = doc["paths"][path]["post"]
        assert {"401", "403", "422"} <= set(operation["responses"])
        assert "Roles:" in operation["description"]
        assert ("409" in operation["responses"]) == (
            path in ("/recommend", "/allocate", "/feedback"))
    schemas = doc["components"]["schemas"]
    assert {"RecommendResponseIODescriptor", "AllocateResponseIODescriptor",
            "ProgrammeEffect", "AllocationTotals"} <= set(schemas)
    effect = schemas["ProgrammeEffect"]["properties"]
    assert "positive = it helps" in effect["effect"]["description"]
    assert "get" in doc["paths"]["/metadata"] and "get" in doc["paths"]["/audit/verify"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []


def test_metrics_count_routes_never_paths(client: TestClient, served: Served) -> None:
    headers = bearer(served, CASEWORKER)
    assert client.get("/citizens/010190-1234", headers=headers).status_code == 404
    assert client.post("/score", json={"cpr": served.cprs[61]}, headers=headers).status_code == 200
    answer = client.get("/metrics", headers=bearer(served, "admin"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    text = answer.text
    assert 'overblik_requests_total{endpoint="/score",status="200"}' in text
    assert 'overblik_request_duration_seconds_bucket{endpoint="/score",le="0.05"}' in text
    assert 'endpoint="(unknown)",status="404"' in text
    assert "/citizens" not in text and "010190" not in text
