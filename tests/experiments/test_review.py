"""The ethics board's gate: `overblik review` records decisions, `overblik promote` moves
`champion` only for an approved version whose audit passed or was overridden with a reason;
every review and promotion lands in the append-only record (a table in the registry's
database), in order, and `overblik reviews` lists it. Real MLflow (SQLite)."""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from typer.testing import CliRunner

from overblik.experiments._approval import (
    APPROVAL_DECISION,
    CHAMPION,
    FAIRNESS_PASSED,
    Approval,
    ReviewRecord,
    append_record,
    approval_of,
    read_records,
    reviews_path,
    write_approval,
)
from overblik.experiments._cli import app
from overblik.experiments._review import PromotionRefused, promote, review
from overblik.experiments._review_log import REVIEW_TABLE, ReviewLog, registry_database_url
from overblik.experiments._tracking import without_password
from overblik.features import InputError
from tests.services import fresh_postgres_database, postgres_login_role

runner = CliRunner()


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh data folder, so each test has its own reviews.jsonl (where there is one)."""
    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


@pytest.fixture
def model(uri: str, data: Path) -> Iterator[str]:
    """A registered model with version 1 passing, 2 failing and 3 without an audit tag."""
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient()
    name = f"overblik-test-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    experiment = mlflow.set_experiment(name)
    for passed in ("true", "false", None):
        with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
            mlflow.set_tag("overblik.config_hash", f"hash-{passed}")
        tags = {"overblik.config_hash": f"hash-{passed}"}
        if passed is not None:
            tags[FAIRNESS_PASSED] = passed
        client.create_model_version(name, source=f"{run.info.artifact_uri}/risk_model",
                                    run_id=run.info.run_id, tags=tags)
    yield name


def _records(name: str) -> list[ReviewRecord]:
    """The model's records in the registry's table (each test has its own model)."""
    return ReviewLog(mlflow.get_tracking_uri()).records(name)


def _rows(uri: str, name: str) -> list[tuple[object, ...]]:
    """The table's rows of the model as stored, read with sqlite3 (no overblik)."""
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"select * from {REVIEW_TABLE} where model = ? order by id",
                            (name,)).fetchall()


def _champion(name: str) -> str | None:
    try:
        return str(MlflowClient().get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def _text(output: str) -> str:
    """CLI output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.parametrize("version", ["1", "3", "2"], ids=["passing", "no-audit", "failing"])
def test_promote_refuses_a_version_never_reviewed(model: str, version: str) -> None:
    with pytest.raises(PromotionRefused, match="never been reviewed"):
        promote(model, version)
    assert _champion(model) is None
    (refusal,) = _records(model)
    assert refusal.event == "promotion_refused"
    assert refusal.version == version and refusal.previous_champion is None
    assert refusal.detail is not None and "never been reviewed" in refusal.detail


@pytest.mark.parametrize(("version", "why"), [
    ("2", "missed its fairness thresholds"),
    ("3", "has no fairness audit (no overblik.fairness_passed tag), which counts as a failed"),
])
def test_promote_refuses_failed_or_missing_audit_without_override(model: str, version: str,
                                                                  why: str) -> None:
    review(model, version, decision="approved", by="Etisk råd", reason="looks fine")
    with pytest.raises(PromotionRefused, match="override") as refused:
        promote(model, version)
    assert why in str(refused.value)
    assert _champion(model) is None


def test_promote_accepts_approved_passing_then_overridden_failing(model: str) -> None:
    review(model, "1", decision="approved", by="Etisk råd", reason="meets every threshold")
    first = promote(model, "1")
    assert first.previous_champion is None
    assert _champion(model) == "1"
    review(model, "2", decision="approved", by="Etisk råd", override_fairness=True,
           reason="the FPR gap is within the interval of the current practice; re-audit in 3 "
                  "months")
    second = promote(model, "2")
    assert second.previous_champion == "1"
    assert _champion(model) == "2"
    approval = approval_of(model, "2")
    assert approval is not None and approval.approved and approval.overrides_fairness


def test_promote_reads_the_boards_record_not_the_tags(model: str) -> None:
    """Editable tags opened the gate: a failed audit's tag set to "true" after the board
    approved without an override, or a version copied with its approval tags."""
    client = MlflowClient()
    review(model, "2", decision="approved", by="Etisk råd", reason="looks fine")
    client.set_model_version_tag(model, "2", FAIRNESS_PASSED, "true")
    with pytest.raises(PromotionRefused, match=r"fairness verdict changed since the board's "
                                               r"review \(missed then, passed now\)"):
        promote(model, "2")
    review(model, "1", decision="approved", by="Etisk råd", reason="meets every threshold")
    client.set_model_version_tag(model, "1", "overblik.config_hash", "another-config")
    with pytest.raises(PromotionRefused, match="experiment config changed since the board's"):
        promote(model, "1")
    client.set_model_version_tag(model, "1", "overblik.config_hash", "hash-true")
    copy = client.copy_model_version(f"models:/{model}/1", model)
    with pytest.raises(PromotionRefused, match="record has no review of it"):
        promote(model, str(copy.version))
    assert _champion(model) is None
    promote(model, "1")  # the reviewed version itself
    assert _champion(model) == "1"


def test_promote_refuses_files_changed_since_the_review(model: str) -> None:
    review(model, "1", decision="approved", by="Etisk råd", reason="meets every threshold")
    (entry,) = _records(model)
    assert entry.files_sha256 is not None and len(entry.files_sha256) == 64
    uri = MlflowClient().get_model_version_download_uri(model, "1")
    folder = Path(url2pathname(urlsplit(uri).path))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "estimator.joblib").write_bytes(b"another model")
    with pytest.raises(PromotionRefused, match="files changed since the board's review"):
        promote(model, "1")
    assert _champion(model) is None


def test_only_the_registrys_own_record_opens_the_gate(model: str, uri: str,
                                                     data: Path) -> None:
    """A line in the data folder's reviews.jsonl (whichever folder the process has) approved
    a version of a database registry whose record never saw it; a review from before
    reviews recorded the files opened the gate for any files."""
    entry = review(model, "1", decision="approved", by="Etisk råd", reason="ok")
    planted = dataclasses.replace(entry, version="3", run_id=MlflowClient().get_model_version(
        model, "3").run_id, config_hash="hash-None", fairness_passed=None,
        overrides_fairness=True)
    append_record(planted)  # data/reviews.jsonl, naming this registry
    write_approval(model, "3", Approval(decision="approved", by="Etisk råd", reason="ok",
                                       at=planted.time, overrides_fairness=True))
    with pytest.raises(PromotionRefused, match="record has no review of it"):
        promote(model, "3")
    assert [r.version for r in _records(model) if r.event == "review"] == ["3", "1"]  # listed
    # A review without the files' digest (as written before), in the registry's own record.
    old = dataclasses.replace(planted, files_sha256=None)
    ReviewLog(uri).append(old)
    with pytest.raises(PromotionRefused, match="reviewed before reviews recorded the model's "
                                               "files"):
        promote(model, "3")
    assert _champion(model) is None


def test_rejection_after_approval_blocks_promotion(model: str) -> None:
    review(model, "1", decision="approved", by="Etisk råd", reason="ok")
    review(model, "1", decision="rejected", by="Etisk råd", reason="proxy for origin found")
    with pytest.raises(PromotionRefused, match=r"rejected it .*proxy for origin found"):
        promote(model, "1")
    assert _champion(model) is None
    assert MlflowClient().get_model_version(model, "1").tags[APPROVAL_DECISION] == "rejected"


def test_record_has_every_review_and_promotion_in_order(model: str) -> None:
    review(model, "1", decision="approved", by="A", reason="r1")
    promote(model, "1")
    review(model, "2", decision="approved", by="B", reason="r2")
    with pytest.raises(PromotionRefused):
        promote(model, "2")
    review(model, "2", decision="approved", by="B", reason="r3", override_fairness=True)
    promote(model, "2")
    records = _records(model)
    assert [(r.event, r.version) for r in records] == [
        ("review", "1"), ("promotion", "1"), ("review", "2"), ("promotion_refused", "2"),
        ("review", "2"), ("promotion", "2")]
    assert [r.previous_champion for r in records if r.event != "review"] == [None, "1", "1"]
    assert [r.fairness_passed for r in records] == [True, True, False, False, False, False]
    versions = MlflowClient().search_model_versions(f"name='{model}'")
    runs = {str(v.version): v.run_id for v in versions}
    for r in records:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r.time)
        assert r.model == model and r.run_id == runs[r.version]
        assert r.config_hash == ("hash-true" if r.version == "1" else "hash-false")
    assert records[4].overrides_fairness is True and records[4].reason == "r3"
    # Which store each decision took effect in: a record may hold several stores' decisions.
    assert {r.registry for r in records} == {mlflow.get_tracking_uri()}
    # One JSON object per row, readable without overblik; nothing in the data folder.
    rows = _rows(mlflow.get_tracking_uri(), model)
    assert [json.loads(row[-1])["event"] for row in rows] == [r.event for r in records]
    assert [(row[1], row[3]) for row in rows] == [(r.time, r.version) for r in records]
    assert not reviews_path().exists()


def test_record_is_only_appended(model: str, uri: str) -> None:
    review(model, "1", decision="approved", by="A", reason="første / first")
    before = _rows(uri, model)
    review(model, "1", decision="rejected", by="A", reason="anden / second")
    after = _rows(uri, model)
    assert after[:len(before)] == before and len(after) == len(before) + 1
    assert "første" in str(before[0][-1])


def test_the_registry_database_keeps_its_journal_mode(model: str, uri: str) -> None:
    """MLflow owns the file: recording in it must not switch it to write-ahead logging."""
    path = uri.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        mode = conn.execute("pragma journal_mode").fetchone()[0]
    review(model, "1", decision="approved", by="A", reason="r")
    with sqlite3.connect(path) as conn:
        assert conn.execute("pragma journal_mode").fetchone()[0] == mode != "wal"


def test_a_tracking_server_keeps_the_record_in_the_data_folder(model: str, data: Path) -> None:
    """overblik cannot reach an MLflow server's database: the JSON-lines file instead."""
    log = ReviewLog("https://board:s3cret@mlflow.example")
    assert log.location == str(data / "reviews.jsonl")
    entry = replace(review(model, "1", decision="approved", by="A", reason="r"),
                    registry="https://board@mlflow.example")
    log.append(entry)
    assert log.records() == [entry] and log.records("another-model") == []
    lines = reviews_path().read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["model"] for line in lines] == [model]


def test_a_tracking_server_lists_only_its_own_lines_of_the_file(model: str,
                                                                  data: Path) -> None:
    """The file is shared by every server registry used from this machine: a board
    member listing the production server's record must not see a test server's approval
    (nor a database registry's lines an earlier overblik kept there)."""
    entry = review(model, "1", decision="approved", by="A", reason="r")
    production = ReviewLog("https://mlflow.example")
    mine = replace(entry, registry="https://mlflow.example", reason="production")
    production.append(mine)
    append_record(replace(entry, registry="https://test-mlflow.example", reason="test"))
    append_record(replace(entry, registry="sqlite:////elsewhere/mlflow.db", reason="db"))
    unknown = replace(entry, registry=None, reason="written before registries were kept")
    append_record(unknown)
    assert production.records(model) == [mine, unknown]
    assert [r.reason for r in ReviewLog("https://test-mlflow.example").records()] == [
        "test", "written before registries were kept"]


def test_lines_an_earlier_version_kept_in_the_file_are_listed_first(model: str,
                                                                     data: Path) -> None:
    """Before the record moved into the database it was reviews.jsonl: this registry's
    lines stay in the history, another registry's do not join it."""
    old = ReviewRecord(event="review", time="2026-01-05T10:00:00Z", model=model, version="1",
                       run_id=None, config_hash=None, fairness_passed=True,
                       decision="rejected", by="A", reason="before the move",
                       registry=without_password(mlflow.get_tracking_uri()))
    append_record(old)
    append_record(replace(old, registry="sqlite:////elsewhere/mlflow.db", reason="elsewhere"))
    assert _records(model) == [old]
    review(model, "1", decision="approved", by="A", reason="after the move")
    assert [r.reason for r in _records(model)] == ["before the move", "after the move"]


def test_a_damaged_record_file_is_named_by_line(data: Path) -> None:
    data.mkdir(parents=True)
    reviews_path().write_text('{"event": "review"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"reviews.jsonl line 1 is not a record"):
        ReviewLog("https://mlflow.example").records()


def test_a_damaged_row_of_the_record_table_is_named(tmp_path: Path, data: Path) -> None:
    """A row of the registry's record that is not a record was a traceback (exit 1)."""
    uri = f"sqlite:///{tmp_path / 'damaged.db'}"
    mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    log = ReviewLog(uri)
    log.append(ReviewRecord(event="review", time="2026-01-01T00:00:00Z", model="m",
                            version="1", run_id=None, config_hash=None, fairness_passed=True))
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
        conn.execute(f"insert into {REVIEW_TABLE} (time, model, version, event, record) "
                     "values ('t', 'm', '1', 'review', '{\"event\": \"review\", \"bogus\": 1}')")
    with pytest.raises(InputError, match=rf"row 2 of {REVIEW_TABLE} in .* is not a record"):
        log.records()
    result = runner.invoke(app, ["reviews", "--tracking-uri", uri])
    assert result.exit_code == 2 and "row 2" in result.output


def test_append_record_creates_the_folder(tmp_path: Path, model: str) -> None:
    target = tmp_path / "new" / "folder" / "reviews.jsonl"
    entry = review(model, "1", decision="approved", by="A", reason="r")
    append_record(entry, target)
    assert read_records(target) == [entry]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "overblik-nope"}, "'overblik-nope' is not registered; registered models:"),
    ({"version": "9"}, "has no version '9'; its versions: 1, 2, 3"),
    ({"version": "abc"}, "has no version 'abc'"),
    ({"decision": "rejected", "override_fairness": True}, "only goes with --approve"),
    ({"reason": "  "}, "--reason is empty"),
    ({"by": ""}, "--by is empty"),
    # Invisible: a zero-width space approved a failed audit "by" nobody.
    ({"by": "\u200b"}, "--by is empty (or holds only invisible characters)"),
    ({"reason": "\u200b\u2060 "}, "--reason is empty (or holds only invisible"),
    ({"by": "\u2800"}, "--by is empty"),  # a braille blank
    ({"reason": "\u3164\u0300"}, "--reason is empty"),  # a Hangul filler, a lone accent
    # Kept for good and shown by /metadata to every caller.
    ({"reason": "borger 010190-1234 klagede"}, "--reason holds what looks like a CPR number"),
    ({"by": "sagsbehandler 0101901234"}, "--by holds what looks like a CPR number"),
    ({"reason": "x" * 5001}, "5001 characters"),
])
def test_review_refuses_bad_input_and_records_nothing(model: str, kwargs: dict[str, object],
                                                      message: str) -> None:
    args: dict[str, object] = {"name": model, "version": "1", "decision": "approved",
                               "by": "A", "reason": "r", **kwargs}
    with pytest.raises(InputError, match=re.escape(message)):
        review(**args)  # type: ignore[arg-type]
    assert _records(model) == []
    assert approval_of(model, "1") is None


def test_versions_can_be_named_by_alias(model: str) -> None:
    MlflowClient().set_registered_model_alias(model, "challenger", "1")
    entry = review(model, "challenger", decision="approved", by="A", reason="r")
    assert entry.version == "1"
    assert promote(model, "challenger").version == "1"
    assert _champion(model) == "1"
    with pytest.raises(InputError, match=r"no version 'nope'.*\(aliases: challenger, champion\)"):
        promote(model, "nope")


def test_promote_unknown_version_names_it(model: str) -> None:
    with pytest.raises(InputError, match="has no version '7'"):
        promote(model, "7")
    assert _records(model) == []


def test_cli_review_and_promote(model: str, uri: str) -> None:
    base = ["--tracking-uri", uri]
    result = runner.invoke(app, ["promote", model, "2", *base])
    assert result.exit_code == 2
    assert "never been reviewed" in _text(result.output)
    assert "Traceback" not in result.output
    result = runner.invoke(app, ["review", model, "2", "--approve", "--by", "Demo ethics board",
                                 "--reason", "demo", *base])
    assert result.exit_code == 0, result.output
    assert "approved by Demo ethics board" in _text(result.output)
    assert "fairness audit on record: MISSED its thresholds" in _text(result.output)
    assert "will refuse it unless the board approves with --override-fairness" in _text(
        result.output)
    result = runner.invoke(app, ["promote", model, "2", *base])
    assert result.exit_code == 2
    assert "missed its fairness thresholds" in _text(result.output)
    where = f"table {REVIEW_TABLE} of {uri}"
    assert f"(the refusal is recorded in {where})" in _text(result.output)
    result = runner.invoke(app, ["review", model, "2", "--approve", "--override-fairness",
                                 "--by", "Demo ethics board", "--reason", "accepted gap",
                                 *base])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["promote", model, "2", *base])
    assert result.exit_code == 0, result.output
    assert (f"version 2 is now 'champion' (there was no champion); recorded in "
            f"{where}") in _text(result.output)
    assert _champion(model) == "2"
    assert "is the champion" not in _text(result.output)
    # Rejecting the champion says what happens to the services running it.
    result = runner.invoke(app, ["review", model, "2", "--reject", "--by", "Demo ethics board",
                                 "--reason", "withdrawn", *base])
    assert result.exit_code == 0, result.output
    assert ("version 2 is the champion: running services stop answering its scores within "
            "seconds") in _text(result.output)
    assert [r.event for r in _records(model)] == ["promotion_refused", "review",
                                                  "promotion_refused", "review", "promotion",
                                                  "review"]


@pytest.mark.postgres
def test_a_role_that_may_not_create_tables_records_in_the_table_its_owner_made(
        data: Path, tmp_path: Path) -> None:
    """Production: MLflow's role may read and write rows but not create tables. Without the
    record's table, review says which statements the owner must run, exit 2, and changes no
    tag; once they ran, the same role reviews and promotes."""
    import psycopg

    with postgres_login_role() as role, fresh_postgres_database() as owner_url:
        owner = MlflowClient(tracking_uri=owner_url, registry_uri=owner_url)
        experiment = owner.create_experiment("board", artifact_location=str(tmp_path / "a"))
        run = owner.create_run(experiment)
        name = "overblik-board-role"
        owner.create_registered_model(name)
        owner.create_model_version(name, source=f"{run.info.artifact_uri}/risk_model",
                                   run_id=run.info.run_id, tags={FAIRNESS_PASSED: "true"})
        dsn = owner_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'grant select, insert, update, delete on all tables in schema public '
                         f'to "{role}"')
            conn.execute(f'grant usage, select, update on all sequences in schema public '
                         f'to "{role}"')
        url = owner_url.replace("//postgres@", f"//{role}@")
        base = ["--tracking-uri", url]
        approve = ["review", name, "1", "--approve", "--by", "Etisk råd", "--reason", "ok"]
        result = runner.invoke(app, [*approve, *base])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
        assert (f"cannot create {REVIEW_TABLE} in postgresql://{role}@" in _text(result.output))
        assert (f"role \"{role}\" may not create tables (permission denied for schema public); "
                "have the database owner run once" in _text(result.output))
        assert approval_of(name, "1", owner) is None  # the record comes first: no tag moved
        with pytest.raises(InputError) as failed:
            review(name, "1", decision="approved", by="Etisk råd", reason="ok",
                   client=MlflowClient(tracking_uri=url, registry_uri=url))
        statements = str(failed.value).split("run once:\n", 1)[1]
        with psycopg.connect(dsn, autocommit=True) as conn:  # the owner does as told
            for statement in statements.split(";"):
                if statement.strip():
                    conn.execute(statement)
        assert runner.invoke(app, [*approve, *base]).exit_code == 0
        promoted = runner.invoke(app, ["promote", name, "1", *base])
        assert promoted.exit_code == 0, promoted.output
        assert str(owner.get_model_version_by_alias(name, CHAMPION).version) == "1"
        assert [r.event for r in ReviewLog(url).records(name)] == ["review", "promotion"]


def test_cli_reviews_lists_the_record(model: str, uri: str) -> None:
    base = ["--tracking-uri", uri]
    empty = runner.invoke(app, ["reviews", model, *base])
    assert empty.exit_code == 0, empty.output
    assert f"no reviews or promotions for {model}" in _text(empty.output)
    review(model, "1", decision="approved", by="Etisk råd", reason="ok [see minutes 4]")
    promote(model, "1")
    with pytest.raises(PromotionRefused):
        promote(model, "2")
    result = runner.invoke(app, ["reviews", model, *base], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = _text(result.output)
    assert f"3 entries, oldest first (the record: table {REVIEW_TABLE} of {uri})" in text
    assert f"{model} version 1 review: approved by Etisk råd" in text
    assert "reason: ok [see minutes 4]" in text  # free text, not rich markup
    assert "version 1 promoted to champion (before: none)" in text
    assert f"{model} version 2 promotion refused fairness audit: failed why:" in text
    assert "never been reviewed" in text
    lines = runner.invoke(app, ["reviews", model, "--json", *base]).output.splitlines()
    assert [ReviewRecord(**json.loads(line)) for line in lines] == _records(model)
    everyone = runner.invoke(app, ["reviews", "--json", *base]).output
    assert len(everyone.splitlines()) >= 3 and model in everyone
    # A misspelt name is not "never reviewed": the listing names the models it knows.
    typo = runner.invoke(app, ["reviews", model + "x", *base], env={"COLUMNS": "200"})
    assert typo.exit_code == 0, typo.output
    assert f"no reviews or promotions for {model}x" in _text(typo.output)
    known = _text(typo.output).split("; models in the record: ", 1)[1].strip()
    assert model in known.split(", ")
    missing = runner.invoke(app, ["reviews", "--tracking-uri", f"{uri}-missing"])
    assert missing.exit_code == 2 and "no such file" in _text(missing.output)


def test_reading_commands_refuse_what_is_no_tracking_database(tmp_path: Path) -> None:
    """A CSV or an empty file as a SQLite tracking URI, or a database server that does not
    answer: one message, exit 2, nothing written (a traceback before; an empty file got
    MLflow's whole schema, ~1 MB, and then read as an empty registry)."""
    empty = tmp_path / "typo.db"
    empty.touch()
    text = tmp_path / "population.csv"
    text.write_text("cpr,birth_date\n", encoding="utf-8")
    cases = [(f"sqlite:///{empty}", "is not a tracking database"),
             (f"sqlite:///{text}", "is not a tracking database"),
             ("postgresql://nobody:secret@127.0.0.1:9/db", "cannot open the tracking database")]
    for uri, words in cases:
        for command in (["reviews"], ["promote", "overblik-x", "1"]):
            result = runner.invoke(app, [*command, "--tracking-uri", uri])
            assert result.exit_code == 2, (command, uri, result.output)
            said = _text(result.output)
            assert words in said and "Traceback" not in result.output and "secret" not in said
    assert empty.stat().st_size == 0 and text.read_text() == "cpr,birth_date\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "A", "--reason", "r"], "exactly one of --approve and --reject"),
    (["--approve", "--reject", "--by", "A", "--reason", "r"], "exactly one of"),
    (["--approve", "--reason", "r"], "--by is missing"),
    (["--reject", "--by", "A"], "--reason is missing"),
    (["--reject", "--override-fairness", "--by", "A", "--reason", "r"],
     "--override-fairness only goes with --approve"),
])
def test_cli_review_usage_errors_exit_2(model: str, uri: str, args: list[str],
                                        message: str) -> None:
    result = runner.invoke(app, ["review", model, "1", *args, "--tracking-uri", uri])
    assert result.exit_code == 2
    assert message in _text(result.output)
    assert _records(model) == []


def test_cli_unknown_model_exits_2_naming_it(model: str, uri: str) -> None:
    result = runner.invoke(app, ["review", "overblik-missing", "1", "--approve", "--by", "A",
                                 "--reason", "r", "--tracking-uri", uri])
    assert result.exit_code == 2
    assert "'overblik-missing' is not registered" in _text(result.output)
    assert model in _text(result.output)  # the registered ones are listed


@pytest.mark.parametrize(("uri", "kept"), [
    ("postgresql://board:s3cret@db.example:5432/mlflow", "postgresql://board@db.example:5432/mlflow"),
    ("https://user:pw@mlflow.example/", "https://user@mlflow.example/"),
    ("sqlite:////srv/data/mlflow.db", "sqlite:////srv/data/mlflow.db"),
    ("postgresql://board@db.example/mlflow", "postgresql://board@db.example/mlflow"),
])
def test_the_record_keeps_the_store_without_its_password(uri: str, kept: str) -> None:
    assert without_password(uri) == kept


@pytest.mark.parametrize(("tracking", "database"), [
    ("sqlite:////srv/data/mlflow.db", "sqlite:////srv/data/mlflow.db"),
    ("postgresql+psycopg2://board@db:5432/mlflow", "postgresql://board@db:5432/mlflow"),
    ("postgresql+psycopg://board@db/mlflow?sslmode=require",
     "postgresql://board@db/mlflow?sslmode=require"),
    ("postgres://board@db/mlflow", "postgresql://board@db/mlflow"),
    ("http://mlflow.example:5000", None),
    ("file:///srv/mlruns", None),
    ("/srv/mlruns", None),
    ("databricks", None),
])
def test_the_record_goes_into_the_registry_database_when_there_is_one(
        tracking: str, database: str | None) -> None:
    assert registry_database_url(tracking) == database


def test_a_registry_file_that_is_not_a_database_gives_one_message(tmp_path: Path) -> None:
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"not a database at all " * 100)
    log = ReviewLog(f"sqlite:///{broken}")
    for use in (log.records, lambda: log.append(_an_entry())):
        with pytest.raises(InputError, match=r"cannot use the record in table overblik_review_"
                                             r"record of sqlite:///.*mlflow.db: .* is not a "
                                             r"SQLite database; give the tracking URI"):
            use()


def _an_entry() -> ReviewRecord:
    return ReviewRecord(event="review", time="2026-01-05T10:00:00Z", model="m", version="1",
                        run_id=None, config_hash=None, fairness_passed=None,
                        decision="approved", by="A", reason="r")
