"""Test-wide settings: telemetry off, tool homes inside the ignored data folder."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
# scikit-learn's estimator checks include array-API input checks that skip unless scipy's
# array-API mode is on; on, they run (and pass) instead of skipping. Set before scipy loads.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
os.environ.setdefault("BENTOML_HOME", str(ROOT / "data" / "bentoml"))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / "data" / "matplotlib"))
# Tests never pick up a developer's real key by accident.
os.environ.pop("OVERBLIK_PSEUDONYM_KEY", None)
