"""`overblik` keeps MLflow's output to what a user can act on: no INFO lines, no download
bars, and not the warnings every training run would print although nothing is wrong."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from overblik.experiments._mlflow_output import EXPECTED_MLFLOW_WARNINGS, quiet_mlflow


class _Echo(mlflow.pyfunc.PythonModel):
    def predict(self, context: object, model_input: pd.DataFrame) -> pd.DataFrame:
        return model_input


class _Seen(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _log_a_model(tmp_path: Path) -> list[str]:
    """MLflow's log messages while logging a Python-object pyfunc (as `overblik train` does)."""
    seen = _Seen()
    logger = logging.getLogger("mlflow")
    logger.addHandler(seen)
    try:
        mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
        # Its own experiment: the active one an earlier test set lives in another store.
        experiment = mlflow.MlflowClient().create_experiment("output")
        with mlflow.start_run(experiment_id=experiment):
            mlflow.pyfunc.log_model(name="echo", python_model=_Echo(), pip_requirements=[])
    finally:
        logger.removeHandler(seen)
    return seen.messages


def test_expected_warnings_are_dropped_and_others_kept(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    for name, _ in EXPECTED_MLFLOW_WARNINGS:  # whatever an earlier call added
        monkeypatch.setattr(logging.getLogger(name), "filters", [])
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "true")  # the user's choice
    pickled = "Passing a Python object as `python_model`"
    assert any(m.startswith(pickled) for m in _log_a_model(tmp_path / "before"))
    quiet_mlflow()
    quiet_mlflow()  # twice: one filter each
    assert not any(m.startswith(pickled) for m in _log_a_model(tmp_path / "after"))
    for name, prefix in EXPECTED_MLFLOW_WARNINGS:
        logger = logging.getLogger(name)
        assert len(logger.filters) == 1
        assert not logger.filters[0].filter(logger.makeRecord(
            name, logging.WARNING, __file__, 1, prefix + " and more", None, None))
        assert logger.filters[0].filter(logger.makeRecord(
            name, logging.WARNING, __file__, 1, "Something else went wrong", None, None))
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
    assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "true"
