"""The service refuses to start, with one clear message, rather than start half-working."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import mlflow
import pandas as pd
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from overblik.experiments._approval import APPROVAL_DECISION, CHAMPION, FAIRNESS_PASSED
from overblik.experiments._cli import app
from overblik.experiments._effects_model import EFFECTS_FILE, EffectsModel
from overblik.experiments._review import review
from overblik.serving import (
    AllocateRequest,
    ApiError,
    RecommendRequest,
    RequestRecord,
    ScoreRequest,
    ScoringEngine,
    StartupError,
)
from tests.serving._setup import Served, approve, free_port

runner = CliRunner()


def _client(served: Served) -> mlflow.MlflowClient:
    return mlflow.MlflowClient(tracking_uri=served.tracking_uri,
                               registry_uri=served.tracking_uri)


def _new_version(served: Served, alias: str, *, source: str | None = None,
                 decision: str | None = "approved") -> str:
    """Another version of the served model under ``alias`` (same run, maybe other files)."""
    client = _client(served)
    champion = client.get_model_version_by_alias(served.model_name, CHAMPION)
    mv = client.create_model_version(served.model_name, source or str(champion.source),
                                     run_id=champion.run_id)
    version = str(mv.version)
    for key, value in champion.tags.items():
        if key.startswith("overblik.") and "approval" not in key:
            client.set_model_version_tag(served.model_name, version, key, value)
    if decision is not None:
        approve(served.tracking_uri, served.model_name, version, decision)
    client.set_registered_model_alias(served.model_name, alias, version)
    return version


def _refused(served: Served, **changes: object) -> str:
    with pytest.raises(StartupError) as err:
        ScoringEngine.start(served.settings(**changes))
    return str(err.value)


def _copied_files(served: Served, tmp_path: Path) -> Path:
    champion = _client(served).get_model_version_by_alias(served.model_name, CHAMPION)
    mlflow.set_tracking_uri(served.tracking_uri)
    mlflow.set_registry_uri(served.tracking_uri)
    original = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{served.model_name}/{champion.version}"))
    copy = tmp_path / "model"
    shutil.copytree(original, copy)
    return copy


def test_unreviewed_version_is_refused(served: Served) -> None:
    version = _new_version(served, "unreviewed", decision=None)
    message = _refused(served, alias="unreviewed")
    assert f"version {version}" in message and "has never been reviewed" in message
    assert "overblik review" in message


def test_rejected_version_is_refused(served: Served) -> None:
    _new_version(served, "rejected-one", decision="rejected")
    assert "the latest review" in (said := _refused(served, alias="rejected-one"))
    assert "rejected it" in said


def test_model_files_changed_after_the_review_do_not_serve(served: Served,
                                                           tmp_path: Path) -> None:
    """An estimator replaced after the board's approval served under that approval (the
    startup checks only see whether the files agree with each other)."""
    copy = _copied_files(served, tmp_path)
    _new_version(served, "swapped", source=str(copy))  # reviewed: the files' digest recorded
    estimator = copy / "artifacts" / "estimator.joblib"
    estimator.write_bytes(estimator.read_bytes() + b"\0")
    said = _refused(served, alias="swapped")
    assert "files changed since the board's review" in said and "SHA-256" in said


def test_serving_asks_what_promotion_asks(served: Served) -> None:
    """`serve --alias challenger` served an approved version whose audit failed, which
    `promote` refuses without --override-fairness: serving now applies the same gate."""
    client = _client(served)
    version = _new_version(served, "failed-audit", decision=None)
    client.set_model_version_tag(served.model_name, version, FAIRNESS_PASSED, "false")
    review(served.model_name, version, decision="approved", by="Etisk råd", reason="ok",
           client=client)
    said = _refused(served, alias="failed-audit")
    assert "missed its fairness thresholds" in said and "--override-fairness" in said


def test_approval_tags_without_the_boards_record_open_nothing(served: Served) -> None:
    """The gate read five editable tags: set by hand, copied by MLflow's
    copy_model_version (to another version or model), or edited after a rejection, they
    served a version the board never approved."""
    client = _client(served)
    champion = client.get_model_version_by_alias(served.model_name, CHAMPION)
    # Tags written by hand, as the tests' own approve() once did.
    version = _new_version(served, "tags-only", decision=None)
    for key, value in champion.tags.items():
        if "approval" in key:
            client.set_model_version_tag(served.model_name, version, key, value)
    said = _refused(served, alias="tags-only")
    assert "carries approval tags" in said and "no review of it" in said
    # Copied with the version by MLflow.
    copy = client.copy_model_version(f"models:/{served.model_name}/{champion.version}",
                                     served.model_name)
    assert copy.tags[APPROVAL_DECISION] == "approved"
    client.set_registered_model_alias(served.model_name, "copied", str(copy.version))
    assert "no review of it" in _refused(served, alias="copied")
    # Rejected by the board, then the tag edited back.
    version = _new_version(served, "edited", decision="rejected")
    client.set_model_version_tag(served.model_name, version, APPROVAL_DECISION, "approved")
    assert "do not match the board's latest review" in _refused(served, alias="edited")


def test_missing_alias_and_model(served: Served) -> None:
    assert "no version has the alias 'nobody'" in _refused(served, alias="nobody")
    message = _refused(served, model_name="overblik-no-such-model")
    assert "no such registered model" in message and served.model_name in message


@pytest.mark.parametrize(("damage", "words"), [("corrupt", "is corrupt"),
                                                ("missing", "is missing"),
                                                ("features", "feature list")])
def test_damaged_model_files_are_refused(served: Served, tmp_path: Path, damage: str,
                                         words: str) -> None:
    files = _copied_files(served, tmp_path)
    if damage == "corrupt":
        (files / "artifacts" / "estimator.joblib").write_bytes(b"\x80\x04not a pickle")
    elif damage == "missing":
        (files / "artifacts" / "estimator.joblib").unlink()
    else:
        (files / "artifacts" / "features.json").write_text('[{"name": "only_one"}]')
    _new_version(served, f"damaged-{damage}", source=str(files))
    message = _refused(served, alias=f"damaged-{damage}")
    assert (words in message and "overblik train" in message) or "corrupt" in message


def test_profile_store_must_fit(served: Served, tmp_path: Path) -> None:
    assert "no profile store" in _refused(served, profile_store=tmp_path / "none.parquet")
    key = tmp_path / "key"
    key.write_text("another-secret-key-for-another-municipality")
    message = _refused(served, key_file=key, demo_key=False)
    assert "pseudonymised with key" in message and "no CPR number would be found" in message
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert "not readable" in _refused(served, profile_store=bad)


@pytest.mark.parametrize("value", ["abc", "1e400"])
def test_a_hand_edited_profile_store_is_refused(served: Served, tmp_path: Path,
                                               value: str) -> None:
    """Text or an infinite number in a feature cell: one startup error naming the cell
    (before: a traceback from float conversion or from the SHAP self-check)."""
    from overblik.serving._profile_store import _sidecar

    frame = pd.read_parquet(served.profiles)
    csv = tmp_path / "store.csv"
    frame.to_csv(csv, index=False)
    meta = json.loads(pq.read_schema(served.profiles).metadata[b"overblik"])
    _sidecar(csv).write_text(json.dumps(meta))
    feature = meta["features"][0]
    text = csv.read_text().splitlines()
    header = text[0].split(",")
    cells = text[3].split(",")
    cells[header.index(feature)] = value
    text[3] = ",".join(cells)
    csv.write_text("\n".join(text) + "\n")
    message = _refused(served, profile_store=csv)
    assert f"row 3, column {feature} is not a finite number" in message


def test_store_url_must_work(served: Served, tmp_path: Path) -> None:
    assert "sqlite:///" in _refused(served, store_url="mysql://localhost/x")
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert "cannot open the store" in _refused(served, store_url=f"sqlite:///{folder}")


def test_cli_serve_check(served: Served) -> None:
    common = ["--tracking-uri", served.tracking_uri, "--profiles", str(served.profiles),
              "--store", served.store_url, "--demo-key"]
    ok = runner.invoke(app, ["serve", "--check", *common])
    assert ok.exit_code == 0, ok.output
    said = " ".join(ok.output.split())
    assert f"version {served.version}" in said and "approved" in said
    assert "effect models: family_support (" in said
    assert "warning" not in said  # the store was built as of a date with full history
    assert "not the champion" not in said
    _new_version(served, "cli-approved")  # approved, not promoted
    other = runner.invoke(app, ["serve", "--check", "--alias", "cli-approved", *common])
    assert other.exit_code == 0, other.output
    assert "serving the alias 'cli-approved', not the champion" in " ".join(other.output.split())
    _new_version(served, "cli-unreviewed", decision=None)
    refused = runner.invoke(app, ["serve", "--check", "--alias", "cli-unreviewed", *common])
    assert refused.exit_code == 2
    said = " ".join(refused.output.split())
    assert "has never been reviewed" in said and "Traceback" not in said


def test_cli_serve_refuses_a_bad_host_port_or_registry(served: Served, tmp_path: Path) -> None:
    """Each was a traceback from BentoML after 'serving on ...', or an empty MLflow database
    created at a mistyped path."""
    import socket

    common = ["--profiles", str(served.profiles), "--store", served.store_url, "--demo-key"]
    registry = ["--tracking-uri", served.tracking_uri]
    host = runner.invoke(app, ["serve", "--check", *registry, *common, "--host", "not a host"])
    assert host.exit_code == 2 and "is not an IP address" in " ".join(host.output.split())
    # Checked before loading anything: no summary of what would be served comes first.
    assert "approved by" not in host.output
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = runner.invoke(app, ["serve", *registry, *common, "--port", str(port)])
    said = " ".join(taken.output.split())
    assert taken.exit_code == 2 and f"--port {port}" in said and "Traceback" not in said
    missing = tmp_path / "nothere.db"
    typo = runner.invoke(app, ["serve", "--check", "--tracking-uri", f"sqlite:///{missing}",
                               *common])
    assert typo.exit_code == 2 and "no such file" in " ".join(typo.output.split())
    assert not missing.exists()


@pytest.mark.parametrize(("damage", "words"), [("corrupt", "are corrupt"),
                                                ("features", "fitted on other features")])
def test_damaged_effect_models_are_refused(served: Served, tmp_path: Path, damage: str,
                                           words: str) -> None:
    files = _copied_files(served, tmp_path)
    path = files / "artifacts" / EFFECTS_FILE
    if damage == "corrupt":
        path.write_bytes(b"\x80\x04not a pickle")
    else:
        effects = EffectsModel.load(path)
        replace(effects, feature_names=tuple(reversed(effects.feature_names))).save(path)
    _new_version(served, f"effects-{damage}", source=str(files))
    message = _refused(served, alias=f"effects-{damage}")
    assert words in message and EFFECTS_FILE in message and "overblik train" in message


def test_version_without_effect_models_says_how_to_get_them(served: Served,
                                                           tmp_path: Path) -> None:
    """A version trained without an effects section serves scores; /recommend and
    /allocate answer 409 saying how to get effect models, and /metadata says so."""
    import yaml

    files = _copied_files(served, tmp_path)
    (files / "artifacts" / EFFECTS_FILE).unlink()
    # As `overblik train` registers such a version: its MLmodel names no effects file.
    mlmodel = yaml.safe_load((files / "MLmodel").read_text())
    del mlmodel["flavors"]["python_function"]["artifacts"]["effects"]
    (files / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    version = _new_version(served, "no-effects", source=str(files))
    engine = ScoringEngine.start(served.settings(alias="no-effects"))
    try:
        assert engine.model.effects is None and engine.effects is None
        record = RequestRecord(request_id="c" * 32, endpoint="/recommend", method="POST",
                               role="caseworker-system")
        with pytest.raises(ApiError) as err:
            engine.recommend(RecommendRequest(cpr=served.cprs[0]), "da", record)
        assert err.value.status == 409
        assert f"version {version} has no effect models" in err.value.message
        assert "`effects:` section" in err.value.message and "overblik train" in err.value.message
        assert record.pseudonyms == []  # refused before the citizen was looked up
        with pytest.raises(ApiError) as err:
            engine.allocate(AllocateRequest(citizens=[]), "en", record)
        assert err.value.status == 409
        info = engine.metadata().effects
        assert not info.available and info.programmes == []
        assert info.how_to is not None and "effects:" in info.how_to
        score = engine.score(ScoreRequest(cpr=served.cprs[0]), "da", record)
        assert 0 <= score.probability <= 1  # scores are served as before
    finally:
        engine.close()


def test_cli_serve_check_creates_no_store(served: Served, tmp_path: Path) -> None:
    """`serve --check` only reads: a --store or --tracking-uri file that does not exist is
    refused, exit 2, and stays absent (before: an empty audit store was created)."""
    common = ["--profiles", str(served.profiles), "--demo-key"]
    before = sorted(tmp_path.rglob("*"))
    store = tmp_path / "typo" / "serving.db"
    refused = runner.invoke(app, ["serve", "--check", "--tracking-uri", served.tracking_uri,
                                  "--store", f"sqlite:///{store}", *common])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2, said
    assert f"no such file {store}" in said and "never creates a store" in said
    assert "overblik keys create" in said and "Traceback" not in said
    registry = tmp_path / "mlflow-typo.db"
    refused = runner.invoke(app, ["serve", "--check", "--tracking-uri",
                                  f"sqlite:///{registry}", "--store", served.store_url,
                                  *common])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2 and f"no such file {registry}" in said
    assert "overblik train" in said
    assert not store.exists() and not store.parent.exists() and not registry.exists()
    assert sorted(tmp_path.rglob("*")) == before


def test_cli_serve_refuses_a_store_that_does_not_exist(served: Served, tmp_path: Path) -> None:
    """A mistyped --store would start a service with no keys, writing its audit log apart
    from the real one: serve refuses it (exit 2) and creates nothing."""
    store = tmp_path / "typo" / "serving.db"
    refused = runner.invoke(app, ["serve", "--tracking-uri", served.tracking_uri, "--profiles",
                                  str(served.profiles), "--demo-key", "--store",
                                  f"sqlite:///{store}", "--port", str(free_port())])
    said = " ".join(refused.output.split())
    assert refused.exit_code == 2, said
    assert f"no such file {store}" in said and "`serve` never creates a store" in said
    assert "overblik keys create" in said and "Traceback" not in said
    assert not store.exists() and not store.parent.exists()


def _csv_store(served: Served, tmp_path: Path) -> tuple[Path, list[str]]:
    """The served profile store as CSV (with its sidecar) and its lines."""
    from overblik.serving._profile_store import _sidecar

    csv = tmp_path / "store.csv"
    pd.read_parquet(served.profiles).to_csv(csv, index=False)
    meta = json.loads(pq.read_schema(served.profiles).metadata[b"overblik"])
    _sidecar(csv).write_text(json.dumps(meta))
    return csv, csv.read_text().splitlines()


@pytest.mark.parametrize(("line", "change", "fields"), [(1, ",7", +1), (4, ",7,8", +2),
                                                        (6, "<drop>", -1)])
def test_a_csv_store_row_with_other_fields_is_named(served: Served, tmp_path: Path,
                                                    line: int, change: str,
                                                    fields: int) -> None:
    """A row with an extra (or a missing) field: the line and the field counts, not "a
    person appears more than once" (an extra field in the first row made pandas read
    the first column as the index) nor pandas' tokenizer message."""
    csv, text = _csv_store(served, tmp_path)
    header = len(text[0].split(","))
    text[line] = text[line].rsplit(",", 1)[0] if change == "<drop>" else text[line] + change
    csv.write_text("\n".join(text) + "\n")
    message = _refused(served, profile_store=csv)
    assert (f"line {line + 1} (row {line}) has {header + fields} fields, the header has "
            f"{header}") in message, message
    assert "more than once" not in message and "overblik profiles" in message


def test_cli_serve_warns_when_a_demo_model_meets_real_data(served: Served,
                                                          tmp_path: Path) -> None:
    from overblik.serving._profile_store import _sidecar

    common = ["serve", "--check", "--tracking-uri", served.tracking_uri, "--store",
              served.store_url, "--demo-key"]
    same = runner.invoke(app, [*common, "--profiles", str(served.profiles)])
    assert same.exit_code == 0, same.output
    assert "synthetic demo municipality" not in " ".join(same.output.split())
    csv, _ = _csv_store(served, tmp_path)
    meta = json.loads(_sidecar(csv).read_text())
    assert meta["demo_data"] is True  # the fixture's store: demo data, as its model
    _sidecar(csv).write_text(json.dumps({**meta, "demo_data": False}))
    real = runner.invoke(app, [*common, "--profiles", str(csv)])
    said = " ".join(real.output.split())
    assert real.exit_code == 0, said
    assert (f"warning: version {served.version} was trained on the synthetic demo "
            "municipality, but the profile store holds real (non-demo) data") in said


def test_a_csv_store_with_a_repeated_person_names_the_rows(served: Served,
                                                           tmp_path: Path) -> None:
    csv, text = _csv_store(served, tmp_path)
    csv.write_text("\n".join([*text, text[2]]) + "\n")
    message = _refused(served, profile_store=csv)
    assert f"rows 2 and {len(text)} have the same person_id" in message


@pytest.mark.parametrize(("damage", "file", "words"), [
    ("garbled", "MLmodel", "is corrupt"),
    ("missing", "MLmodel", "is missing"),
    ("not-a-model", "MLmodel", "not an MLflow pyfunc model description"),
    ("wrong-shape", "MLmodel", "is corrupt"),
    ("garbled", "python_model.pkl", "is corrupt"),
    ("truncated", "python_model.pkl", "is corrupt"),
    ("missing", "python_model.pkl", "named in MLmodel, is missing"),
    ("garbled", "conda.yaml", "is corrupt"),
    ("garbled", "python_env.yaml", "is corrupt"),
    ("truncated", "input_example.json", "is corrupt"),
    ("garbled", "requirements.txt", "is corrupt"),
])
def test_damaged_mlflow_files_are_refused(served: Served, tmp_path: Path, damage: str,
                                          file: str, words: str) -> None:
    """The version's MLflow files besides estimator.joblib: one message naming the version
    and the file (before: served as if nothing were wrong)."""
    files = _copied_files(served, tmp_path)
    path = files / file
    if damage == "missing":
        path.unlink()
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 3])
    elif damage == "not-a-model":
        path.write_text("just: a mapping\n")
    elif damage == "wrong-shape":  # valid YAML, but not what MLflow wrote
        path.write_text("flavors: {python_function: {artifacts: [1, 2]}}\n"
                        "saved_input_example_info: 3\n")
    else:
        path.write_bytes(b"\x00\x9f garbled {[: \xff\n")
    version = _new_version(served, f"files-{damage}-{file.replace('.', '-')}",
                           source=str(files))
    message = _refused(served, alias=f"files-{damage}-{file.replace('.', '-')}")
    assert f"version {version}" in message and str(path) in message, message
    assert words in message and "overblik train" in message, message


def test_cli_serve_check_refuses_a_damaged_mlmodel(served: Served, tmp_path: Path) -> None:
    files = _copied_files(served, tmp_path)
    (files / "MLmodel").write_text("flavors: {python_function: [unclosed\n")
    version = _new_version(served, "cli-damaged-mlmodel", source=str(files))
    result = runner.invoke(app, ["serve", "--check", "--alias", "cli-damaged-mlmodel",
                                 "--tracking-uri", served.tracking_uri, "--profiles",
                                 str(served.profiles), "--store", served.store_url,
                                 "--demo-key"])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert f"version {version}" in said and "MLmodel is corrupt" in said
    assert "Traceback" not in said
