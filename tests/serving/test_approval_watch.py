"""A running service follows the ethics board: when the board withdraws its approval of the
served version, the scores stop (503, /readyz too) within seconds, and come back when the
board approves it again. It kept serving, and /metadata said "approved", until restarted."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mlflow
from starlette.testclient import TestClient

from overblik.experiments._approval import Approval, ReviewRecord
from overblik.experiments._review import review
from overblik.experiments._review_log import REVIEW_TABLE, ReviewLog
from overblik.serving._approval_watch import ApprovalWatch
from tests.serving._setup import Served, approve, bearer

CASEWORKER = "caseworker-system"


def _until(status: int, ask: Callable[[], httpx.Response]) -> httpx.Response:
    """Ask until the answer has ``status`` (the watch looks each second), at most 20 s."""
    deadline = time.monotonic() + 20
    while True:
        answer = ask()
        if answer.status_code == status or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


def test_a_withdrawn_approval_stops_the_scores_of_a_running_service(client: TestClient,
                                                                    served: Served) -> None:
    registry = mlflow.MlflowClient(tracking_uri=served.tracking_uri,
                                   registry_uri=served.tracking_uri)
    headers = bearer(served, CASEWORKER)

    def score() -> httpx.Response:
        return client.post("/score", json={"cpr": served.cprs[3]}, headers=headers)

    first = score()
    assert first.status_code == 200, first.text
    assert client.get("/readyz").status_code == 200
    try:
        review(served.model_name, served.version, decision="rejected", by="Etisk råd",
               reason="proxy for origin found", client=registry)
        refused = _until(503, score)
        assert refused.status_code == 503, refused.text
        said = refused.json()["error"]
        assert f"version {served.version} may no longer serve" in said
        assert "rejected it" in said and "proxy for origin found" in said
        assert client.get("/readyz").status_code == 503
        batch = client.post("/score/batch", json={"items": [{"cpr": served.cprs[4]}]},
                            headers=headers)
        assert batch.status_code == 503
        meta = client.get("/metadata", headers=headers).json()
        assert meta["approval"]["decision"] == "rejected"
        # A decision on a score given before is still recorded: the log stays complete.
        decided = client.post("/feedback", headers=headers, json={
            "request_id": first.json()["request_id"], "decision": "followed"})
        assert decided.status_code == 200, decided.text
    finally:  # the board approves again: the same service serves again
        approve(served.tracking_uri, served.model_name, served.version)
    again = _until(200, score)
    assert again.status_code == 200, again.text
    assert client.get("/readyz").status_code == 200


def _watching(tracking_uri: str, name: str, version: str,
              grace: float) -> ApprovalWatch:
    placeholder = Approval(decision="approved", by="Etisk råd", reason="ok", at="",
                           overrides_fairness=False)
    watch = ApprovalWatch(name, version, tracking_uri=tracking_uri, seconds=0.1,
                          approval=placeholder, grace_seconds=grace)
    watch.start()
    return watch


def _withdrawn_within(watch: ApprovalWatch, seconds: float) -> str | None:
    deadline = time.monotonic() + seconds
    while watch.withdrawn is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return watch.withdrawn


def test_the_watch_fails_closed(tmp_path: Path) -> None:
    """It kept serving whenever it could not read the decision: a damaged record (the
    board's rejection unread) or a version deleted from the registry (the board could no
    longer reject it) left a rejected version answering scores indefinitely."""
    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    registry.create_registered_model("overblik-watched")
    registry.create_model_version("overblik-watched", source=str(tmp_path / "model"))
    # Gone from the registry: withdrawn at once, whatever the grace.
    gone = _watching(uri, "overblik-watched", "7", grace=3600)
    try:
        said = _withdrawn_within(gone, 10)
        assert said is not None and "no longer in the registry" in said
    finally:
        gone.close()
    # The record cannot be read: withdrawn once the grace is over, not before.
    log = ReviewLog(uri)
    log.append(ReviewRecord(event="review", time="2026-01-01T00:00:00Z",
                            model="overblik-watched", version="1", run_id=None,
                            config_hash=None, fairness_passed=True))
    with sqlite3.connect(tmp_path / "registry.db") as conn:
        conn.execute(f"insert into {REVIEW_TABLE} (time, model, version, event, record) "
                     "values ('t', 'overblik-watched', '1', 'review', 'not json')")
    damaged = _watching(uri, "overblik-watched", "1", grace=0.5)
    try:
        time.sleep(0.3)
        assert damaged.withdrawn is None  # within the grace: a passing outage
        said = _withdrawn_within(damaged, 10)
        assert said is not None and "cannot be read" in said and "is not a record" in said
    finally:
        damaged.close()
