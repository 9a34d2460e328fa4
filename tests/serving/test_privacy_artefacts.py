"""No citizen's data outside the registry: no copies of run artefacts left in the temporary
folder, no real rows in the registered model's input example.

The served run (``served``, trained once for all service tests) has every artefact at
stake: test predictions, test effects, the fairness report inputs and the resolved config.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.store.artifact.artifact_repo import ArtifactRepository
from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry
from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

from overblik.experiments._approval import CHAMPION
from overblik.experiments._oracle import compare_with_truth
from overblik.experiments._train import build_dataset
from overblik.features._tables import EventTables
from overblik.serving import load_served_model
from tests.serving._setup import Served, small_config

# What MLflow copied into mkdtemp() folders and left there (found by a privacy audit).
_ARTEFACTS = ("test_predictions.parquet", "test_effects.parquet", "report_inputs.joblib",
              "resolved.json", "estimator.joblib", "effects.joblib", "features.json")


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder as the process's temporary folder (``mkdtemp()`` and friends)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _left(folder: Path) -> list[str]:
    """Names of the audited artefacts anywhere under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name in _ARTEFACTS)


class _RemoteStore(LocalArtifactRepository):
    """A store MLflow downloads from, as from S3 or a tracking server (into ``dst_path``, or
    a ``mkdtemp()`` folder without one): ``remote:///path`` holds the files of ``path``."""

    def __init__(self, artifact_uri: str, tracking_uri: str | None = None,
                 registry_uri: str | None = None) -> None:
        super().__init__("file" + artifact_uri.removeprefix("remote"), tracking_uri,
                         registry_uri)

    download_artifacts = ArtifactRepository.download_artifacts  # a copy, never in place


def _model_folder(served: Served) -> Path:
    client = mlflow.MlflowClient(tracking_uri=served.tracking_uri,
                                 registry_uri=served.tracking_uri)
    uri = client.get_model_version_download_uri(served.model_name, served.version)
    assert uri.startswith("file:"), uri  # the tests' registry stores its files locally
    return Path(uri.removeprefix("file://"))


def test_loading_the_served_model_leaves_no_copy_behind(served: Served, scratch: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    model = load_served_model(served.model_name, CHAMPION, tracking_uri=served.tracking_uri)
    assert model.config.name and model.feature_names  # resolved.json and features were read
    assert _left(scratch) == []
    # A store that is not local (S3, a tracking server): the version is downloaded, read
    # into memory and its folder removed; the service still has everything it serves with.
    # MLflow's registry of stores by URI scheme (private; the entry is removed afterwards).
    monkeypatch.setitem(_artifact_repository_registry._registry, "remote", _RemoteStore)
    located = mlflow.MlflowClient.get_model_version_download_uri
    monkeypatch.setattr(mlflow.MlflowClient, "get_model_version_download_uri",
                        lambda self, name, version: "remote" + located(
                            self, name, version).removeprefix("file"))
    downloaded = load_served_model(served.model_name, CHAMPION,
                                   tracking_uri=served.tracking_uri)
    assert downloaded.feature_names == model.feature_names
    assert downloaded.effects is not None
    probability = downloaded.estimator.predict_proba(
        pd.DataFrame([[0.0] * len(model.feature_names)], columns=model.feature_names))
    assert probability.shape == (1, 2)
    assert _left(scratch) == [] and list(scratch.iterdir()) == []


def test_comparing_with_the_truth_leaves_no_copy_behind(served: Served, scratch: Path
                                                        ) -> None:
    """The oracle logs its metrics and the label-bias report into the served run; the
    service reads neither (only ``test_lightgbm_*``), so the other service tests are not
    affected."""
    client = mlflow.MlflowClient(tracking_uri=served.tracking_uri,
                                 registry_uri=served.tracking_uri)
    run_id = client.get_model_version(served.model_name, served.version).run_id
    result = compare_with_truth(run_id, served.root / "m" / "truth",
                                tracking_uri=served.tracking_uri)
    # Every download ran: predictions, effects and the fairness inputs (label bias).
    assert result.rows_matched > 0
    assert result.effects is not None and result.label_bias is not None
    assert _left(scratch) == [] and list(scratch.iterdir()) == []


def test_the_input_example_is_no_citizen(served: Served) -> None:
    """The registered version's input example (both files MLflow writes) holds no row of the
    training data; the signature still names every feature, in order."""
    data = build_dataset(small_config(served.root / "clean"),
                         EventTables.load(served.root / "clean"))
    root = _model_folder(served)
    mlmodel = Model.load(str(root / "MLmodel"))
    assert mlmodel.signature is not None
    assert mlmodel.signature.inputs.input_names() == list(data.X.columns)
    info = mlmodel.saved_input_example_info
    assert info is not None
    example = mlmodel.load_input_example(str(root))
    assert isinstance(example, pd.DataFrame)
    split = json.loads((root / info["serving_input_path"]).read_text())["dataframe_split"]
    serving = pd.DataFrame(split["data"], columns=split["columns"])
    for rows in (example, serving):
        assert list(rows.columns) == list(data.X.columns) and len(rows) >= 1
        for _, row in rows.astype("float64").iterrows():
            same = (data.X.eq(row) | (data.X.isna() & row.isna())).all(axis=1)
            assert not same.any(), f"the input example is row {same.idxmax()} of the data"
    # It is still an input the model scores (MLflow's own check of the example).
    pyfunc = mlflow.pyfunc.load_model(str(root))
    out = pyfunc.predict(example)
    assert len(out) == len(example)
