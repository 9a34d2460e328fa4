"""API keys: shown once, stored only as hashes, with roles; create/list/revoke from the CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.features._errors import InputError
from overblik.serving import ROLES, ApiKey, KeyStore, open_database
from tests.services import fresh_postgres_database
from tests.serving._setup import assert_refused_on_store

runner = CliRunner()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def keys(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "sqlite":
        yield KeyStore(open_database(f"sqlite:///{tmp_path / 'keys.db'}"), cache_seconds=0)
    else:
        with fresh_postgres_database() as url:
            yield KeyStore(open_database(url), cache_seconds=0)


def test_create_authenticate_revoke(keys: KeyStore) -> None:
    made = {role: keys.create(role, f"system {role}") for role in ROLES}
    for role, (record, token) in made.items():
        found = keys.authenticate(token)
        assert found is not None and found.role == role and found.key_id == record.key_id
    record, token = made["analyst"]
    assert keys.authenticate(token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert keys.authenticate("ovk_" + record.key_id + "_" + "0" * 48) is None
    assert keys.authenticate("Bearer nonsense") is None
    revoked = keys.revoke(record.key_id)
    assert revoked.revoked_at is not None and not revoked.active
    found = keys.authenticate(token)  # still found, so its use is attributed; not active
    assert found is not None and found.key_id == record.key_id and not found.active
    assert keys.revoke(record.key_id).revoked_at == revoked.revoked_at  # idempotent
    listed = {k.key_id: k for k in keys.list()}
    assert len(listed) == len(ROLES) and not listed[record.key_id].active


def test_only_hashes_are_stored(tmp_path: Path) -> None:
    path = tmp_path / "keys.db"
    store = KeyStore(open_database(f"sqlite:///{path}"))
    _, token = store.create("admin", "ops")
    secret = token.rsplit("_", 1)[1]
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw and token.encode() not in raw


def test_cache_hides_revocation_only_for_its_time(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'keys.db'}")
    cached = KeyStore(db, cache_seconds=3600)
    record, token = cached.create("auditor", "revisor")
    assert _active(cached.authenticate(token))
    KeyStore(db, cache_seconds=0).revoke(record.key_id)  # another process revokes
    assert _active(cached.authenticate(token))  # still cached here
    cached.revoke(record.key_id)  # revoking through this store clears its cache
    assert not _active(cached.authenticate(token))


def _active(key: ApiKey | None) -> bool:
    return key is not None and key.active


@pytest.mark.parametrize(("role", "name"), [("boss", "x"), ("admin", ""), ("admin", "x" * 101),
                                            ("admin", "borger 010190-1234"),
                                            ("admin", "   "), ("admin", "borger 01.01.90-1234")])
def test_bad_role_or_name_is_refused(keys: KeyStore, role: str, name: str) -> None:
    with pytest.raises(InputError):
        keys.create(role, name)


def test_cli_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serving.db'}"
    made = runner.invoke(app, ["keys", "create", "--role", "caseworker-system", "--name",
                               "Nexus familieafdeling", "--store", url])
    assert made.exit_code == 0, made.output
    token = re.search(r"ovk_[0-9a-f]{8}_[0-9a-f]{48}", made.output)
    assert token is not None
    key_id = token.group(0).split("_")[1]
    listed = runner.invoke(app, ["keys", "list", "--store", url])
    assert listed.exit_code == 0 and key_id in listed.output
    assert token.group(0) not in listed.output
    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--store", url])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    unknown = runner.invoke(app, ["keys", "revoke", "deadbeef", "--store", url])
    assert unknown.exit_code == 2 and "keys list" in unknown.output
    bad = runner.invoke(app, ["keys", "create", "--role", "boss", "--name", "x", "--store", url])
    assert bad.exit_code == 2 and "caseworker-system" in bad.output


def test_list_and_revoke_on_a_store_without_keys_create_nothing(tmp_path: Path) -> None:
    """Another database (here: one holding only an audit log) is not a store of no keys."""
    from overblik.serving import AuditLog

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditLog(open_database(url))
    assert_refused_on_store("keys", [["list"], ["revoke", "1a2b3c4d"]], url,
                            "holds no API keys (no table api_keys): give the --store the "
                            "service writes to")
    db = open_database(url)
    with db.transaction() as cur:
        assert not db.table_exists(cur, "api_keys")
