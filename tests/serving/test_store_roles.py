"""The service's store on PostgreSQL with a production role that may read and write rows but
not create tables: missing tables give one message with the statements the database owner
runs once; after them the role keeps keys and the audit log, and cannot edit the log."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
import pytest
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.features._errors import InputError
from overblik.serving import AuditEntry, AuditLog, KeyStore, open_database
from tests.services import fresh_postgres_database, postgres_login_role

pytestmark = pytest.mark.postgres
runner = CliRunner()


@contextmanager
def _owner_and_role() -> Iterator[tuple[str, str, str]]:
    """A fresh database (its owner's URL), and a URL of a role allowed to connect only."""
    with postgres_login_role() as role, fresh_postgres_database() as owner:
        yield owner, role, owner.replace("//postgres@", f"//{role}@")


def _run_as_owner(owner: str, message: str) -> None:
    """Run the statements an error message tells the database owner to run."""
    statements = message.split("run once:\n", 1)[1]
    with psycopg.connect(owner.replace("+psycopg", ""), autocommit=True) as conn:
        for statement in statements.split(";"):
            if statement.strip():
                conn.execute(statement)


def _refusal(open_store: Callable[[], object]) -> str:
    with pytest.raises(InputError) as failed:
        open_store()
    return str(failed.value)


def test_missing_tables_name_the_statements_and_the_role_then_work() -> None:
    with _owner_and_role() as (owner, role, url):
        keys_message = _refusal(lambda: KeyStore(open_database(url)))
        assert keys_message.startswith(f"cannot create api_keys in {url.split('+')[0]}")
        assert (f"role \"{role}\" may not create tables (permission denied for schema public); "
                "have the database owner run once:\n  create table api_keys (") in keys_message
        assert f"  grant select, insert, update on api_keys to \"{role}\";" in keys_message
        audit_message = _refusal(lambda: AuditLog(open_database(url)))
        assert "cannot create audit_log, audit_head in" in audit_message
        assert f"  grant select, insert on audit_log to \"{role}\";" in audit_message
        assert f"  grant select, insert, update on audit_head to \"{role}\";" in audit_message
        cli = runner.invoke(app, ["keys", "create", "--role", "analyst", "--name", "Team",
                                  "--store", url])
        assert cli.exit_code == 2 and "Traceback" not in cli.output
        assert "have the database owner run once" in " ".join(cli.output.split())

        _run_as_owner(owner, keys_message)
        _run_as_owner(owner, audit_message)
        keys = KeyStore(open_database(url), cache_seconds=0)
        record, token = keys.create("analyst", "Team")
        assert keys.authenticate(token) == record
        assert not keys.revoke(record.key_id).active
        log = AuditLog(open_database(url))
        for i in range(3):
            log.append(AuditEntry(kind="request", request_id=f"{i:032x}", endpoint="/score",
                                  method="POST", status=200, latency_ms=1.0))
        assert log.verify().intact and log.verify().entries == 3
        # The rights printed leave the log append-only for the service's role.
        for statement in ("update audit_log set status = 500 where seq = 2",
                          "delete from audit_log where seq = 3"):
            with (pytest.raises(psycopg.errors.InsufficientPrivilege),
                  log.db.transaction(write=True) as cur):
                cur.execute(statement)
        assert log.verify().intact


def test_a_role_needs_no_create_right_once_the_tables_exist() -> None:
    with _owner_and_role() as (owner, role, url):
        KeyStore(open_database(owner))  # the owner's first start creates the tables
        AuditLog(open_database(owner))
        with psycopg.connect(owner.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'grant select, insert, update on api_keys, audit_head to "{role}"')
            conn.execute(f'grant select, insert on audit_log to "{role}"')
        _, token = KeyStore(open_database(url)).create("caseworker-system", "Fagsystem")
        assert KeyStore(open_database(url)).authenticate(token) is not None
        log = AuditLog(open_database(url))
        log.append(AuditEntry(kind="request", request_id="0" * 32, endpoint="/score",
                              method="POST", status=200, latency_ms=1.0))
        assert log.verify().entries == 1


def test_an_auditor_who_may_only_read_verifies_the_log() -> None:
    with _owner_and_role() as (owner, role, url):
        log = AuditLog(open_database(owner))
        log.append(AuditEntry(kind="request", request_id="0" * 32, endpoint="/score",
                              method="POST", status=200, latency_ms=1.0))
        with psycopg.connect(owner.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'grant select on audit_log, audit_head to "{role}"')
        result = runner.invoke(app, ["auditlog", "verify", "--store", url])
        assert result.exit_code == 0, result.output
        assert "audit log intact: 1 entries" in result.output
