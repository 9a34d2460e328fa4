"""The fairness step of training: audit, proxies, mitigation, model card and verdict logged
into the training run; the version tagged for the gate; label bias added by the oracle
step. Plus the experiment file's `fairness:` section. Real MLflow (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import joblib
import mlflow
import pandas as pd
import pytest
import yaml

from overblik.experiments._approval import CHAMPION, FAIRNESS_PASSED
from overblik.experiments._config import (
    ExperimentConfig,
    experiments_dir,
    load_experiment,
    parse_experiment,
)
from overblik.experiments._fairness_run import FairnessRun, audit_rule
from overblik.experiments._oracle import compare_with_truth
from overblik.experiments._review import PromotionRefused, promote, review
from overblik.experiments._review_log import ReviewLog
from overblik.experiments._train import TrainResult, train
from overblik.features import InputError


def _raw(name: str = "child_placement") -> dict:
    return yaml.safe_load((experiments_dir() / f"{name}.yaml").read_text())


def _fast(name: str) -> ExperimentConfig:
    """The shipped experiment, cheap: a small model, one split, few bootstrap resamples."""
    config = load_experiment(experiments_dir() / f"{name}.yaml")
    lgb = config.models.lightgbm.model_copy(update={"n_estimators": 60})
    fairness = config.fairness.model_copy(update={
        "n_boot": 50,
        "mitigation": config.fairness.mitigation.model_copy(update={"max_train_rows": 1500})})
    return config.model_copy(update={
        "models": config.models.model_copy(update={"lightgbm": lgb}), "fairness": fairness,
        "validation": config.validation.model_copy(update={"n_splits": 1})})


@pytest.fixture(scope="module")
def trained(municipality: Path, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[TrainResult, str]]:
    folder = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OVERBLIK_DATA", str(folder))  # artifacts and records stay in tmp
        yield train(_fast("child_placement"), clean=municipality / "clean",
                    tracking_uri=uri), uri


def _artifact(run_id: str, path: str) -> Path:
    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path))


def test_training_logs_the_fairness_artifacts_and_tags(trained: tuple[TrainResult, str]
                                                       ) -> None:
    result, uri = trained
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(result.run_id, "fairness")}
    for expected in ("report.html", "audit.json", "model_card_da.md", "model_card_en.md",
                     "model_card.json", "mitigation.csv", "mitigation_tradeoff.png",
                     "proxies.csv", "proxy_features.csv", "groups.csv", "disparities.csv",
                     "failures.txt", "report_inputs.joblib", "disparities_da.png",
                     "disparities_en.png"):
        assert f"fairness/{expected}" in names
    run = mlflow.get_run(result.run_id)
    tag = run.data.tags[FAIRNESS_PASSED]
    assert tag in ("true", "false")
    version = client.get_model_version(result.model_name, result.model_version)
    assert version.tags[FAIRNESS_PASSED] == tag
    assert run.data.metrics["fairness_passed"] == (1.0 if tag == "true" else 0.0)
    assert result.fairness_passed is (tag == "true")
    # Children are all in one age band: the experiment does not audit it.
    assert "fairness_proxy_auc_age_band" not in run.data.metrics
    assert 0.4 < run.data.metrics["fairness_proxy_auc_origin"] <= 1.0
    assert run.data.metrics["fairness_proxy_max_auc"] >= run.data.metrics[
        "fairness_proxy_auc_origin"]
    # The tag is the thresholds' verdict on the audit that was logged.
    logged: FairnessRun = joblib.load(_artifact(result.run_id,
                                                "fairness/report_inputs.joblib"))
    verdict = logged.thresholds.evaluate(logged.audit)
    assert str(verdict.passed).lower() == tag
    assert run.data.metrics["fairness_failures"] == len(verdict.failures)
    failures = [c for c in verdict.checks if c.status == "fail"]
    largest = max((abs(c.difference.value) for c in verdict.checks
                   if c.metric == "selection_rate"), default=0.0)
    assert run.data.metrics["fairness_max_selection_rate_difference"] == pytest.approx(largest)
    assert run.data.metrics["fairness_unchecked"] == len(verdict.unchecked)
    assert (tag == "false") == bool(failures or verdict.failures or verdict.unchecked)


def test_audit_is_on_the_last_test_date_top_capacity(trained: tuple[TrainResult, str]
                                                     ) -> None:
    result, uri = trained
    mlflow.set_tracking_uri(uri)
    config = _fast("child_placement")
    doc = json.loads(_artifact(result.run_id, "fairness/audit.json").read_text())
    assert doc["n"] == result.final["lightgbm"].n
    assert audit_rule(config, doc["n"]) == (None, config.capacity_k)
    assert str(config.capacity_k) in doc["decision"]
    assert doc["n_boot"] == 50 and doc["min_count"] == 20
    attributes = {g["attribute"] for g in doc["groups"]}
    assert {"sex", "origin", "district", "sex&origin"} <= attributes
    refs = {d["reference"] for d in doc["disparities"] if d["attribute"] == "origin"}
    assert refs == {"danish"}
    proxies = pd.read_csv(_artifact(result.run_id, "fairness/proxies.csv"))
    assert set(proxies["attribute"]) == set(config.sensitive_attributes)
    assert set(config.sensitive_attributes) == {"sex", "origin", "district"}
    mitigation = pd.read_csv(_artifact(result.run_id, "fairness/mitigation.csv"))
    criteria = config.fairness.mitigation.criteria
    methods = config.fairness.mitigation.methods
    assert set(methods) == {"threshold_optimizer", "exponentiated_gradient"}
    # the model as audited, unmitigated, then every method for each criterion
    assert list(mitigation["criterion"].fillna("")) == ["", "", *(c for c in criteria
                                                                 for _ in methods)]
    assert list(mitigation["method"]) == ["as_audited", "unmitigated",
                                          *(m for _ in criteria for m in methods)]
    assert {f"{c}_difference" for c in criteria} <= set(mitigation.columns)
    # The first row is the audit's own decisions (the unmitigated row decides at another
    # threshold and selected 3.4 % where the audit selects the top capacity_k): its
    # selection rate and parity gap are the audit's.
    audited = mitigation.iloc[0]
    assert audited["selection_rate"] == pytest.approx(
        doc["overall"]["selection_rate"]["value"], abs=1e-12)
    attribute = config.fairness.mitigation.attribute
    rates = [g["metrics"]["selection_rate"]["value"] for g in doc["groups"]
             if g["attribute"] == attribute and not g["suppressed"]]
    if "demographic_parity" in criteria:
        assert audited["demographic_parity_difference"] == pytest.approx(
            max(rates) - min(rates), abs=1e-12)


def test_model_card_and_report_describe_the_run(trained: tuple[TrainResult, str]) -> None:
    result, uri = trained
    mlflow.set_tracking_uri(uri)
    da = _artifact(result.run_id, "fairness/model_card_da.md").read_text(encoding="utf-8")
    en = _artifact(result.run_id, "fairness/model_card_en.md").read_text(encoding="utf-8")
    for card in (da, en):
        assert result.model_name in card and result.run_id in card
        assert result.config_hash in card and result.data_fingerprint in card
        assert "`child_placement`" in card and "`children_in_families`" in card
    assert "Intended use" in en and "Tilsigtet brug" in da
    # The description in each card's own language (the Danish card repeated the English).
    assert "Anbringelse uden for hjemmet af et barn" in da and "Out-of-home placement" in en
    assert "Out-of-home placement" not in da
    assert "Protected attributes used as inputs:** Age" in en  # age_years is an input
    assert "surveillance" in en  # the label-bias caveat
    html = _artifact(result.run_id, "fairness/report.html").read_text(encoding="utf-8")
    assert result.model_name in html and 'lang="da"' in html and 'lang="en"' in html


def test_oracle_adds_label_bias_and_the_gate_uses_the_tag(
        trained: tuple[TrainResult, str], municipality: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    result, uri = trained
    before = _artifact(result.run_id, "fairness/report.html").read_text(encoding="utf-8")
    comparison = compare_with_truth(result.run_id, municipality / "m" / "truth",
                                    tracking_uri=uri)
    assert comparison.label_bias is not None
    table = pd.read_csv(_artifact(result.run_id, "fairness/label_bias.csv"))
    # Recorded rate = the test rows' labels, true rate = the truth's p_need, per group.
    preds = pd.read_parquet(_artifact(result.run_id, "predictions/test_predictions.parquet"))
    truth = pd.read_parquet(municipality / "m" / "truth" / "truth.parquet")
    truth = truth[truth["outcome"] == "child_placement"]
    for frame in (preds, truth):
        frame["as_of"] = pd.to_datetime(frame["as_of"]).astype("datetime64[ns]")
        frame["person_id"] = frame["person_id"].astype(str)
    joined = preds.merge(truth[["person_id", "as_of", "p_need"]], on=["person_id", "as_of"])
    expected = joined.groupby("origin")[["y", "p_need"]].mean()
    origin = table[table["attribute"] == "origin"].set_index("group")
    assert set(origin.index) == set(expected.index)
    for group, row in expected.iterrows():
        assert origin.loc[group, "recorded_rate"] == pytest.approx(row["y"])
        assert origin.loc[group, "true_rate"] == pytest.approx(row["p_need"])
        assert origin.loc[group, "ratio"] == pytest.approx(row["y"] / row["p_need"])
    after = _artifact(result.run_id, "fairness/report.html").read_text(encoding="utf-8")
    assert "Bias in the recorded outcome" in after
    assert "Bias in the recorded outcome" not in before
    card = _artifact(result.run_id, "fairness/model_card_en.md").read_text(encoding="utf-8")
    assert "Gap to the true risk" in card
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["fairness_label_bias_max_ratio"] == pytest.approx(
        table["ratio"].max())

    # The gate on the trained version: nothing before a review; then by the audit tag.
    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path))
    with pytest.raises(PromotionRefused, match="never been reviewed"):
        promote(result.model_name, result.model_version)
    passed = run.data.tags[FAIRNESS_PASSED] == "true"
    review(result.model_name, result.model_version, decision="approved", by="Demo ethics board",
           reason="demo", override_fairness=not passed)
    promote(result.model_name, result.model_version)
    client = mlflow.MlflowClient()
    assert str(client.get_model_version_by_alias(result.model_name, CHAMPION).version
               ) == result.model_version
    records = ReviewLog(mlflow.get_tracking_uri()).records(result.model_name)
    assert [r.event for r in records] == ["promotion_refused", "review", "promotion"]
    assert records[1].config_hash == result.config_hash


def test_a_mitigation_that_cannot_be_compared_leaves_the_audit_standing(
        municipality: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """200 training rows over 12 districts leave a district without a placement: the
    comparison is skipped with its reason, and the version keeps its audit and tag."""
    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path))
    config = _fast("child_placement")
    mitigation = config.fairness.mitigation.model_copy(
        update={"max_train_rows": 200, "attribute": "district"})
    config = config.model_copy(update={"fairness": config.fairness.model_copy(
        update={"mitigation": mitigation})})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = train(config, clean=municipality / "clean", tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    skipped = _artifact(result.run_id, "fairness/mitigation_skipped.txt").read_text()
    assert "only one outcome" in skipped
    version = mlflow.MlflowClient().get_model_version(result.model_name, result.model_version)
    assert version.tags[FAIRNESS_PASSED] in ("true", "false")


def test_a_failed_audit_leaves_no_registered_version(
        municipality: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A version is registered before its audit (the card names it); when the audit step
    fails, the version goes again, so no board can approve a model without a report."""
    import overblik.experiments._train as train_module

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the audit broke")

    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path))
    monkeypatch.setattr(train_module, "_fairness", failing)  # fault injection
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(RuntimeError, match="the audit broke"):
        train(_fast("child_placement"), clean=municipality / "clean", tracking_uri=uri)
    mlflow.set_tracking_uri(uri)
    client = mlflow.MlflowClient()
    names = [m.name for m in client.search_registered_models()]
    assert all(not client.search_model_versions(f"name='{n}'") for n in names)


def test_experiment_files_without_a_fairness_section_get_the_defaults() -> None:
    raw = _raw()
    raw.pop("fairness")
    config = parse_experiment(raw, "old.yaml")
    assert config.fairness.n_boot == 1000 and config.fairness.min_count == 20
    assert config.fairness.decision.top_k is None and config.fairness.reference == {}
    assert audit_rule(config, 10_000) == (None, config.capacity_k)
    assert audit_rule(config, 50) == (None, 50)


def test_fairness_section_changes_the_config_hash() -> None:
    raw = _raw()
    raw["fairness"]["thresholds"]["tpr"] = 0.2
    assert parse_experiment(raw, "a.yaml").config_hash() != parse_experiment(
        _raw(), "b.yaml").config_hash()


def _edit(path: str, value: object) -> Callable[[dict], None]:
    def apply(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw["fairness"]
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return apply


@pytest.mark.parametrize(("edit", "expected"), [
    (_edit("reference.disability", "True"),
     "key 'fairness.reference.disability': 'disability' is not in sensitive_attributes"),
    (_edit("reference.origin", "dansk"),
     "key 'fairness.reference.origin': 'dansk' is not a value of origin; choose one of danish"),
    (_edit("reference.shoe", "42"), "section 'fairness', key 'fairness.reference.shoe"),
    (_edit("mitigation.attribute", "disability"),
     "key 'fairness.mitigation.attribute': 'disability' is not in sensitive_attributes"),
    (_edit("mitigation.criteria", ["equal_luck"]),
     "section 'fairness', key 'fairness.mitigation.criteria[0]'"),
    (_edit("decision", {"top_k": 10, "threshold": 0.3}),
     "key 'fairness.decision': Value error, give either top_k or threshold, not both"),
    (_edit("thresholds.tpr_gap", 0.1),
     "key 'fairness.thresholds.tpr_gap': is not a known key"),
    (_edit("thresholds.fpr", 0), "key 'fairness.thresholds.fpr'"),
    (_edit("n_boot", 3), "key 'fairness.n_boot'"),
])
def test_fairness_section_errors_name_section_and_key(edit: Callable[[dict], None],
                                                      expected: str) -> None:
    raw = _raw()
    edit(raw)
    with pytest.raises(InputError, match=r"^exp\.yaml: ") as error:
        parse_experiment(raw, "exp.yaml")
    assert expected in str(error.value)


def test_mitigation_can_be_switched_off() -> None:
    raw = _raw("long_term_benefit")
    raw["fairness"]["mitigation"]["attribute"] = None
    raw["fairness"]["proxies"] = False
    config = parse_experiment(raw, "x.yaml")
    assert config.fairness.mitigation.attribute is None and not config.fairness.proxies
