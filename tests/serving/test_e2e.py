"""End to end through a real ``bentoml serve`` started by ``overblik serve``: a full session of
requests, then a privacy scan of every response, the service's own logs and the audit log
for CPR numbers; and a worker that cannot start stops the whole server."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from overblik.serving import AuditLog, open_database
from overblik.serving._service import STOP_ON_FAILURE_ENV
from tests.serving._setup import Served, bearer, free_port, stop, subprocess_env, wait_ready

CASEWORKER = "caseworker-system"
# A CPR number as free text finds it: DDMMYY-SSSS or ten digits as a word of its own, not
# inside a hex digest and not the tail of a decimal fraction (0.1234567890 is a probability),
# starting with a day and month (a limit such as 1000000000.0 in the OpenAPI schema is not).
CPR_SHAPED = re.compile(r"(?<![.\w])(?:0[1-9]|[12]\d|3[01]|6[1-9]|[78]\d|9[01])(?:0[1-9]|1[0-2])"
                        r"\d{2}[-\s]?\d{4}(?!\w)")


def _overblik() -> str:
    return str(Path(sys.executable).parent / "overblik")


@pytest.fixture(scope="module")
def server(served: Served, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[str, Path, Served]]:
    """``overblik serve`` on a free port with its own audit store; yields (url, log, served)."""
    folder = tmp_path_factory.mktemp("e2e")
    store = f"sqlite:///{folder / 'serving.db'}"
    # The session's keys live in the session's store.
    from overblik.serving import ROLES, KeyStore

    keys = KeyStore(open_database(store))
    tokens = {role: keys.create(role, f"e2e {role}")[1] for role in ROLES}
    mine = Served(**{**served.__dict__, "store_url": store, "tokens": tokens})
    port = free_port()
    log = folder / "server.log"
    argv = [_overblik(), "serve", "--model", served.model_name, "--tracking-uri",
            served.tracking_uri, "--profiles", str(served.profiles), "--store", store,
            "--demo-key", "--port", str(port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                env=subprocess_env())
        url = f"http://127.0.0.1:{port}"
        try:
            print(f"overblik serve ready after {wait_ready(proc, f'{url}/readyz'):.1f} s")
            yield url, log, mine
        finally:
            stop(proc)


def _session(url: str, served: Served) -> list[httpx.Response]:
    """Every endpoint, good and bad requests, both languages, feedback on a score."""
    cw, en = bearer(served, CASEWORKER), {"Accept-Language": "en"}
    out: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        score = c.post("/score", json={"cpr": served.cprs[0]}, headers=cw)
        out.append(score)
        out.append(c.post("/score", json={"cpr": served.cprs[1].replace("-", ""), "top": 3},
                          headers={**cw, **en}))
        out.append(c.post("/score/batch", json={"items": [{"cpr": p} for p in served.cprs[2:8]]
                                                + [{"cpr": served.outsider}]}, headers=cw))
        explain = c.post("/explain", json={"cpr": served.cprs[8]}, headers={**cw, **en})
        out.append(explain)
        features = {x["feature"]: x["value"] for x in explain.json()["contributions"]}
        out.append(c.post("/explain", json={"features": features},
                          headers=bearer(served, "analyst")))
        out.append(c.post("/explain", json={"cpr": served.cprs[9]},
                          headers=bearer(served, "analyst")))  # 403: analysts send payloads
        out.append(c.post("/feedback", json={"request_id": score.json()["request_id"],
                                             "decision": "overridden", "action": "none",
                                             "reason": "Familien har allerede et forløb"},
                          headers=cw))
        out.append(c.post("/score", json={"cpr": served.outsider}, headers=cw))  # 404
        out.append(c.post("/score", json={"cpr": "320190-1234"}, headers=cw))  # bad date
        out.append(c.post("/score", json={"features": {"0101901234": 1.0}}, headers=cw))
        out.append(c.post("/feedback", json={"request_id": "a" * 32, "decision": "overridden",
                                             "reason": "borger 010190-1234"}, headers=cw))
        out.append(c.post("/score", json={"cpr": served.cprs[10]}))  # no key
        out.append(c.get("/citizens/010190-1234", headers=cw))  # unknown path: 404
        out.append(c.get("/metadata", params={"cpr": "0101901234"},
                         headers=bearer(served, "auditor")))  # the query is ignored
        out.append(c.get("/audit/verify", headers=bearer(served, "auditor")))
        out.append(c.get("/metrics", headers=bearer(served, "admin")))
        out.append(c.get("/metrics", headers=bearer(served, "analyst")))
        # Programme effects by CPR number, by payload, and an allocation (analysts).
        out.append(c.post("/recommend", json={"cpr": served.cprs[9]}, headers={**cw, **en}))
        analyst = bearer(served, "analyst")
        out.append(c.post("/recommend", json={"features": features}, headers=analyst))
        out.append(c.post("/recommend", json={"cpr": served.cprs[9]}, headers=analyst))  # 403
        out.append(c.post("/allocate", json={"citizens": [
            {"ref": "sag-1", "features": features}, {"ref": "sag-2", "features": features}],
            "places": {"family_support": 1}}, headers=analyst))
        out.append(c.get("/docs.json"))
    return out


def test_full_session_through_bentoml_serve(server: tuple[str, Path, Served]) -> None:
    url, log, served = server
    responses = _session(url, served)
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 200, 200, 200, 403, 200, 404, 422, 422, 422, 401, 404, 200,
                        200, 200, 403, 200, 200, 403, 200, 200], [r.text[:200] for r in responses]
    score, english = responses[0].json(), responses[1].json()
    assert score["model"]["version"] == served.version and score["language"] == "da"
    assert english["language"] == "en" and len(english["reasons"]) == 3
    assert responses[2].json()["scored"] == 6 and responses[2].json()["not_found"] == 1
    assert responses[3].json()["probability"] == responses[4].json()["probability"]
    metrics = responses[15].text  # Prometheus, admin only: routes, never raw paths
    assert 'overblik_requests_total{endpoint="/score",status="200"} 2.0' in metrics
    assert 'endpoint="(unknown)",status="404"' in metrics and "/citizens" not in metrics
    assert all(r.headers.get("x-request-id") for r in responses[:-1])  # audited ones
    recommended, by_payload = responses[17].json(), responses[18].json()
    assert recommended["language"] == "en" and recommended["programmes"]
    assert by_payload["source"] == "payload" and by_payload["programmes"]
    allocation = responses[20].json()["totals"]
    assert allocation["places_used"] == {"family_support": allocation["assigned"]}
    assert allocation["assigned"] <= 1

    audit = AuditLog(open_database(served.store_url))
    verified = audit.verify()
    assert verified.intact and verified.entries == len(responses) - 1  # /docs.json is public
    entries = [s.entry for s in audit.entries()]
    assert [e.status for e in entries] == statuses[:-1]
    assert entries[6].kind == "feedback" and entries[6].pseudonyms == entries[0].pseudonyms
    assert all(e.key_id for e in entries if e.status != 401)

    # The privacy scan: no CPR number in any response, the server's output or the store.
    sent = {c for c in served.cprs[:11]} | {served.outsider, "010190-1234", "320190-1234"}
    forms = {p for c in sent for p in (c, c.replace("-", ""))}
    texts = {f"response {i} ({r.request.method} {r.url.path})": r.text
             for i, r in enumerate(responses)}
    texts["service log"] = log.read_text(encoding="utf-8", errors="replace")
    store_dir = Path(served.store_url.removeprefix("sqlite:///")).parent
    for path in store_dir.iterdir():
        if path.name.startswith("serving.db"):  # the database, its WAL and shared memory
            texts[f"audit store {path.name}"] = path.read_bytes().decode("latin-1")
    texts["audit entries"] = "\n".join(repr(e) for e in entries)
    assert "serving overblik-child-placement version" in texts["service log"]
    assert "Downloading artifacts" not in texts["service log"]  # MLflow's bars: noise
    for where, text in texts.items():
        assert not any(f in text for f in forms), where
        assert CPR_SHAPED.search(text) is None, (where, CPR_SHAPED.search(text))


def test_worker_that_cannot_start_stops_the_server(served: Served, tmp_path: Path) -> None:
    """`bentoml serve` with a version that is not there: the worker says why and the whole
    server exits (no restart loop, never ready)."""
    port = free_port()
    env = subprocess_env(**served.settings(alias="nobody",
                                           store_url=f"sqlite:///{tmp_path / 's.db'}").to_env(),
                         **{STOP_ON_FAILURE_ENV: "1"})
    argv = [sys.executable, "-m", "bentoml", "serve",
            "overblik.serving._service:ScoringService", "--host", "127.0.0.1", "--port",
            str(port)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        output, _ = proc.communicate(timeout=240)
    finally:
        stop(proc)
    text = output.decode(errors="replace")
    assert "overblik scoring service cannot start" in text
    assert "no version has the alias 'nobody'" in text
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
