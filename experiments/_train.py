"""``overblik train``: cohort → labels → profiles → temporal validation → MLflow.

Training reads only the ingested (clean) data named by the experiment; it never opens the
synthetic municipality's ``truth/`` (a test proves it). Comparison with the truth is a
separate step (:mod:`overblik.experiments._oracle`). The registered model is audited for
fairness inside the same run (:mod:`overblik.experiments._fairness_run`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

import joblib
import matplotlib
import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow.models import infer_signature
from sklearn.base import BaseEstimator

from overblik.experiments._config import ExperimentConfig
from overblik.experiments._effects_run import EffectsRun, log_effects, run_effects
from overblik.experiments._fairness_run import (
    FairnessRun,
    ModelFacts,
    log_fairness,
    run_fairness,
)
from overblik.experiments._risk_pyfunc import RiskPyfunc
from overblik.experiments._tracking import experiment_id, registered_model_name, use_tracking
from overblik.experiments._trainable import (
    check_trainable,
    describe_short_history,
    short_history,
)
from overblik.fairness._card import CardEffects
from overblik.fairness._places import PlacesReport
from overblik.features._cohorts import cohort, label
from overblik.features._feature_spec import FeatureDef, parse_feature_spec
from overblik.features._profiles import build_profiles
from overblik.features._tables import EventTables
from overblik.models import (
    HeuristicRisk,
    LightGBMRisk,
    LogisticRisk,
    RiskMetrics,
    TemporalSplit,
    TemporalSplitter,
    plot_calibration,
    plot_feature_importance,
    plot_precision_at_k,
    risk_metrics,
    split_masks,
)

matplotlib.use("Agg")

ProgressFn = Callable[[str, int, int], None]
MODEL_NAMES: tuple[str, ...] = ("lightgbm", "logistic", "heuristic")
REGISTERED = "lightgbm"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class Dataset:
    """One experiment's rows: (person, as-of) with features, label and sensitive attributes."""

    rows: pd.DataFrame  # person_id, as_of
    X: pd.DataFrame
    y: np.ndarray
    sensitive: pd.DataFrame
    features: list[FeatureDef]


@dataclass(frozen=True)
class SplitResult:
    """Metrics of every model on one temporal split."""

    split: TemporalSplit
    metrics: dict[str, RiskMetrics]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and where it is tracked."""

    run_id: str
    tracking_uri: str
    model_name: str
    model_version: str
    config_hash: str
    data_fingerprint: str
    splits: list[SplitResult]
    fairness_passed: bool | None = None  # the audit's verdict (tagged overblik.fairness_passed)
    effects: dict[str, float] | None = None  # effects step: metrics (None without the section)
    effects_warnings: tuple[str, ...] = ()  # e.g. poor overlap; also in MLflow
    warnings: tuple[str, ...] = ()  # about the experiment and its data; also in MLflow

    @property
    def final(self) -> dict[str, RiskMetrics]:
        """Metrics on the latest test date (the registered model's evaluation)."""
        return self.splits[-1].metrics


def build_dataset(config: ExperimentConfig, tables: EventTables) -> Dataset:
    """Cohort, labels and point-in-time profiles for every as-of date of the experiment."""
    spec = parse_feature_spec(config.features, section="features")
    rows = cohort(tables, config.as_of.dates(), config.cohort)
    y = label(tables, rows, config.label.outcome, config.label.horizon_days).to_numpy()
    profiles = build_profiles(tables, rows, spec)
    sensitive = profiles.sensitive[list(config.sensitive_attributes)]
    return Dataset(rows=rows.reset_index(drop=True), X=profiles.X, y=y.astype(int),
                   sensitive=sensitive, features=profiles.features)


def make_models(config: ExperimentConfig) -> dict[str, BaseEstimator]:
    """Fresh, unfitted models as the experiment describes them."""
    lgb = config.models.lightgbm
    return {
        "lightgbm": LightGBMRisk(n_estimators=lgb.n_estimators, learning_rate=lgb.learning_rate,
                                 num_leaves=lgb.num_leaves,
                                 min_child_samples=lgb.min_child_samples,
                                 calibration=lgb.calibration, random_state=config.seed),
        "logistic": LogisticRisk(C=config.models.logistic.C, random_state=config.seed),
        "heuristic": HeuristicRisk(column=config.models.heuristic.column),
    }


def _fit_split(config: ExperimentConfig, data: Dataset, split: TemporalSplit
               ) -> tuple[dict[str, BaseEstimator], dict[str, np.ndarray], np.ndarray]:
    train_mask, test_mask = split_masks(data.rows["as_of"], split)
    X_train, y_train = data.X.loc[train_mask], data.y[train_mask]
    groups = data.rows.loc[train_mask, "person_id"].to_numpy()
    as_of = data.rows.loc[train_mask, "as_of"].to_numpy()
    fitted: dict[str, BaseEstimator] = {}
    scores: dict[str, np.ndarray] = {}
    for name, model in make_models(config).items():
        if name == "heuristic":
            model.fit(X_train, y_train)
        else:
            model.fit(X_train, y_train, groups=groups, as_of=as_of)
        fitted[name] = model
        scores[name] = model.predict_proba(data.X.loc[test_mask])[:, 1]
    return fitted, scores, test_mask


def _log_figure(fig: object, path: str) -> None:
    mlflow.log_figure(fig, path)
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]


def _requirements() -> list[str]:
    return [f"{p}=={version(p)}" for p in
            ("lightgbm", "scikit-learn", "pandas", "numpy", "joblib", "mlflow")]


def synthetic_example(X: pd.DataFrame) -> pd.DataFrame:
    """One row of each feature's median: the model's input example, describing no citizen.

    MLflow writes the example into every registered version (``input_example.json``,
    ``serving_input_example.json``), where anyone who can read the registry sees it: real
    rows there would be citizens' feature vectors. The medians (missing values skipped)
    keep the columns, their order and dtypes, from which the signature is inferred.

    Parameters
    ----------
    X
        The experiment's feature rows (numeric columns).

    Returns
    -------
    pandas.DataFrame
        One row with ``X``'s columns and dtypes.
    """
    example = pd.DataFrame([X.median(skipna=True)], columns=X.columns)
    for column in X.columns:
        dtype = X[column].dtype
        if not pd.api.types.is_float_dtype(dtype):
            # An integer or boolean column keeps its dtype (it is in the signature), so a
            # median between two values is rounded to one of them.
            example[column] = example[column].round()
        example[column] = example[column].astype(dtype)
    return example


def _log_model(config: ExperimentConfig, estimator: BaseEstimator, data: Dataset,
               folder: Path, effects_file: Path | None = None) -> tuple[str, str]:
    """Log the fitted LightGBM model as a pyfunc returning probabilities; register it.

    The effect models (``effects_file``), when fitted, are part of the same version: the
    ethics board approves them together and the service loads them from it.
    """
    est_path = folder / "estimator.joblib"
    joblib.dump(estimator, est_path)
    feat_path = folder / "features.json"
    pd.DataFrame([asdict(f) for f in data.features]).to_json(feat_path, orient="records",
                                                             force_ascii=False, indent=1)
    example = synthetic_example(data.X)
    out = pd.DataFrame({"probability": estimator.predict_proba(example)[:, 1]})
    name = registered_model_name(config.name)
    info = mlflow.pyfunc.log_model(
        name="risk_model",
        python_model=RiskPyfunc(),
        artifacts={"estimator": str(est_path), "features": str(feat_path),
                   **({} if effects_file is None else {"effects": str(effects_file)})},
        signature=infer_signature(example, out),
        input_example=example,
        pip_requirements=_requirements(),
        registered_model_name=name,
    )
    model_version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, CHALLENGER, model_version)
    run = mlflow.active_run()
    assert run is not None
    for key, value in {"config_hash": config.config_hash(), "run_id": run.info.run_id,
                       "experiment": config.name, "outcome": config.label.outcome}.items():
        client.set_model_version_tag(name, model_version, f"overblik.{key}", value)
    return name, model_version


def train(config: ExperimentConfig, *, clean: Path, tracking_uri: str | None = None,
          config_text: str | None = None, progress: ProgressFn | None = None,
          source: str | None = None) -> TrainResult:
    """Train, validate over time, and track an experiment in MLflow.

    Parameters
    ----------
    config
        The validated experiment.
    clean
        Folder written by ``overblik ingest``.
    tracking_uri
        MLflow tracking URI; default a SQLite file in the data folder.
    config_text
        The experiment file as written (logged next to the resolved config).
    progress
        ``progress(description, done, total)`` callback.
    source
        The experiment file, named in errors (default: the experiment's name).

    Raises
    ------
    InputError
        When the experiment does not fit the data (:func:`check_trainable`), before the
        MLflow run starts.
    """
    step = progress or (lambda *_: None)
    uri = use_tracking(tracking_uri)
    splitter = TemporalSplitter(horizon_days=config.label.horizon_days,
                                min_train_dates=config.validation.min_train_dates,
                                n_splits=config.validation.n_splits)
    splits = splitter.split(config.as_of.dates())
    total = 3 + len(splits) + 2 + (config.effects is not None)
    step("loading clean data", 0, total)
    tables = EventTables.load(clean)
    fingerprint = tables.fingerprint()
    step("cohort, labels and profiles", 1, total)
    data = build_dataset(config, tables)
    span = tables.event_span()
    check_trainable(config, source or config.name, as_of=data.rows["as_of"], y=data.y,
                    splits=splits, last_event=None if span is None else span[1])
    history = short_history(config, span=span)  # warned about here, on the card below
    notes = tuple(describe_short_history(history, config, source or config.name))
    step("temporal validation", 2, total)
    results: list[SplitResult] = []
    demo = _is_demo(clean)
    with mlflow.start_run(experiment_id=experiment_id(config.name),
                          run_name=f"{config.name}-{config.config_hash()[:8]}") as run:
        mlflow.set_tags({
            "overblik.config_hash": config.config_hash(),
            "overblik.data_fingerprint": fingerprint,
            "overblik.experiment": config.name,
            "overblik.cohort": config.cohort,
            "overblik.outcome": config.label.outcome,
            "overblik.demo_data": str(demo).lower(),
            "mlflow.note.content": config.description,
        })
        mlflow.log_params(config.flat_params())
        if notes:
            mlflow.log_text("\n".join(notes) + "\n", "warnings.txt")
        mlflow.log_metrics({"rows": float(len(data.rows)), "base_rate": float(data.y.mean()),
                            "n_features": float(len(data.features))})
        last: tuple[dict[str, BaseEstimator], dict[str, np.ndarray], np.ndarray] | None = None
        for i, split in enumerate(splits):
            step(f"split {i + 1}/{len(splits)}: test {split.test_as_of.date()}", 3 + i, total)
            fitted, scores, test_mask = _fit_split(config, data, split)
            y_test = data.y[test_mask]
            metrics = {name: risk_metrics(y_test, s, k=config.capacity_k)
                       for name, s in scores.items()}
            results.append(SplitResult(split, metrics))
            for name, m in metrics.items():
                mlflow.log_metrics({f"{name}_{k}": v for k, v in m.as_dict().items()}, step=i)
            last = (fitted, scores, test_mask)
        assert last is not None
        fitted, scores, test_mask = last
        _log_summary(results)
        effects: EffectsRun | None = None
        if config.effects is not None:
            step("intervention effects", 3 + len(splits), total)
            effects = run_effects(config, tables, results[-1].split,
                                  risk_model=fitted[REGISTERED], progress=step)
        step("logging plots and the model", total - 2, total)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _log_artifacts(config, data, results, fitted, scores, test_mask, folder,
                           config_text)
            effects_file = None if effects is None else log_effects(effects, folder)
            name, model_version = _log_model(config, fitted[REGISTERED], data, folder,
                                             effects_file)
            step("fairness audit", total - 1, total)
            facts = ModelFacts(name=name, version=model_version, run_id=run.info.run_id,
                               data_fingerprint=fingerprint, demo_data=demo,
                               test_as_of=results[-1].split.test_as_of.date(),
                               metrics=_card_metrics(results[-1]),
                               short_history=history,
                               effects=CardEffects() if effects is None else effects.card())
            try:
                audited = _fairness(config, data, results[-1], fitted[REGISTERED],
                                    scores[REGISTERED], test_mask, facts, folder, step,
                                    places=None if effects is None else effects.places)
            except BaseException:
                # A version without its audit must not stay registered: a board could
                # approve and promote it without ever seeing a fairness report.
                mlflow.MlflowClient().delete_model_version(name, model_version)
                raise
        step("done", total, total)
        return TrainResult(run_id=run.info.run_id, tracking_uri=uri, model_name=name,
                           model_version=model_version, config_hash=config.config_hash(),
                           data_fingerprint=fingerprint, splits=results,
                           fairness_passed=audited.passed,
                           effects=None if effects is None else effects.metrics,
                           effects_warnings=() if effects is None else effects.warnings,
                           warnings=notes)


def _card_metrics(final: SplitResult) -> dict[str, float]:
    m = final.metrics[REGISTERED]
    return {"test_auc": m.roc_auc, "test_ece": m.ece, "test_brier": m.brier,
            "precision_at_k": m.precision_at_k, "recall_at_k": m.recall_at_k}


def _fairness(config: ExperimentConfig, data: Dataset, final: SplitResult,
              estimator: BaseEstimator, scores: np.ndarray, test_mask: np.ndarray,
              facts: ModelFacts, folder: Path, step: ProgressFn,
              places: PlacesReport | None = None) -> FairnessRun:
    """Audit the registered model on the last split's test rows; log and tag the verdict."""
    train_mask, _ = split_masks(data.rows["as_of"], final.split)

    def progress(what: str, done: int, total: int) -> None:
        step(f"fairness {what}", done, total)

    result = run_fairness(
        config, estimator=estimator, X_train=data.X.loc[train_mask],
        y_train=data.y[train_mask], A_train=data.sensitive.loc[train_mask],
        X_test=data.X.loc[test_mask], y_test=data.y[test_mask], scores=scores,
        A_test=data.sensitive.loc[test_mask], facts=facts, places=places, progress=progress)
    log_fairness(result, model_name=facts.name, model_version=facts.version, folder=folder)
    return result


def _is_demo(clean: Path) -> bool:
    report = clean / "ingest_report.json"
    return bool(json.loads(report.read_text()).get("demo_data")) if report.exists() else False


def _log_summary(results: list[SplitResult]) -> None:
    """Final (latest test date) and mean-over-splits metrics, per model."""
    for name in MODEL_NAMES:
        final = results[-1].metrics[name].as_dict()
        mlflow.log_metrics({f"test_{name}_{k}": v for k, v in final.items()})
        means = pd.DataFrame([r.metrics[name].as_dict() for r in results]).mean()
        mlflow.log_metrics({f"mean_{name}_{k}": float(v) for k, v in means.items()})


def _log_artifacts(config: ExperimentConfig, data: Dataset, results: list[SplitResult],
                   fitted: dict[str, BaseEstimator], scores: dict[str, np.ndarray],
                   test_mask: np.ndarray, folder: Path, config_text: str | None) -> None:
    mlflow.log_dict(config.model_dump(mode="json"), "config/resolved.json")
    if config_text is not None:
        mlflow.log_text(config_text, "config/experiment.yaml")
    else:
        mlflow.log_text(yaml.safe_dump(config.model_dump(mode="json"), allow_unicode=True),
                        "config/experiment.yaml")
    features = pd.DataFrame([asdict(f) for f in data.features])
    mlflow.log_table(features, "features/features.json")
    mlflow.log_text(features.to_csv(index=False), "features/features.csv")
    table = pd.DataFrame([
        {"test_as_of": r.split.test_as_of.date().isoformat(),
         "train_as_of": ", ".join(d.date().isoformat() for d in r.split.train_as_of),
         "model": name, **m.as_dict()}
        for r in results for name, m in r.metrics.items()
    ])
    mlflow.log_text(table.to_csv(index=False), "metrics/per_split.csv")
    y_test = data.y[test_mask]
    test_rows = data.rows.loc[test_mask].reset_index(drop=True)
    preds = test_rows.assign(y=y_test, **{f"proba_{n}": s for n, s in scores.items()})
    preds = pd.concat([preds, data.sensitive.loc[test_mask].reset_index(drop=True)], axis=1)
    pred_path = folder / "test_predictions.parquet"
    preds.to_parquet(pred_path, index=False)
    mlflow.log_artifact(str(pred_path), "predictions")
    test_date = results[-1].split.test_as_of.date()
    curves = {n: (y_test, s) for n, s in scores.items()}
    _log_figure(plot_calibration(curves, title=f"Calibration, test {test_date}"),
                "plots/calibration.png")
    _log_figure(plot_precision_at_k(curves, k=config.capacity_k,
                                    title=f"Precision and recall at k, test {test_date}"),
                "plots/precision_at_k.png")
    lgb = fitted[REGISTERED]
    _log_figure(plot_feature_importance([f.name for f in data.features],
                                        list(lgb.feature_importances_),
                                        title="LightGBM feature importance (gain)"),
                "plots/feature_importance.png")
