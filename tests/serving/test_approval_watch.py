"""A running service follows the ethics board: when the board withdraws its approval of the
served version, the scores stop (503, /readyz too) within seconds, and come back when the
board approves it again. It kept serving, and /metadata said "approved", until restarted."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import mlflow
from starlette.testclient import TestClient

from overblik.experiments._review import review
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
