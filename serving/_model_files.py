"""The registered version's MLflow files besides the estimator: checked once at startup.

The service reads ``artifacts/*.joblib`` and ``features.json`` itself, but the version is also
an MLflow pyfunc (``MLmodel``, ``python_model.pkl``, its environment files) that batch jobs
and MLflow's own tools load. A garbled or missing one of those would go unnoticed while the
service ran, so startup parses each file the ``MLmodel`` names and loads the pyfunc once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["model_files_problem"]

MLMODEL = "MLmodel"
REQUIREMENTS = "requirements.txt"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200]}" if text else type(exc).__name__


def _named_files(root: Path, mlmodel: dict[str, Any]) -> list[Path]:
    """Every file the MLmodel names: the pickled pyfunc, its artifacts, env and examples."""
    pyfunc = mlmodel["flavors"]["python_function"]
    names: list[Any] = [pyfunc.get("python_model")]
    names += [a.get("path") for a in (pyfunc.get("artifacts") or {}).values()
              if isinstance(a, dict)]
    env = pyfunc.get("env")
    names += list(env.values()) if isinstance(env, dict) else [env]
    example = mlmodel.get("saved_input_example_info") or {}
    names += [example.get("artifact_path"), example.get("serving_input_path")]
    return [root / n for n in names if isinstance(n, str) and n]


def _parse(path: Path) -> None:
    """Parse a YAML, JSON or requirements file (raises on a garbled one)."""
    import yaml
    from packaging.requirements import Requirement

    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        json.loads(text)
    elif path.suffix in (".yaml", ".yml"):
        if not isinstance(yaml.safe_load(text), dict):
            raise ValueError("not a YAML mapping")
    else:  # requirements.txt: pip options (-r, --index-url) aside, one requirement a line
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-"):
                Requirement(line)


def _pickle_problem(path: Path) -> str | None:
    """Why the pickled pyfunc cannot be read (as MLflow reads it), or None."""
    import cloudpickle

    try:
        with path.open("rb") as f:
            cloudpickle.load(f)
    except Exception as exc:  # a corrupt pickle raises anything from EOFError to KeyError
        return f"the file {path} is corrupt ({_first_line(exc)})"
    return None


def model_files_problem(root: Path) -> str | None:
    """What is wrong with a downloaded model version's MLflow files, or None.

    Parameters
    ----------
    root
        The version's downloaded folder (``MLmodel`` at its top).

    Returns
    -------
    str or None
        The first file at fault and what is wrong with it.
    """
    import yaml

    path = root / MLMODEL
    if not path.is_file():
        return f"the file {path} is missing"
    try:
        mlmodel = yaml.safe_load(path.read_text(encoding="utf-8"))
    except Exception as exc:  # YAML or encoding errors
        return f"the file {path} is corrupt ({_first_line(exc)})"
    if not (isinstance(mlmodel, dict) and isinstance(mlmodel.get("flavors"), dict)
            and isinstance(mlmodel["flavors"].get("python_function"), dict)):
        return f"the file {path} is corrupt (not an MLflow pyfunc model description)"
    try:
        files = _named_files(root, mlmodel)
    except (AttributeError, TypeError) as exc:  # valid YAML of the wrong shape
        return f"the file {path} is corrupt ({_first_line(exc)})"
    if (root / REQUIREMENTS).is_file():  # python_env.yaml points to it
        files.append(root / REQUIREMENTS)
    for file in files:
        if not file.is_file():
            return f"the file {file}, named in {MLMODEL}, is missing"
        if file.suffix in (".json", ".yaml", ".yml") or file.name == REQUIREMENTS:
            try:
                _parse(file)
            except Exception as exc:
                return f"the file {file} is corrupt ({_first_line(exc)})"
    import mlflow.pyfunc

    try:
        mlflow.pyfunc.load_model(str(root))
    except Exception as exc:  # MLflow's or the pickle's errors: name the file if we can
        pickled = root / str(mlmodel["flavors"]["python_function"].get("python_model"))
        problem = _pickle_problem(pickled) if pickled.is_file() else None
        return problem or f"the MLflow model in {root} cannot be loaded ({_first_line(exc)})"
    return None
