"""MLflow's console output that a user of ``overblik`` cannot act on, kept out of it.

Set once by the command's entry point, before MLflow is imported; the serving workers
``overblik serve`` starts inherit the environment.
"""

from __future__ import annotations

import logging
import os

__all__ = ["EXPECTED_MLFLOW_WARNINGS", "quiet_mlflow"]

# (logger, start of the message): warnings every `overblik train` would print, that are
# expected here and need nothing from the user.
EXPECTED_MLFLOW_WARNINGS: tuple[tuple[str, str], ...] = (
    # The pyfunc wraps fitted estimators, which any flavour pickles; the models are loaded
    # only by overblik's own service from the municipality's own registry.
    ("mlflow.pyfunc", "Passing a Python object as `python_model`"),
    # uv makes the environment without pip; the model keeps uv.lock and pyproject.toml
    # (MLflow copies them), which pin every package.
    ("mlflow.utils.environment", "Failed to resolve installed pip version"),
)


class _DropExpected(logging.Filter):
    """Drops records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefix)


def quiet_mlflow() -> None:
    """MLflow logs warnings and errors only (its INFO lines, e.g. "Creating initial MLflow
    database tables", say nothing to a user), without its artifact download bars (one per
    model load; our own bars show long work) or the expected warnings above. Settings the
    user made in the environment win."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name, prefix in EXPECTED_MLFLOW_WARNINGS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropExpected) and f.prefix == prefix
                   for f in logger.filters):
            logger.addFilter(_DropExpected(prefix))
