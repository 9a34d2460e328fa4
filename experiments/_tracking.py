"""Where MLflow tracks runs: a SQLite file under the project's data folder by default, a
tracking server (PostgreSQL backend) in production."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

DATA_ENV = "OVERBLIK_DATA"


def data_dir() -> Path:
    """The project's (git-ignored) data folder: ``$OVERBLIK_DATA`` or ``./data``."""
    return Path(os.environ.get(DATA_ENV, "data")).resolve()


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<data>/mlflow.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


def use_tracking(uri: str | None) -> str:
    """Point MLflow at ``uri`` (or the default) and return it."""
    resolved = uri or default_tracking_uri()
    mlflow.set_tracking_uri(resolved)
    mlflow.set_registry_uri(resolved)
    return resolved


def experiment_id(name: str) -> str:
    """The MLflow experiment of that name, created with artifacts under the data folder."""
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    artifacts = data_dir() / "mlartifacts" / name
    artifacts.mkdir(parents=True, exist_ok=True)
    return str(mlflow.create_experiment(name, artifact_location=artifacts.as_uri()))


def registered_model_name(experiment: str) -> str:
    """The registry name of an experiment's risk model."""
    return f"overblik-{experiment.replace('_', '-')}"


def resume_run(run_id: str) -> mlflow.ActiveRun:
    """Reopen a finished run to log more into it.

    The run's own experiment is made active first: MLflow refuses to resume a run of another
    experiment than the one a previous ``set_experiment`` in this process left active.
    """
    run = mlflow.get_run(run_id)
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    return mlflow.start_run(run_id=run_id)
