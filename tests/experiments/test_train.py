"""`overblik train` end to end on a small synthetic municipality, with real MLflow."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from overblik.experiments._config import ExperimentConfig, experiments_dir, load_experiment
from overblik.experiments._oracle import compare_with_truth
from overblik.experiments._train import CHALLENGER, MODEL_NAMES, TrainResult, train
from tests.services import fresh_postgres_database


def _small(name: str) -> ExperimentConfig:
    """The shipped experiment with a smaller model and a light fairness step.

    These tests are about training; the full fairness step (both mitigations, 1,000
    resamples) is tested in test_fairness_run.py.
    """
    config = load_experiment(experiments_dir() / f"{name}.yaml")
    lgb = config.models.lightgbm.model_copy(update={"n_estimators": 150})
    mitigation = config.fairness.mitigation.model_copy(
        update={"methods": ("threshold_optimizer",), "max_train_rows": 1500})
    fairness = config.fairness.model_copy(update={"n_boot": 200, "mitigation": mitigation})
    return config.model_copy(update={
        "models": config.models.model_copy(update={"lightgbm": lgb}), "fairness": fairness})


@pytest.fixture(scope="module")
def sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


class _OpenRecorder:
    """Records every file path the process opens (audit hook: cannot be bypassed by
    pandas/pyarrow, which open files through Python's io or os.open)."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.active = False

    def __call__(self, event: str, args: tuple) -> None:
        if self.active and event in ("open", "os.listdir", "os.scandir") and args:
            self.paths.append(str(args[0]))


_RECORDER = _OpenRecorder()
sys.addaudithook(_RECORDER)


@pytest.fixture(scope="module")
def placement_run(municipality: Path, sqlite_uri: str) -> Iterator[TrainResult]:
    _RECORDER.paths.clear()
    _RECORDER.active = True
    try:
        result = train(_small("child_placement"), clean=municipality / "clean",
                       tracking_uri=sqlite_uri)
    finally:
        _RECORDER.active = False
    yield result


def test_an_accepted_short_history_is_not_warned_about(placement_run: TrainResult) -> None:
    """The shipped experiment accepts the shorter history of its 2022 dates: no warning,
    but the model card tells the ethics board, in both languages."""
    assert placement_run.warnings == ()
    mlflow.set_tracking_uri(placement_run.tracking_uri)
    card = mlflow.artifacts.load_dict(f"runs:/{placement_run.run_id}/fairness/model_card.json")
    (short,) = [b for b in card["limitations"] if "2022-10-01" in b["en"]]
    assert short["en"] == (
        "The earliest 4 of 13 as-of dates (2022-01-01 to 2022-10-01) see less history than "
        "the model's longest window (730 days), because the data begin on 2021-01-01: the "
        "features cover less there than at later dates and at scoring. The experiment "
        "accepts this (as_of.accept_short_history).")
    assert short["da"].startswith("De 4 tidligste af 13 opgørelsesdatoer (2022-01-01 til "
                                  "2022-10-01) ser kortere historik")
    english = mlflow.artifacts.load_text(
        f"runs:/{placement_run.run_id}/fairness/model_card_en.md")
    assert "The earliest 4 of 13 as-of dates" in english  # the card the board reads


def test_training_never_opens_truth(placement_run: TrainResult, municipality: Path) -> None:
    opened = list(_RECORDER.paths)
    assert any("clean" in p for p in opened), "the recorder saw no data being read"
    truth = str(municipality / "m" / "truth")
    assert not [p for p in opened if p.startswith(truth) or "truth" in Path(p).parts]


def test_run_has_config_hash_fingerprint_metrics_and_plots(placement_run: TrainResult,
                                                           sqlite_uri: str) -> None:
    mlflow.set_tracking_uri(sqlite_uri)
    run = mlflow.get_run(placement_run.run_id)
    tags = run.data.tags
    assert tags["overblik.config_hash"] == _small("child_placement").config_hash()
    assert len(tags["overblik.data_fingerprint"]) >= 12
    assert tags["overblik.demo_data"] == "true"
    for name in MODEL_NAMES:
        for metric in ("roc_auc", "pr_auc", "brier", "ece", "precision_at_k", "recall_at_k"):
            value = run.data.metrics[f"test_{name}_{metric}"]
            assert 0.0 <= value <= 1.0
    client = mlflow.MlflowClient()
    artifacts = {a.path for folder in ("plots", "features", "config", "metrics", "predictions")
                 for a in client.list_artifacts(placement_run.run_id, folder)}
    for expected in ("plots/calibration.png", "plots/precision_at_k.png",
                     "plots/feature_importance.png", "features/features.csv",
                     "config/experiment.yaml", "metrics/per_split.csv"):
        assert expected in artifacts
    features = pd.read_csv(mlflow.artifacts.download_artifacts(
        run_id=placement_run.run_id, artifact_path="features/features.csv"))
    assert features["description_da"].str.len().min() > 5
    assert features["description_en"].str.len().min() > 5
    assert placement_run.splits and len(placement_run.splits) >= 2


def test_splits_keep_the_label_window_out_of_the_test_period(placement_run: TrainResult
                                                             ) -> None:
    horizon = pd.Timedelta(days=_small("child_placement").label.horizon_days)
    for result in placement_run.splits:
        assert max(result.split.train_as_of) + horizon <= result.split.test_as_of


def test_registered_challenger_returns_probabilities(placement_run: TrainResult,
                                                     municipality: Path,
                                                     sqlite_uri: str) -> None:
    mlflow.set_tracking_uri(sqlite_uri)
    client = mlflow.MlflowClient()
    version = client.get_model_version_by_alias(placement_run.model_name, CHALLENGER)
    assert str(version.version) == placement_run.model_version
    model = mlflow.pyfunc.load_model(f"models:/{placement_run.model_name}@{CHALLENGER}")
    preds = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=placement_run.run_id, artifact_path="predictions/test_predictions.parquet"))
    from overblik.experiments._train import build_dataset
    from overblik.features._tables import EventTables

    data = build_dataset(_small("child_placement"), EventTables.load(municipality / "clean"))
    out = model.predict(data.X.head(200))
    proba = np.asarray(out["probability"])
    assert proba.shape == (200,)
    assert ((proba >= 0) & (proba <= 1)).all()
    assert len(np.unique(proba)) > 5  # probabilities, not class labels
    assert len(preds) > 0
    # No rows: no probabilities; an infinite value: one error naming row and column.
    assert len(model.predict(data.X.head(0))) == 0
    broken = data.X.head(3).copy()
    broken.iloc[1, 0] = np.inf
    with pytest.raises(Exception, match=f"row 1, column {broken.columns[0]} is infinite"):
        model.predict(broken)


def test_oracle_comparison_is_logged(placement_run: TrainResult, municipality: Path,
                                     sqlite_uri: str) -> None:
    result = compare_with_truth(placement_run.run_id, municipality / "m" / "truth",
                                tracking_uri=sqlite_uri)
    assert result.rows_matched >= 0.95 * result.rows_test
    assert 0.6 < result.oracle_roc_auc <= 1.0
    run = mlflow.get_run(placement_run.run_id)
    assert run.data.metrics["oracle_roc_auc"] == pytest.approx(result.oracle_roc_auc)
    # The effect models against the true individual effects of the same test rows.
    effects = result.effects
    assert effects is not None and effects.rows > 100
    assert 0.0 < effects.pehe["family_support"] < 1.0
    assert effects.allocation_share["oracle"] == pytest.approx(1.0)
    for policy in ("effect", "risk", "random"):
        assert effects.allocation_share[policy] <= 1.0 + 1e-9
    assert run.data.metrics["oracle_effects_family_support_pehe"] == pytest.approx(
        effects.pehe["family_support"])


def test_effect_models_travel_with_the_registered_version(placement_run: TrainResult,
                                                          municipality: Path,
                                                          sqlite_uri: str) -> None:
    """The effects step: metrics, plots and tables in the run; the model in the version."""
    from overblik.experiments._effects_model import EFFECTS_FILE, EffectsModel
    from overblik.experiments._train import build_dataset
    from overblik.features._tables import EventTables

    mlflow.set_tracking_uri(sqlite_uri)
    metrics = mlflow.get_run(placement_run.run_id).data.metrics
    assert placement_run.effects is not None
    ate = metrics["effects_family_support_ate"]
    assert metrics["effects_family_support_ate_ci_low"] < ate
    assert ate < metrics["effects_family_support_ate_ci_high"]
    assert metrics["effects_family_support_n_treated"] >= 20
    assert 0.0 <= metrics["effects_family_support_trimmed_share"] < 1.0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(placement_run.run_id,
                                                                      "effects")}
    for name in ("summary.json", "qini_family_support.png", "overlap_family_support.png",
                 "test_effects.parquet"):
        assert f"effects/{name}" in artifacts
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=placement_run.run_id, artifact_path="effects/test_effects.parquet"))
    assert test["as_of"].nunique() == 1
    assert (test["ci_low_family_support"] <= test["effect_family_support"]).all()
    # label is y of the risk model's test predictions (the column was y and held 1 - y).
    preds = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=placement_run.run_id, artifact_path="predictions/test_predictions.parquet"))
    both = test.merge(preds[["person_id", "as_of", "y"]], on=["person_id", "as_of"])
    assert len(both) == len(test) and (both["label"] == both["y"]).all() and both["y"].any()
    assert "y" not in test.columns and test["extrapolated_family_support"].dtype == bool
    root = Path(mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{placement_run.model_name}/{placement_run.model_version}"))
    model = EffectsModel.load(root / "artifacts" / EFFECTS_FILE)
    assert model.programmes == ("family_support",)
    learner = model.effects.learners_["family_support"]
    assert learner.risk_stage and len(learner.risk_stages_) == config_effects_bootstrap(
        "child_placement")
    data = build_dataset(_small("child_placement"), EventTables.load(municipality / "clean"))
    assert list(model.feature_names) == list(data.X.columns)
    effect = model.effect(data.X.head(50))
    assert effect.shape == (50, 1) and np.isfinite(effect).all()
    reasons = model.contributions(data.X.head(50))["family_support"]
    np.testing.assert_allclose(reasons.sum(axis=1), effect[:, 0], atol=1e-9)
    places = model.allocate(effect, places=[10])
    assert int(places.places_used.sum()) <= 10
    # Family support is evaluated on the test date: the policies are compared there.
    summary = mlflow.artifacts.load_dict(f"runs:/{placement_run.run_id}/effects/summary.json")
    # Judged by imputed effects (held-out DR scores of the untreated pool favoured risk):
    # the effect policy's benefit is the learner's treated outcome minus the observed one,
    # summed over the citizens it placed.
    assert summary["allocation"]["judged_by"] == "imputed"
    keys = data.rows[["person_id", "as_of"]].astype({"person_id": str}).assign(
        as_of=lambda f: pd.to_datetime(f["as_of"]).astype("datetime64[ns]"),
        position=np.arange(len(data.rows)))
    placed = test[test["allocated"] != ""].astype({"person_id": str}).assign(
        as_of=lambda f: pd.to_datetime(f["as_of"]).astype("datetime64[ns]")).merge(
        keys, on=["person_id", "as_of"])
    assert len(placed) == int((test["allocated"] != "").sum()) > 0
    imputed = learner.treated_outcome(data.X.iloc[placed["position"].to_numpy()]) - (
        1 - placed["label"].to_numpy())
    by_effect = next(r for r in summary["allocation"]["policies"] if r["policy"] == "effect")
    assert by_effect["places"] == len(placed)
    assert by_effect["benefit"] == pytest.approx(float(imputed.sum()), rel=1e-6)
    # What cross-validation chose for the effect model, for the analyst comparing runs.
    assert summary["programmes"]["family_support"]["effect_model"] == {
        "risk_basis": learner.risk_basis_, "risk_penalty": learner.risk_penalty_,
        "feature_stage_rounds": learner.final_rounds_}
    assert {r["policy"] for r in summary["allocation"]["policies"]} == {
        "effect", "risk", "random"}
    # The warnings the console prints are the run's, and hold every overlap warning of the
    # learner (train kept only a trimmed share above 10 %, and dropped e.g. "only 13
    # treated rows remain after trimming").
    assert list(placement_run.effects_warnings) == summary["warnings"]
    assert model.effects.overlap_["family_support"].warnings  # the small data overlap poorly
    for w in model.effects.overlap_["family_support"].warnings:
        assert f"family_support: {w.replace(' for treatment', '')}" in summary["warnings"]
    assert "effects_family_support_test_autoc" in metrics
    # The board approves the effect models with the risk model: the card states them, with
    # the numbers of the run (it said nothing of them).
    card = json.loads(mlflow.artifacts.load_text(
        f"runs:/{placement_run.run_id}/fairness/model_card.json"))
    [stated] = card["effects"]
    ate = summary["programmes"]["family_support"]["ate"]
    assert stated["programme"] == "family_support"
    assert (stated["ate"], stated["ci_low"], stated["ci_high"]) == pytest.approx(
        (ate["estimate"], ate["ci_low"], ate["ci_high"]))
    assert stated["trimmed_share"] == pytest.approx(
        summary["programmes"]["family_support"]["trimmed_share"])
    assert {p["policy"]: p["benefit"] for p in card["allocation"]} == pytest.approx(
        {r["policy"]: r["benefit"] for r in summary["allocation"]["policies"]})
    assert card["allocation_judged_by"] == "imputed"
    for language, heading in (("da", "## Indsatsernes effekt (estimeret)"),
                              ("en", "## Programme effects (estimated)")):
        md = mlflow.artifacts.load_text(
            f"runs:/{placement_run.run_id}/fairness/model_card_{language}.md")
        assert heading in md and "(family_support):**" in md


def config_effects_bootstrap(name: str) -> int:
    effects = _small(name).effects
    assert effects is not None
    return effects.n_bootstrap


def test_benefit_experiment_trains_with_effects_and_allocation(municipality: Path,
                                                               sqlite_uri: str) -> None:
    """Three programmes; their places allocated with the access constraint on origin."""
    config = _small("long_term_benefit")
    assert config.effects is not None and config.effects.access is not None
    result = train(config, clean=municipality / "clean", tracking_uri=sqlite_uri)
    final = result.final
    assert final["lightgbm"].roc_auc > final["heuristic"].roc_auc
    assert 0.2 < final["lightgbm"].base_rate < 0.6
    assert result.effects is not None
    for programme in ("mentor", "debt_counselling", "job_course"):
        assert f"effects_{programme}_ate" in result.effects
    mlflow.set_tracking_uri(sqlite_uri)
    summary = mlflow.artifacts.load_dict(
        f"runs:/{result.run_id}/effects/summary.json")
    assert set(summary["programmes"]) == {"mentor", "debt_counselling", "job_course"}
    for entry in summary["programmes"].values():
        assert entry["effect_model"]["risk_basis"] in (None, "margin", "probability")
        assert entry["effect_model"]["feature_stage_rounds"] >= 0
    test = pd.read_parquet(mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="effects/test_effects.parquet"))
    # Only citizens without a programme at the test date are offered a place.
    assert (test.loc[test["allocated"] != "", "programme"] == "none").all()
    pool = test[test["programme"] == "none"]
    assert (pool["allocated"] != "").any()
    for programme, entry in config.effects.programmes.items():
        chosen = pool["allocated"] == programme
        assert chosen.sum() <= entry.places
        # A place goes only to a citizen the programme is expected to help.
        assert (pool.loc[chosen, f"effect_{programme}"] > 0).all()
    prices = summary["price_of_access_constraint"]
    assert prices["price_max_access_gap"] >= -1e-9
    assert prices["max_access_gap"] <= prices["unconstrained"] + 1e-9
    # In MLflow the benefits say they are benefits (allocation_max_access_gap held the
    # benefit under the constraint and read as a gap).
    assert result.effects["allocation_benefit_with_max_access_gap"] == pytest.approx(
        prices["max_access_gap"])
    assert result.effects["allocation_benefit_unconstrained"] == pytest.approx(
        prices["unconstrained"])
    assert result.effects["allocation_price_max_access_gap"] == pytest.approx(
        prices["price_max_access_gap"])
    assert "allocation_max_access_gap" not in result.effects
    report = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="fairness/report.html")
    html = Path(report).read_text(encoding="utf-8")
    assert "Who gets the places, and who needs them" in html
    assert "Hvem får pladserne, og hvem har behov" in html


@pytest.mark.postgres
def test_postgresql_tracking_backend(municipality: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path))
    config = _small("child_placement")
    # Without the shipped acceptance, the short history of the 2022 dates is warned about
    # and the warning kept with the run.
    config = config.model_copy(update={"as_of": config.as_of.model_copy(
        update={"accept_short_history": False})})
    with fresh_postgres_database() as url:
        result = train(config, clean=municipality / "clean", tracking_uri=url)
        mlflow.set_tracking_uri(url)
        (warning,) = result.warnings
        assert "reaches back before the data begins (2021-01-01) at 4 of 13" in warning
        logged = mlflow.artifacts.load_text(f"runs:/{result.run_id}/warnings.txt")
        assert logged == warning + "\n"
        version = mlflow.MlflowClient().get_model_version_by_alias(result.model_name,
                                                                   CHALLENGER)
        assert str(version.version) == result.model_version
        run = mlflow.get_run(result.run_id)
        assert run.data.tags["overblik.config_hash"]
        _serve_from_the_production_registry(result, municipality, url, tmp_path)


def _serve_from_the_production_registry(result: TrainResult, municipality: Path,
                                        tracking: str, tmp_path: Path) -> None:
    """The production path after training, every store on PostgreSQL: the board reviews,
    the version is promoted, the nightly profiles are built from the registry, and the
    service checks out against the champion with its audit log and keys on PostgreSQL."""
    from typer.testing import CliRunner

    from overblik.experiments._cli import app

    runner = CliRunner()
    registry = ["--tracking-uri", tracking]

    def ok(*args: str) -> str:
        answer = runner.invoke(app, [*args])
        assert answer.exit_code == 0, answer.output
        return " ".join(answer.output.split())

    name = result.model_name
    ok("review", name, result.model_version, "--approve", "--override-fairness", "--by",
       "Etisk råd", "--reason", "test of the production path", *registry)
    assert ("recorded in table overblik_review_record of postgresql://"
            in ok("promote", name, result.model_version, *registry))
    from overblik.experiments._approval import reviews_path
    from overblik.experiments._review_log import ReviewLog

    # The board's record is in the registry's PostgreSQL database, not on this machine.
    assert [(r.event, r.registry) for r in ReviewLog(tracking).records(name)] == [
        ("review", tracking), ("promotion", tracking)]
    assert not reviews_path().exists()
    listed = " ".join(runner.invoke(app, ["reviews", name, *registry],
                                    env={"COLUMNS": "200"}).output.split())
    assert "test of the production path" in listed
    assert "promoted to champion (before: none)" in listed
    store = tmp_path / "profiles.parquet"
    ok("profiles", "--as-of", "2025-06-01", "--clean", str(municipality / "clean"),
       "--model", name, "--out", str(store), *registry)
    with fresh_postgres_database() as audit:
        ok("keys", "create", "--role", "caseworker-system", "--name", "Nexus", "--store", audit)
        said = ok("serve", "--check", "--model", name, "--profiles", str(store), "--store",
                  audit, "--demo-key", *registry)
    assert f"{name} version {result.model_version} (champion), approved by Etisk råd" in said
    assert "store postgresql" in said and "no active caseworker-system key" not in said
