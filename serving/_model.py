"""The model the service serves: the aliased registry version, checked before anything starts.

:func:`load_served_model` resolves ``name@alias`` in the MLflow registry, refuses a version
the ethics board has not approved, loads the estimator and its feature list, reads the run's
resolved experiment config, and checks that all three agree (same features, same order, same
config hash as the version's tag); the version's other MLflow files (``MLmodel``, the pyfunc,
its environment) must be intact and load (:mod:`overblik.serving._model_files`). Any failure
is one :class:`StartupError` that says what is wrong and what to do: the service never starts
half-working.

A version trained with an ``effects:`` section also carries its effect models
(``artifacts/effects.joblib``, an :class:`~overblik.experiments._effects_model.EffectsModel`):
they must be readable and fitted on the risk model's features. A version without the file
serves scores only (``ServedModel.effects`` is None; ``/recommend`` and ``/allocate`` say how
to get them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from overblik.experiments._approval import Approval
from overblik.experiments._config import ExperimentConfig
from overblik.experiments._effects_model import EFFECTS_FILE, EffectsModel
from overblik.experiments._tracking import run_artifact
from overblik.experiments._version_files import files_digest, version_folder
from overblik.features._errors import InputError
from overblik.features._feature_spec import FeatureDef, expand, parse_feature_spec
from overblik.models._estimators import LightGBMRisk
from overblik.serving._model_files import model_files_problem

__all__ = ["ServedModel", "StartupError", "load_served_model"]

_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "precision_at_k", "recall_at_k", "base_rate")


class StartupError(InputError):
    """The service cannot start: the message says why and how to fix it."""


@dataclass(frozen=True)
class ServedModel:
    """An approved, loaded and cross-checked model version."""

    name: str
    version: str
    alias: str
    run_id: str
    config: ExperimentConfig
    features: tuple[FeatureDef, ...]
    estimator: LightGBMRisk
    approval: Approval
    metrics: dict[str, float]
    demo_data: bool
    effects: EffectsModel | None = None
    fairness_passed: bool | None = None  # the audit verdict the board reviewed (None: none)
    refusal: str | None = None  # why the gate is closed (loaded with require_approval=False)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def _fail(name: str, version: str | None, message: str) -> StartupError:
    which = f"{name} version {version}" if version else name
    return StartupError(f"cannot serve {which}: {message}")


def _version(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models()
                       if m.name.startswith("overblik-"))
        raise _fail(name, None, "no such registered model in the MLflow registry; train it "
                    "with `overblik train` (registered: "
                    f"{', '.join(known) or 'none'})") from None
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        raise _fail(name, None, f"no version has the alias '{alias}'; the ethics board "
                    "approves a version (`overblik review`) and `overblik promote` makes it "
                    "the champion") from None


def _load_estimator(name: str, version: str, folder: Path) -> LightGBMRisk:
    import joblib

    path = folder / "estimator.joblib"
    if not path.is_file():
        raise _fail(name, version, f"the model file {path} is missing; register the model "
                    "again with `overblik train`")
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # a corrupt pickle raises anything from EOFError to KeyError
        raise _fail(name, version, f"the model file {path} is corrupt ({type(exc).__name__}); "
                    "register the model again with `overblik train`") from None
    if not isinstance(estimator, LightGBMRisk) or not hasattr(estimator, "booster_"):
        raise _fail(name, version, f"{path} holds a {type(estimator).__name__}, not a fitted "
                    "LightGBMRisk; the service explains LightGBM models only")
    return estimator


def _load_features(name: str, version: str, folder: Path) -> tuple[FeatureDef, ...]:
    path = folder / "features.json"
    if not path.is_file():
        raise _fail(name, version, f"the feature list {path} is missing; register the model "
                    "again with `overblik train`")
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return tuple(FeatureDef(**row) for row in rows)
    except (ValueError, TypeError) as exc:
        raise _fail(name, version, f"the feature list {path} is corrupt ({exc})") from None


def _load_effects(name: str, version: str, folder: Path, features: tuple[FeatureDef, ...]
                  ) -> EffectsModel | None:
    """The version's effect models, None when it was trained without an effects section."""
    path = folder / EFFECTS_FILE
    if not path.is_file():
        return None
    try:
        effects = EffectsModel.load(path)
    except Exception as exc:  # a corrupt pickle raises anything from EOFError to KeyError
        raise _fail(name, version, f"the effect models {path} are corrupt "
                    f"({type(exc).__name__}); register the model again with `overblik train`"
                    ) from None
    names = tuple(f.name for f in features)
    if tuple(effects.feature_names) != names:
        raise _fail(name, version, f"the effect models {path} were fitted on other features "
                    f"than the risk model ({len(effects.feature_names)} vs {len(names)} "
                    "columns); the model files do not belong together: register the model "
                    "again with `overblik train`")
    sizes = {len(effects.programmes), len(effects.costs), len(effects.places)}
    if not effects.programmes or len(sizes) != 1:
        raise _fail(name, version, f"the effect models {path} list {len(effects.programmes)} "
                    f"programmes with {len(effects.costs)} costs and {len(effects.places)} "
                    "places; register the model again with `overblik train`")
    return effects


def _load_config(name: str, version: str, run_id: str) -> ExperimentConfig:
    from mlflow.exceptions import MlflowException
    from pydantic import ValidationError

    try:
        with run_artifact(run_id, "config/resolved.json") as resolved:
            raw = json.loads(resolved.read_text(encoding="utf-8"))
    except (MlflowException, OSError, ValueError) as exc:
        raise _fail(name, version, f"the run {run_id} has no readable config/resolved.json "
                    f"({type(exc).__name__})") from None
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise _fail(name, version, f"the run's config/resolved.json does not fit this version "
                    f"of overblik ({where}: {err['msg']}); retrain the experiment with "
                    "`overblik train`") from None


def _check_agree(name: str, version: str, estimator: LightGBMRisk,
                 features: tuple[FeatureDef, ...], config: ExperimentConfig,
                 tag_hash: str | None) -> None:
    names = [f.name for f in features]
    fitted = [str(n) for n in getattr(estimator, "feature_names_in_", [])]
    if fitted != names:
        raise _fail(name, version, "the estimator was fitted on other features than its "
                    f"feature list names ({len(fitted)} vs {len(names)} columns); the model "
                    "files do not belong together: register the model again")
    spec_names = [f.name for f in expand(parse_feature_spec(config.features))]
    if spec_names != names:
        raise _fail(name, version, "the run's experiment config describes other features than "
                    "the model has; the version and its run do not belong together")
    if tag_hash is not None and config.config_hash() != tag_hash:
        raise _fail(name, version, f"the run's config hashes to {config.config_hash()} but the "
                    f"version is tagged {tag_hash}")


@contextmanager
def _model_folder(client: Any, name: str, version: str) -> Iterator[Path]:
    """The version's files for the load (:func:`version_folder`), or a StartupError.

    The service keeps only what it read into memory (estimator, feature list, effect models)
    and never opens the files again, so a download need not outlive the load.
    """
    with ExitStack() as stack:
        try:
            root = stack.enter_context(version_folder(client, name, version))
        except InputError as exc:  # only reaching the files: errors of the load pass
            raise _fail(name, version, str(exc)) from None
        yield root


def load_served_model(name: str, alias: str, *, tracking_uri: str,
                      require_approval: bool = True) -> ServedModel:
    """Load ``name@alias`` from the registry, approved and consistent, or raise.

    Parameters
    ----------
    name
        Registered model name (``overblik-<experiment>``).
    alias
        Registry alias, usually ``champion``.
    tracking_uri
        MLflow tracking and registry URI.
    require_approval
        Refuse versions the ethics board has not approved (the service always does;
        ``overblik profiles`` does not need it).

    Raises
    ------
    StartupError
        Saying what is wrong (no such model or alias, not approved, files missing or
        corrupt, files that do not belong together) and what to do. No effects file is
        not an error (``effects`` is None) unless the version's MLmodel names one; a
        corrupt or mismatched one is.
    """
    import mlflow

    from overblik.experiments._tracking import use_tracking

    try:  # an existing registry only: MLflow would create an empty database at a typo
        use_tracking(tracking_uri, must_exist=True)
    except InputError as exc:
        raise StartupError(str(exc)) from None
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    mv = _version(client, name, alias)
    version = str(mv.version)
    from overblik.experiments._review import gate

    with _model_folder(client, name, version) as root:
        try:  # the same gate as `overblik promote`: what may not be champion does not serve
            verdict = gate(mv, client, files_sha256=files_digest(root))
        except InputError as exc:  # the board's record cannot be read
            raise _fail(name, version, str(exc)) from None
        if require_approval and verdict.refusal is not None:
            raise _fail(name, version, f"{verdict.refusal}; nothing serves without the ethics "
                        "board's approval")
        approval = verdict.approval
        if approval is None:  # profiles only: a placeholder record, never served
            approval = Approval(decision="rejected", by="", reason="not reviewed", at="",
                                overrides_fairness=False)
        # Read only once the gate is open: the files are what the board reviewed.
        folder = root / "artifacts"
        estimator = _load_estimator(name, version, folder)
        features = _load_features(name, version, folder)
        config = _load_config(name, version, mv.run_id)
        _check_agree(name, version, estimator, features, config,
                     mv.tags.get("overblik.config_hash"))
        effects = _load_effects(name, version, folder, features)
        problem = model_files_problem(root)  # MLmodel, the pyfunc and its environment files
        if problem is not None:
            raise _fail(name, version, f"{problem}; register the model again with `overblik "
                        "train`")
    run = client.get_run(mv.run_id)
    metrics = {m: float(run.data.metrics[f"test_lightgbm_{m}"]) for m in _METRICS
               if f"test_lightgbm_{m}" in run.data.metrics}
    return ServedModel(name=name, version=version, alias=alias, run_id=mv.run_id, config=config,
                       features=features, estimator=estimator, approval=approval,
                       metrics=metrics,
                       demo_data=run.data.tags.get("overblik.demo_data") == "true",
                       effects=effects, fairness_passed=verdict.fairness_passed,
                       refusal=verdict.refusal)
