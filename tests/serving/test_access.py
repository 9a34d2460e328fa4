"""Access control: every endpoint × every role (and no key, a wrong key, a revoked key)."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from overblik.serving import ROLES, ROUTES, AuditLog, KeyStore, RouteRule, open_database
from tests.serving._setup import Served, bearer

PROTECTED = [r for r in ROUTES if not r.public]
PUBLIC = [r for r in ROUTES if r.public]


def _features(client: TestClient, served: Served) -> dict[str, float | None]:
    answer = client.post("/explain", json={"cpr": served.cprs[0]},
                         headers=bearer(served, "caseworker-system"))
    assert answer.status_code == 200, answer.text
    return {c["feature"]: c["value"] for c in answer.json()["contributions"]}


def _body(rule: RouteRule, client: TestClient, served: Served) -> Any:
    if rule.path == "/score":
        return {"cpr": served.cprs[1]}
    if rule.path == "/score/batch":
        return {"items": [{"cpr": served.cprs[2]}, {"cpr": served.cprs[3]}]}
    if rule.path in ("/explain", "/recommend"):
        return {"features": _features(client, served)}  # analysts may send payloads
    if rule.path == "/allocate":
        return {"citizens": [{"ref": "sag-1", "features": _features(client, served)}]}
    if rule.path == "/feedback":
        scored = client.post("/score", json={"cpr": served.cprs[4]},
                             headers=bearer(served, "caseworker-system"))
        return {"request_id": scored.json()["request_id"], "decision": "followed",
                "action": "family_support"}
    return None


def _call(client: TestClient, rule: RouteRule, headers: dict[str, str], body: Any) -> int:
    if rule.method == "GET":
        return client.get(rule.path, headers=headers).status_code
    return client.post(rule.path, json=body, headers=headers).status_code


@pytest.mark.parametrize("rule", PROTECTED, ids=[r.path for r in PROTECTED])
def test_endpoint_role_matrix(client: TestClient, served: Served, rule: RouteRule) -> None:
    body = _body(rule, client, served)
    assert rule.roles is not None
    for role in ROLES:
        status = _call(client, rule, bearer(served, role), body)
        if role in rule.roles:
            assert status == 200, (rule.path, role, status)
        else:
            assert status == 403, (rule.path, role, status)
    assert _call(client, rule, {}, body) == 401
    assert _call(client, rule, {"Authorization": "Bearer ovk_00000000_" + "0" * 48}, body) == 401
    assert _call(client, rule, {"Authorization": f"Basic {served.tokens['admin']}"}, body) == 401


@pytest.mark.parametrize("rule", PUBLIC, ids=[r.path for r in PUBLIC])
def test_public_routes_need_no_key(client: TestClient, rule: RouteRule) -> None:
    answer = client.get(rule.path, follow_redirects=False)
    assert answer.status_code in (200, 307), (rule.path, answer.status_code)


def test_revoked_key_is_refused(client: TestClient, served: Served) -> None:
    keys = KeyStore(open_database(served.store_url))
    record, token = keys.create("caseworker-system", "short-lived")
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/score", json={"cpr": served.cprs[5]}, headers=headers).status_code == 200
    revoked = keys.revoke(record.key_id)
    log = AuditLog(open_database(served.store_url))
    before = log.head()[0]
    refused = client.post("/score", json={"cpr": served.cprs[5]}, headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.json()["error"].startswith(
        f"this API key ({record.key_id}) was revoked at {revoked.revoked_at}")
    # The leaked key's use shows under its id in the audit log (with no role: none granted).
    [entry] = [e.entry for e in list(log.entries())[before:]]
    assert (entry.status, entry.key_id, entry.role) == (401, record.key_id, None)


def test_analyst_explains_payloads_but_not_citizens(client: TestClient, served: Served) -> None:
    analyst = bearer(served, "analyst")
    log = AuditLog(open_database(served.store_url))
    before = log.head()[0]
    refused = client.post("/explain", json={"cpr": served.cprs[0]}, headers=analyst)
    assert refused.status_code == 403
    assert refused.json()["fields"][0]["field"] == "cpr"
    looked_up = client.post("/explain", json={"cpr": served.cprs[0]},
                            headers=bearer(served, "caseworker-system"))
    assert looked_up.status_code == 200
    # The refused attempt is logged under the citizen's pseudonym, as the lookup is.
    tried, done = [e.entry for e in list(log.entries())[before:]]
    assert (tried.status, tried.role, done.status) == (403, "analyst", 200)
    assert tried.pseudonyms == done.pseudonyms and len(done.pseudonyms) == 1
    allowed = client.post("/explain", json={"features": _features(client, served)},
                          headers=analyst)
    assert allowed.status_code == 200


def test_unknown_paths_and_methods(client: TestClient, served: Served) -> None:
    admin = bearer(served, "admin")
    assert client.get("/admin", headers=admin).status_code == 404
    assert client.get("/admin").status_code == 401
    assert client.get("/score", headers=bearer(served, "caseworker-system")).status_code == 405
    assert client.post("/metadata", headers=admin, json={}).status_code == 405


def test_route_table_covers_every_route_of_the_service() -> None:
    """A route the table does not know answers 404 to everyone; here: the table is complete
    and names nothing the service does not have."""
    from overblik.serving._service import ScoringService, _pages

    table = {r.path for r in ROUTES}
    apis = {m.route for m in ScoringService.apis.values()}
    pages = {getattr(r, "path", "") for r in _pages.routes}
    system = {"/healthz", "/livez", "/readyz"}
    assert apis | pages | system == table
