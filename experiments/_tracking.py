"""Where MLflow tracks runs: a SQLite file under the project's data folder by default, a
tracking server (PostgreSQL backend) in production."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sqlalchemy.exc import SQLAlchemyError

from overblik.features._errors import InputError

DATA_ENV = "OVERBLIK_DATA"


def data_dir() -> Path:
    """The project's (git-ignored) data folder: ``$OVERBLIK_DATA`` or ``./data``."""
    return Path(os.environ.get(DATA_ENV, "data")).resolve()


def without_password(uri: str) -> str:
    """``uri`` with any password left out, for records and messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}@{host}"))


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<data>/mlflow.db``."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'mlflow.db'}"


SQLITE_HEADER = b"SQLite format 3\x00"


def file_header(path: Path) -> bytes:
    """The first bytes of a file, enough to tell a SQLite database by :data:`SQLITE_HEADER`."""
    with path.open("rb") as fh:
        return fh.read(len(SQLITE_HEADER))


def _check_reachable(uri: str) -> None:
    """Connect once to a PostgreSQL tracking database: MLflow retries a refused connection
    for minutes before it gives up, so a wrong host or port would hang every command."""
    import psycopg

    dsn = re.sub(r"^postgresql\+\w+://", "postgresql://", uri)
    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.Error as exc:
        raise InputError(f"--tracking-uri {without_password(uri)}: cannot open the tracking "
                         f"database ({_one_line(exc)}); check the URI, that the database "
                         "server runs and the user's password") from None


def _one_line(exc: BaseException) -> str:
    """A driver's message (often several lines) as one."""
    return " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) \
        or type(exc).__name__


def use_tracking(uri: str | None, *, must_exist: bool = False) -> str:
    """Point MLflow at ``uri`` (or the default) and return it.

    Raises
    ------
    InputError
        When MLflow does not know the URI's scheme, or, with ``must_exist`` (commands that
        only read the registry), when a SQLite URI names a file that does not exist: MLflow
        would create an empty database there, so a typo would read as "no such model".
    """
    resolved = uri or default_tracking_uri()
    shown = without_password(resolved)
    if must_exist and resolved.startswith("sqlite:///"):
        path = Path(resolved.removeprefix("sqlite:///"))
        if not path.is_file():
            raise InputError(f"--tracking-uri {resolved}: no such file {path}; give the "
                             "tracking URI training used, or run `overblik train` first")
        # MLflow would write its whole schema into an empty or foreign file.
        if file_header(path) != SQLITE_HEADER:
            raise InputError(f"--tracking-uri {resolved}: {path} is not a tracking database "
                             "(not SQLite); give the tracking URI training used")
    if resolved.startswith("postgresql"):
        _check_reachable(resolved)
    try:
        MlflowClient(tracking_uri=resolved, registry_uri=resolved)  # checks the scheme
    except MlflowException as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"--tracking-uri {shown}: {first}") from None
    except SQLAlchemyError as exc:  # the database itself: not one, or refused
        raise InputError(f"--tracking-uri {shown}: cannot open the tracking database "
                         f"({_one_line(getattr(exc, 'orig', None) or exc)}); check the URI, "
                         "that the database server runs and the user's password") from None
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


@contextmanager
def run_artifact(run_id: str, path: str) -> Iterator[Path]:
    """A run's artifact, downloaded into a temporary folder removed on exit.

    Without ``dst_path`` MLflow copies into a ``mkdtemp()`` folder it never removes: test
    predictions (pseudonyms, sensitive attributes, labels) would stay in ``/tmp``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path,
                                                       dst_path=tmp))
