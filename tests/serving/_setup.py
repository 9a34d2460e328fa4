"""Build a served model from scratch: municipality, small training run, approval, champion,
profile store, API keys. Shared by the service tests (``conftest.py``) and the benchmark."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import mlflow
import pandas as pd

from overblik.experiments._approval import CHAMPION, FAIRNESS_PASSED
from overblik.experiments._config import ExperimentConfig, experiments_dir, load_experiment
from overblik.experiments._review import review
from overblik.experiments._train import train
from overblik.features import SyntheticConfig, demo_key, generate_municipality, ingest
from overblik.features._pseudonym import pseudonymise_one
from overblik.serving import (
    ROLES,
    KeyStore,
    ServingSettings,
    build_profile_store,
    load_served_model,
    open_database,
)
from tests.conftest import ROOT

if TYPE_CHECKING:
    from starlette.testclient import TestClient

AS_OF = date(2025, 6, 1)


@dataclass(frozen=True)
class Served:
    """Everything a scoring service needs, built in one folder."""

    root: Path
    tracking_uri: str
    model_name: str
    version: str
    profiles: Path
    store_url: str
    tokens: dict[str, str]  # role -> key
    cprs: list[str]  # CPR numbers of citizens in the profile store (raw data, demo key)
    outsider: str  # CPR number of a resident who is not in the cohort

    def settings(self, **changes: object) -> ServingSettings:
        base = {"tracking_uri": self.tracking_uri, "model_name": self.model_name,
                "profile_store": self.profiles, "store_url": self.store_url,
                "demo_key": True, "key_cache_seconds": 0.0,
                # The board's decision is read again each second (a test withdraws it).
                "approval_check_seconds": 1.0}
        return ServingSettings.model_validate({**base, **changes})


def small_config(clean: Path, n_estimators: int = 40) -> ExperimentConfig:
    """child_placement with few trees, one validation split and a light fairness audit."""
    config = load_experiment(experiments_dir() / "child_placement.yaml")
    models = config.models.model_copy(update={
        "lightgbm": config.models.lightgbm.model_copy(update={"n_estimators": n_estimators})})
    update: dict[str, object] = {
        "models": models, "data": config.data.model_copy(update={"clean": clean}),
        "validation": config.validation.model_copy(update={"n_splits": 1})}
    fairness = getattr(config, "fairness", None)
    if fairness is not None:  # keep the audit cheap: it is not what these tests are about
        light = {"n_boot": 10, "intersections": False, "proxies": False}
        changes: dict[str, object] = {k: v for k, v in light.items()
                                      if k in type(fairness).model_fields}
        mitigation = getattr(fairness, "mitigation", None)
        if mitigation is not None and "attribute" in type(mitigation).model_fields:
            changes["mitigation"] = mitigation.model_copy(update={"attribute": None})
        update["fairness"] = fairness.model_copy(update=changes)
    return config.model_copy(update=update)


def approve(tracking_uri: str, name: str, version: str, decision: str = "approved") -> None:
    """The ethics board's decision, recorded by ``overblik review`` (the record and the tags
    the gate reads); a failed or missing audit is overridden, as a board may."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    passed = client.get_model_version(name, version).tags.get(FAIRNESS_PASSED) == "true"
    review(name, version, decision="approved" if decision == "approved" else "rejected",
           by="etisk råd (test)", reason="test approval",
           override_fairness=decision == "approved" and not passed, client=client)


@contextmanager
def in_process(settings: ServingSettings) -> Iterator[TestClient]:
    """The BentoML service with ``settings``, in process (its lifespan starts and stops the
    engine); the settings reach it as ``OVERBLIK_SERVE_*`` variables, restored after."""
    from starlette.testclient import TestClient

    from overblik.serving._service import ScoringService

    env = settings.to_env()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with TestClient(ScoringService.to_asgi(), raise_server_exceptions=False) as c:
            yield c
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def build_served(root: Path, *, citizens: int = 4000, seed: int = 7,
                 n_estimators: int = 40) -> Served:
    """Generate, ingest, train, approve, promote, build the profile store, create keys.

    ``n_estimators``: 40 trees keep the tests fast; the benchmark uses the shipped 400.
    """
    root.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get("OVERBLIK_DATA")
    os.environ["OVERBLIK_DATA"] = str(root / "data")  # MLflow artifacts land here
    try:
        generate_municipality(SyntheticConfig(citizens=citizens, years=5, seed=seed), root / "m")
        ingest(root / "m" / "raw", root / "clean", demo_key())
        uri = f"sqlite:///{root / 'mlflow.db'}"
        result = train(small_config(root / "clean", n_estimators), clean=root / "clean",
                       tracking_uri=uri)
    finally:
        if previous is None:
            os.environ.pop("OVERBLIK_DATA", None)
        else:
            os.environ["OVERBLIK_DATA"] = previous
    approve(uri, result.model_name, result.model_version)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.set_registered_model_alias(result.model_name, CHAMPION, result.model_version)
    model = load_served_model(result.model_name, CHAMPION, tracking_uri=uri)
    profiles = root / "profiles.parquet"
    build_profile_store(model, root / "clean", AS_OF, profiles)
    store_url = f"sqlite:///{root / 'serving.db'}"
    keys = KeyStore(open_database(store_url))
    tokens = {role: keys.create(role, f"test {role}")[1] for role in ROLES}
    people = pd.read_parquet(root / "m" / "raw" / "population.parquet", columns=["cpr"])
    in_store = set(pd.read_parquet(profiles, columns=["person_id"])["person_id"])
    key = demo_key()
    cprs, outsider = [], None
    for cpr in people["cpr"]:
        if pseudonymise_one(cpr, key) in in_store:
            cprs.append(cpr)
        elif outsider is None:
            outsider = cpr
    assert len(cprs) > 100 and outsider is not None
    return Served(root=root, tracking_uri=uri, model_name=result.model_name,
                  version=result.model_version, profiles=profiles, store_url=store_url,
                  tokens=tokens, cprs=cprs, outsider=outsider)


def bearer(served: Served, role: str) -> dict[str, str]:
    """The Authorization header of a role's key."""
    return {"Authorization": f"Bearer {served.tokens[role]}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a server child process.

    Compiled modules are cached under data/pycache (``PYTHONPYCACHEPREFIX``) even where the
    environment says not to write bytecode: a server that compiles mlflow, shap and bentoml
    from source on every start takes a minute to become ready.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ROOT / "data" / "pycache")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float = 240.0) -> float:
    """Seconds until ``url`` answers 200; raises if the process dies or time runs out."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Terminate a server we started (by its pid) and wait for it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def assert_refused_on_store(group: str, commands: list[list[str]], url: str,
                            expected: str) -> None:
    """Each ``overblik GROUP COMMAND --store URL`` exits 2 and says ``expected``."""
    from typer.testing import CliRunner

    from overblik.experiments._cli import app

    for command in commands:
        result = CliRunner().invoke(app, [group, *command, "--store", url])
        assert result.exit_code == 2, result.output
        assert expected in " ".join(result.output.split()), result.output
