"""`overblik auditlog export`: a citizen's requests and the decisions on them (joined through
the request id, batch items by index), date, endpoint and key filters, CSV and JSON lines, a
broken chain exported with a warning and exit 1, bad input exit 2, never a CPR number."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.features import demo_key
from overblik.features._pseudonym import pseudonymise_one
from overblik.serving import AuditEntry, AuditLog, open_database
from overblik.serving._audit_export import EXPORT_COLUMNS, OTHER_CITIZEN
from overblik.serving._cpr import CPR_IN_TEXT
from tests.services import fresh_postgres_database
from tests.serving._setup import Served, bearer

if TYPE_CHECKING:
    from starlette.testclient import TestClient

runner = CliRunner()
CASEWORKER = "caseworker-system"
# Fixed-format ids: hex that may hold digit runs, checked by shape instead of the CPR scan.
# Columns whose shape is checked instead of scanned as free text: in a time such as
# "...T15:17:12.837301+00:00" the CPR scan reads "17:12.83" as a birth date and "7301" as
# the serial, at about one second in ten (the test failed by the clock).
_ID_COLUMNS = {"request_id": re.compile(r"[0-9a-f]{32}"),
               "decides": re.compile(r"[0-9a-f]{32}(-[0-9]+)?"),
               "hash": re.compile(r"[0-9a-f]{64}"),
               "at": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")}


def _export(*args: str, input: str | None = None) -> Result:
    return runner.invoke(app, ["auditlog", "export", *args], input=input)


def _flat(text: str) -> str:
    """Messages as one line: the console wraps them at its width."""
    return " ".join(text.split())


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _assert_no_cpr(text: str, rows: list[dict[str, Any]], cprs: list[str]) -> None:
    """No CPR number given, in either form, and nothing CPR-shaped in any free field."""
    for cpr in cprs:
        for form in (cpr, cpr.replace("-", "")):
            assert form not in text
    for row in rows:
        for column, value in row.items():
            if column in _ID_COLUMNS:
                assert value in (None, "") or _ID_COLUMNS[column].fullmatch(value), (column, value)
                continue
            cell = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            assert CPR_IN_TEXT.search(cell) is None, (column, cell)


# --- through the real service -------------------------------------------------------------

class Session:
    """Requests sent for this module: two citizens, a batch naming both, three decisions."""

    def __init__(self, client: TestClient, served: Served) -> None:
        assert len(served.cprs) > 200  # the last ones: no other test scores them
        self.a, self.b = served.cprs[-1], served.cprs[-2]
        cw = bearer(served, CASEWORKER)
        self.cw_key = served.tokens[CASEWORKER].split("_")[1]
        self.analyst_key = served.tokens["analyst"].split("_")[1]

        def post(path: str, body: dict[str, Any]) -> str:
            answer = client.post(path, json=body, headers=cw)
            assert answer.status_code == 200, answer.text
            return str(answer.json()["request_id"])

        self.score_a = post("/score", {"cpr": self.a})
        self.score_a2 = post("/score", {"cpr": self.a.replace("-", ""), "top": 1})
        self.score_b = post("/score", {"cpr": self.b})
        self.batch = post("/score/batch", {"items": [{"cpr": self.b}, {"cpr": self.a}]})
        self.decide_a = post("/feedback", {"request_id": self.score_a, "decision": "overridden",
                                           "action": "family_support",
                                           "reason": "Familien har allerede et forløb"})
        self.decide_b_item = post("/feedback", {"request_id": f"{self.batch}-0",
                                                "decision": "followed"})
        self.decide_a_item = post("/feedback", {"request_id": f"{self.batch}-1",
                                                "decision": "followed"})
        self.decide_b = post("/feedback", {"request_id": self.score_b, "decision": "followed"})
        metadata = client.get("/metadata", headers=bearer(served, "analyst"))
        assert metadata.status_code == 200
        self.analyst_metadata = metadata.headers["x-request-id"]
        self.store = served.store_url


@pytest.fixture(scope="module")
def session(client: TestClient, served: Served) -> Session:
    return Session(client, served)


def test_cpr_gives_the_citizens_requests_and_the_decisions_on_them(
        session: Session, tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    result = _export("--store", session.store, "--cpr", session.a, "--demo-key", "--out",
                     str(out))
    assert result.exit_code == 0, result.output
    rows = _jsonl(out.read_text(encoding="utf-8"))
    assert [r["request_id"] for r in rows] == [
        session.score_a, session.score_a2, session.batch, session.decide_a,
        session.decide_a_item]  # not the decision on the batch's other citizen
    assert [r["seq"] for r in rows] == sorted(r["seq"] for r in rows)
    decisions = {r["request_id"]: r for r in rows if r["kind"] == "feedback"}
    assert decisions[session.decide_a]["decides"] == session.score_a
    assert decisions[session.decide_a_item]["decides"] == f"{session.batch}-1"
    assert decisions[session.decide_a]["summary"]["decision"] == "overridden"
    assert all(r["decides"] is None for r in rows if r["kind"] == "request")
    pseudonym = pseudonymise_one(session.a, demo_key())
    assert all(pseudonym in r["pseudonyms"] for r in rows)
    assert rows[0]["key_id"] == session.cw_key and rows[0]["role"] == CASEWORKER
    assert rows[0]["model"] and rows[0]["model_version"]
    assert set(rows[0]) == set(EXPORT_COLUMNS)
    assert "5 entries of" in result.output and pseudonym in result.output
    _assert_no_cpr(out.read_text(encoding="utf-8") + result.output, rows,
                   [session.a, session.b])


def test_cpr_from_standard_input_and_stdout(session: Session) -> None:
    """`--cpr -` keeps the number out of the shell history; rows go to standard output."""
    result = _export("--store", session.store, "--cpr", "-", "--demo-key",
                     input=session.b + "\n")
    assert result.exit_code == 0, result.output
    rows = _jsonl(result.stdout)
    assert [r["request_id"] for r in rows] == [
        session.score_b, session.batch, session.decide_b_item, session.decide_b]
    assert "standard output" in result.stderr
    _assert_no_cpr(result.output, rows, [session.a, session.b])


def test_csv_and_jsonl_hold_the_same_rows(session: Session, tmp_path: Path) -> None:
    common = ["--store", session.store, "--cpr", session.a, "--demo-key"]
    as_csv = _export(*common, "--format", "csv", "--out", str(tmp_path / "a.csv"))
    as_jsonl = _export(*common, "--format", "jsonl", "--out", str(tmp_path / "a.jsonl"))
    assert as_csv.exit_code == 0 and as_jsonl.exit_code == 0, as_csv.output + as_jsonl.output
    with (tmp_path / "a.csv").open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == EXPORT_COLUMNS
        from_csv = list(reader)
    from_jsonl = _jsonl((tmp_path / "a.jsonl").read_text(encoding="utf-8"))
    assert len(from_csv) == len(from_jsonl) == 5
    for c, j in zip(from_csv, from_jsonl, strict=True):
        assert c["pseudonyms"].split(";") == j["pseudonyms"]
        assert json.loads(c["summary"]) == j["summary"]
        for column in set(EXPORT_COLUMNS) - {"pseudonyms", "summary"}:
            assert c[column] == ("" if j[column] is None else str(j[column])), column
    _assert_no_cpr((tmp_path / "a.csv").read_text(encoding="utf-8"), from_csv,
                   [session.a, session.b])


def test_endpoint_filter_repeated_or_comma_separated(session: Session) -> None:
    base = ["--store", session.store, "--cpr", session.a, "--demo-key"]
    decisions = _export(*base, "--endpoint", "/feedback")
    assert decisions.exit_code == 0, decisions.output
    assert [r["request_id"] for r in _jsonl(decisions.stdout)] == [
        session.decide_a, session.decide_a_item]
    expected = [session.score_a, session.score_a2, session.decide_a, session.decide_a_item]
    for args in (["--endpoint", "score,feedback"],
                 ["--endpoint", "/score", "--endpoint", "/feedback"]):
        result = _export(*base, *args)
        assert result.exit_code == 0, result.output
        assert [r["request_id"] for r in _jsonl(result.stdout)] == expected
    whole = _export("--store", session.store, "--endpoint", "/score/batch")
    rows = _jsonl(whole.stdout)
    assert rows and {r["endpoint"] for r in rows} == {"/score/batch"}
    assert session.batch in {r["request_id"] for r in rows}


def test_key_id_and_request_id_filters(session: Session) -> None:
    analyst = _export("--store", session.store, "--key-id", session.analyst_key)
    assert analyst.exit_code == 0, analyst.output
    rows = _jsonl(analyst.stdout)
    assert {r["key_id"] for r in rows} == {session.analyst_key}
    assert session.analyst_metadata in {r["request_id"] for r in rows}
    assert session.score_a not in {r["request_id"] for r in rows}
    assert f"key {session.analyst_key}" in analyst.stderr
    single = _export("--store", session.store, "--request-id", session.score_a)
    assert [r["request_id"] for r in _jsonl(single.stdout)] == [session.score_a,
                                                                session.decide_a]
    batch = _export("--store", session.store, "--request-id", session.batch)
    assert [r["request_id"] for r in _jsonl(batch.stdout)] == [
        session.batch, session.decide_b_item, session.decide_a_item]
    item = _export("--store", session.store, "--request-id", f"{session.batch}-1")
    assert [r["request_id"] for r in _jsonl(item.stdout)] == [session.batch,
                                                              session.decide_a_item]
    both = _export("--store", session.store, "--request-id", session.score_a, "--key-id",
                   session.analyst_key)
    assert both.exit_code == 0 and _jsonl(both.stdout) == []


def test_dates_on_the_service_log(session: Session) -> None:
    rows = _jsonl(_export("--store", session.store, "--cpr", session.a, "--demo-key").stdout)
    day = rows[0]["at"][:10]
    same = _export("--store", session.store, "--cpr", session.a, "--demo-key", "--since", day,
                   "--until", rows[-1]["at"][:10])
    assert len(_jsonl(same.stdout)) == 5
    before = _export("--store", session.store, "--cpr", session.a, "--demo-key", "--until",
                     "2020-01-01")
    assert before.exit_code == 0 and _jsonl(before.stdout) == []
    assert "no entry is about this citizen" in _flat(before.stderr)


def test_a_tampered_log_is_exported_whole_with_a_warning(session: Session,
                                                         tmp_path: Path) -> None:
    """Edit one row of a copy of the service's store with sqlite3: everything is exported,
    the warning names the entry, exit 1."""
    source = sqlite3.connect(session.store.removeprefix("sqlite:///"))
    copy = tmp_path / "copy.db"
    target = sqlite3.connect(copy)
    source.backup(target)  # consistent with the WAL, unlike copying the file
    source.close()
    (seq,) = target.execute("select seq from audit_log where request_id = ?",
                            (session.score_b,)).fetchone()
    (total,) = target.execute("select count(*) from audit_log").fetchone()
    target.execute("update audit_log set summary = '{\"band\":\"low\"}' where seq = ?", (seq,))
    target.commit()
    target.close()
    out = tmp_path / "all.csv"
    result = _export("--store", f"sqlite:///{copy}", "--format", "csv", "--out", str(out))
    assert result.exit_code == 1, result.output
    assert "broken" in result.stderr and f"at entry {seq}:" in _flat(result.stderr)
    assert "Traceback" not in result.output
    with out.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == total and f"{total:,} entries of {total:,}" in result.stderr
    edited = next(r for r in rows if r["request_id"] == session.score_b)
    assert json.loads(edited["summary"]) == {"band": "low"}  # as stored: nothing hidden
    intact = _export("--store", session.store, "--request-id", session.score_b)
    assert intact.exit_code == 0


# --- the join and the dates on a log written directly ------------------------------------

P_A = pseudonymise_one("0101901234", demo_key())
P_B = pseudonymise_one("0202902345", demo_key())


def _entry(request_id: str, at: str, **changes: Any) -> AuditEntry:
    base: dict[str, Any] = {
        "kind": "request", "request_id": request_id, "endpoint": "/score", "method": "POST",
        "status": 200, "latency_ms": 2.5, "key_id": "1a2b3c4d", "role": CASEWORKER,
        "model": "overblik-child-placement", "model_version": "3", "pseudonyms": (P_A,),
        "summary": {"probability": 0.2, "band": "low", "source": "profile_store"}, "at": at}
    return AuditEntry(**{**base, **changes})


def _decision(request_id: str, on: str, at: str, pseudonyms: tuple[str, ...] = ()
              ) -> AuditEntry:
    # No pseudonym on purpose: the join must go through the request id.
    return _entry(request_id, at, kind="feedback", endpoint="/feedback", pseudonyms=pseudonyms,
                  summary={"for_request": on, "decision": "followed", "action": None,
                           "reason": None, "scored_with": "overblik-child-placement 3"})


def _rid(n: int) -> str:
    return f"{n:032x}"


def _fill(url: str) -> AuditLog:
    """A's score on Jan 1, a batch [B, A, payload] on Jan 2, decisions without pseudonyms on
    Jan 3 (the last microsecond) and Jan 4 (the first), another key's score of B on Jan 4."""
    log = AuditLog(open_database(url))
    for entry in (
        _entry(_rid(1), "2025-01-01T09:00:00.000000+00:00"),
        _entry(_rid(2), "2025-01-02T09:00:00.000000+00:00", endpoint="/score/batch",
               pseudonyms=(P_B, P_A, ""), summary={"n": 3, "scored": 3, "not_found": 0,
                                                   "not_found_items": [],
                                                   "items": [[0.41, "high"], [0.02, "low"],
                                                             [0.09, "medium"]]}),
        _decision(_rid(3), _rid(1), "2025-01-03T23:59:59.999999+00:00"),
        _decision(_rid(4), f"{_rid(2)}-0", "2025-01-04T00:00:00.000000+00:00"),
        _decision(_rid(5), f"{_rid(2)}-1", "2025-01-04T00:00:00.000001+00:00"),
        _decision(_rid(6), f"{_rid(2)}-2", "2025-01-04T08:00:00.000000+00:00"),
        _entry(_rid(7), "2025-01-04T09:00:00.000000+00:00", key_id="99999999",
               pseudonyms=(P_B,)),
        _decision(_rid(8), _rid(7), "2025-01-05T09:00:00.000000+00:00", pseudonyms=(P_B,)),
    ):
        log.append(entry)
    return log


def _ids(result: Result) -> list[int]:
    assert result.exit_code == 0, result.output
    return [int(r["request_id"], 16) for r in _jsonl(result.stdout)]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def written(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
        _fill(url)
        yield url
    else:
        with fresh_postgres_database() as url:
            _fill(url)
            yield url


def test_decisions_join_their_request_by_id_and_batch_item(written: str) -> None:
    a = ["--store", written, "--cpr", "010190-1234", "--demo-key"]
    assert _ids(_export(*a)) == [1, 2, 3, 5]  # not 4 (B's item) nor 6 (a payload item)
    assert _ids(_export("--store", written, "--cpr", "0202902345", "--demo-key")) == [2, 4, 7, 8]
    # A decision inside the period joins a request before it.
    assert _ids(_export(*a, "--since", "2025-01-03")) == [3, 5]
    assert _ids(_export(*a, "--since", "2025-01-04", "--until", "2025-01-04")) == [5]


def test_a_citizens_export_names_no_other_citizen(written: str) -> None:
    # The batch [B, A, payload] is in A's export: B's pseudonym is not (it is B's personal
    # data), positions are kept so the items still line up; the full export keeps it.
    rows = {int(r["request_id"], 16): r for r in _jsonl(_export(
        "--store", written, "--cpr", "010190-1234", "--demo-key").stdout)}
    assert rows[2]["pseudonyms"] == [OTHER_CITIZEN, P_A, ""]
    assert all(P_B not in json.dumps(r) for r in rows.values())
    # Nor the others' scores: only A's item keeps its probability and band.
    assert rows[2]["summary"]["items"] == [OTHER_CITIZEN, [0.02, "low"], OTHER_CITIZEN]
    full = {int(r["request_id"], 16): r for r in _jsonl(_export("--store", written).stdout)}
    assert full[2]["pseudonyms"] == [P_B, P_A, ""]
    assert full[2]["summary"]["items"] == [[0.41, "high"], [0.02, "low"], [0.09, "medium"]]


def test_since_until_are_inclusive_utc_days(written: str) -> None:
    store = ["--store", written]
    assert _ids(_export(*store)) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert _ids(_export(*store, "--since", "2025-01-03", "--until", "2025-01-03")) == [3]
    assert _ids(_export(*store, "--until", "2025-01-02")) == [1, 2]
    assert _ids(_export(*store, "--since", "2025-01-04")) == [4, 5, 6, 7, 8]
    assert _ids(_export(*store, "--since", "2025-01-06")) == []
    assert _ids(_export(*store, "--key-id", "99999999")) == [7]
    assert _ids(_export(*store, "--key-id", "1a2b3c4d", "--since", "2025-01-04",
                        "--endpoint", "/feedback")) == [4, 5, 6, 8]


def test_export_streams_in_batches(tmp_path: Path) -> None:
    from overblik.serving import ExportFilter, export_audit_log

    log = _fill(f"sqlite:///{tmp_path / 'audit.db'}")
    stream = io.StringIO()
    result = export_audit_log(log, ExportFilter(pseudonym=P_A), "jsonl", stream=stream, batch=2)
    assert result.written == 4 and result.total == 8 and result.verification.intact
    assert [int(r["request_id"], 16) for r in _jsonl(stream.getvalue())] == [1, 2, 3, 5]


# --- bad input ---------------------------------------------------------------------------

@pytest.fixture
def small_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    _fill(url)
    return url


BAD: dict[str, tuple[list[str], str]] = {
    "not-a-date": (["--since", "2025-02-30"], "is not a date"),
    "date-format": (["--until", "01-02-2025"], "YYYY-MM-DD"),
    "since-after-until": (["--since", "2025-02-01", "--until", "2025-01-31"], "is after"),
    "cpr-without-key": (["--cpr", "010190-1234"], "no pseudonymisation key"),
    "cpr-invalid-date": (["--cpr", "320190-1234", "--demo-key"], "not a valid CPR number"),
    "cpr-shape": (["--cpr", "12345", "--demo-key"], "is not a CPR number"),
    "key-without-cpr": (["--demo-key"], "only go with --cpr"),
    "two-keys": (["--cpr", "010190-1234", "--demo-key", "--key-file", "k"], "not both"),
    "unknown-endpoint": (["--endpoint", "/score,/citizens"], "/feedback"),
    "key-id": (["--key-id", "nobody"], "is not a key id"),
    "request-id": (["--request-id", "123"], "is not a request id"),
    # A CPR number typed into the wrong option was quoted back.
    "cpr-as-request-id": (["--request-id", "010190-1234"], "is not a request id"),
    "cpr-as-key-id": (["--key-id", "0101901234"], "is not a key id"),
    "cpr-as-endpoint": (["--endpoint", "010190-1234"], "is not an endpoint"),
    "format": (["--format", "xml"], "xml"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_message(case: str, small_store: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVERBLIK_PSEUDONYM_KEY", raising=False)
    args, words = BAD[case]
    result = _export("--store", small_store, *args)
    assert result.exit_code == 2, result.output
    assert words in _flat(result.output) and "Traceback" not in result.output
    assert "0101901234" not in result.output and "010190-1234" not in result.output
    assert "320190" not in result.output


def test_unknown_endpoint_lists_the_known_ones(small_store: str) -> None:
    result = _export("--store", small_store, "--endpoint", "citizens")
    assert result.exit_code == 2
    assert "'citizens'" in result.output
    for known in ("/score", "/score/batch", "/feedback", "/recommend", "/allocate"):
        assert known in _flat(result.output)


def test_bad_out_and_store_exit_2_and_write_nothing(small_store: str, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    for out, words in ((folder, "is a folder"), (afile / "x.jsonl", "is a file"),
                       (tmp_path / "missing" / "x.jsonl", "does not exist")):
        result = _export("--store", small_store, "--out", str(out))
        assert result.exit_code == 2, result.output
        assert words in _flat(result.output) and "Traceback" not in result.output
    assert list(folder.iterdir()) == [] and not (tmp_path / "missing").exists()
    # The store itself as --out: refused, the keys and the log kept (it was replaced by the
    # export, and every key and entry was lost).
    store = Path(small_store.removeprefix("sqlite:///"))
    before = store.read_bytes()
    result = _export("--store", small_store, "--out", str(store))
    assert result.exit_code == 2, result.output
    assert "is a database or data file (perhaps the store itself)" in _flat(result.output)
    assert store.read_bytes() == before
    assert _export("--store", small_store).exit_code == 0
    missing = tmp_path / "typo.db"
    result = _export("--store", f"sqlite:///{missing}")
    assert result.exit_code == 2 and "no such file" in result.output and not missing.exists()


def test_a_failed_export_leaves_the_old_file(small_store: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "audit.jsonl"
    out.write_text("previous export\n")

    def broken(*_args: object, **_kwargs: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("overblik.serving._audit_export.write_rows", broken)
    result = _export("--store", small_store, "--out", str(out))
    assert result.exit_code == 2 and "No space left" in _flat(result.output)
    assert out.read_text() == "previous export\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
