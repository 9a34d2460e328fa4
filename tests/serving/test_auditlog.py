"""The audit log: a hash chain that names the first edited, deleted or reordered entry, on
SQLite and PostgreSQL, with `overblik auditlog verify` exiting non-zero when broken."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.serving import ApiError, AuditEntry, AuditLog, KeyStore, StoredEntry, open_database
from overblik.serving._auditlog import AuditWriter, DecisionCheck
from tests.services import fresh_postgres_database
from tests.serving._setup import assert_refused_on_store

runner = CliRunner()


def _entry(i: int, **changes: object) -> AuditEntry:
    base: dict[str, object] = {
        "kind": "request", "request_id": f"{i:032x}", "endpoint": "/score", "method": "POST",
        "status": 200, "latency_ms": 1.5 + i, "key_id": "1a2b3c4d", "role": "caseworker-system",
        "model": "overblik-child-placement", "model_version": "3",
        "pseudonyms": ("abcdefghijklmnopabcdefghijklmnop",),
        "summary": {"probability": 0.1 * (i % 10), "band": "lav", "note": "æøå"}}
    return AuditEntry(**{**base, **changes})  # type: ignore[arg-type]


def _filled(url: str, n: int = 10) -> AuditLog:
    log = AuditLog(open_database(url))
    for i in range(1, n + 1):
        log.append(_entry(i))
    return log


def _sql(log: AuditLog, *statements: str) -> None:
    with log.db.transaction(write=True) as cur:
        for stmt in statements:
            cur.execute(stmt)


TAMPER: dict[str, tuple[tuple[str, ...], int, str]] = {
    "edited": (("update audit_log set summary = '{\"probability\":0.99}' where seq = 5",),
               5, "entry 5 was edited"),
    "deleted": (("delete from audit_log where seq = 5",), 6, "entry 5 was deleted"),
    "reordered": (("update audit_log set seq = -1 where seq = 4",
                   "update audit_log set seq = 4 where seq = 5",
                   "update audit_log set seq = 5 where seq = -1"), 4, "entry 4 was moved"),
    "truncated": (("delete from audit_log where seq = 10",), 10,
                   "entries 10-10 were deleted from the end"),
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        with fresh_postgres_database() as url:
            yield url


def test_intact_chain_verifies_and_round_trips(store_url: str) -> None:
    log = _filled(store_url)
    result = log.verify()
    assert result.intact and result.entries == 10 and result.problem is None
    stored = list(log.entries())
    assert [s.seq for s in stored] == list(range(1, 11))
    assert stored[3].entry == _entry(4, at=stored[3].entry.at)
    assert stored[4].prev_hash == stored[3].hash
    assert result.head == stored[-1].hash
    assert log.find(f"{7:032x}") is not None and log.find("f" * 32) is None


def test_decisions_on_a_request_are_found_by_the_id_they_name(store_url: str) -> None:
    """Only accepted decisions naming exactly that id (not a batch item of it, not a
    refused one), after the given position, in log order; on both stores."""
    log = _filled(store_url, n=3)
    target, item = f"{1:032x}", f"{2:032x}-1"

    def decision(i: int, on: str, status: int = 200) -> AuditEntry:
        return _entry(i, kind="feedback", endpoint="/feedback", status=status,
                      summary={"for_request": on, "decision": "followed"})

    for i, on, status in ((10, target, 200), (11, item, 200), (12, f"{target}-1", 200),
                          (13, target, 422), (14, target, 200), (15, f"{2:032x}", 200)):
        log.append(decision(i, on, status))
    assert [d.entry.request_id for d in log.decisions_on(target)] == [f"{10:032x}",
                                                                       f"{14:032x}"]
    assert [d.entry.request_id for d in log.decisions_on(item)] == [f"{11:032x}"]
    assert [d.entry.request_id for d in log.decisions_on(target, after=4)] == [f"{14:032x}"]
    assert log.decisions_on("f" * 32) == []


def test_a_decision_is_checked_again_where_it_is_appended(store_url: str) -> None:
    """Two decisions on one score sent at once (or to two replicas) both passed the
    service's check, each before the other was stored, and the log said both: the check
    runs again in the transaction that appends, so the second is refused and not stored."""
    one, two = _filled(store_url, n=3), AuditLog(open_database(store_url))
    target = f"{2:032x}"

    def decision(i: int, corrects: str | None) -> AuditEntry:
        summary = {"for_request": target, "decision": "followed"}
        return _entry(i, kind="feedback", endpoint="/feedback", summary=summary,
                      check=DecisionCheck(target, after=2, corrects=corrects))

    # Both replicas saw no decision; the first to append wins.
    first = one.append(decision(10, None))
    with pytest.raises(ApiError) as refused:
        two.append(decision(11, None))
    assert refused.value.status == 409 and refused.value.field == "request_id"
    assert f"{10:032x}" in refused.value.message
    # In one group commit: the second entry is checked against the first.
    stored = two.append_many([decision(12, first.entry.request_id),
                              decision(13, first.entry.request_id), _entry(14)])
    assert isinstance(stored[0], StoredEntry) and isinstance(stored[2], StoredEntry)
    assert isinstance(stored[1], ApiError) and stored[1].field == "corrects"
    assert [d.entry.request_id for d in one.decisions_on(target)] == [f"{10:032x}",
                                                                       f"{12:032x}"]
    assert one.find(f"{11:032x}") is None and one.find(f"{13:032x}") is None
    assert one.verify().intact and one.head()[0] == 6
    # The writer hands the refusal to the request that waits for it.
    writer = AuditWriter(one)
    try:
        with pytest.raises(ApiError):
            writer.submit(decision(15, None)).result(timeout=30)
    finally:
        writer.close()


@pytest.mark.parametrize("kind", list(TAMPER))
def test_tampering_is_detected_and_named(store_url: str, kind: str) -> None:
    log = _filled(store_url)
    statements, seq, words = TAMPER[kind]
    _sql(log, *statements)
    result = log.verify()
    assert not result.intact
    assert result.kind == kind and result.seq == seq
    assert result.problem is not None and words in result.problem


def test_concurrent_writers_keep_one_chain(tmp_path: Path) -> None:
    """Two stores on the same file (as two worker processes would have) and a group-commit
    writer, appending from several threads at once."""
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    one, two = AuditLog(open_database(url)), AuditLog(open_database(url))
    writer = AuditWriter(one)
    futures = []
    lock = threading.Lock()

    def work(k: int) -> None:
        for i in range(25):
            if k % 2:
                two.append(_entry(1000 * k + i))
            else:
                future = writer.submit(_entry(1000 * k + i))
                with lock:
                    futures.append(future)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seqs = [f.result(timeout=30).seq for f in futures]
    writer.close()
    assert len(set(seqs)) == 75
    result = one.verify()
    assert result.intact and result.entries == 150


def test_cli_verify_exit_codes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = _filled(url)
    ok = runner.invoke(app, ["auditlog", "verify", "--url", url])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.output and "10 entries" in ok.output
    _sql(log, "delete from audit_log where seq = 3")
    broken = runner.invoke(app, ["auditlog", "verify", "--url", url])
    assert broken.exit_code == 1
    assert "deleted" in broken.output and "entry 3" in broken.output
    assert "Traceback" not in broken.output


def test_cli_verify_bad_url_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["auditlog", "verify", "--url", "mysql://x"])
    assert result.exit_code == 2
    assert "sqlite:///" in result.output


def test_cli_verify_of_a_missing_file_creates_nothing(tmp_path: Path) -> None:
    """A mistyped path must not become a new, empty and 'intact' audit log."""
    missing = tmp_path / "typo_serving.db"
    result = runner.invoke(app, ["auditlog", "verify", "--url", f"sqlite:///{missing}"])
    assert result.exit_code == 2, result.output
    assert "no such file" in result.output and not missing.exists()


def test_reading_commands_on_a_store_without_an_audit_log_create_nothing(
        store_url: str) -> None:
    """Another database (here: one holding only API keys) is not an empty, 'intact' log."""
    KeyStore(open_database(store_url))
    assert_refused_on_store("auditlog", [["verify"], ["export", "--format", "csv"]], store_url,
                            "holds no audit log (no table audit_log, audit_head): give the "
                            "--store the service writes to")
    db = open_database(store_url)
    with db.transaction() as cur:
        assert not db.table_exists(cur, "audit_log") and db.table_exists(cur, "api_keys")


def _each(log: AuditLog, fn: Callable[[int], AuditEntry], n: int) -> None:
    for i in range(n):
        log.append(fn(i))


def test_entries_stream_in_batches(tmp_path: Path) -> None:
    log = AuditLog(open_database(f"sqlite:///{tmp_path / 'a.db'}"))
    _each(log, _entry, 12)
    assert [s.seq for s in log.entries(batch=5)] == list(range(1, 13))
