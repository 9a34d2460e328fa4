"""The risk model as an MLflow pyfunc that returns probabilities (not class labels)."""

from __future__ import annotations

from typing import Any

import joblib
import pandas as pd
from mlflow.pyfunc import PythonModel


class RiskPyfunc(PythonModel):  # type: ignore[misc]
    """Loads the fitted estimator and its feature list; ``predict`` returns probabilities."""

    def load_context(self, context: Any) -> None:
        self.estimator = joblib.load(context.artifacts["estimator"])
        self.feature_names: list[str] = list(
            pd.read_json(context.artifacts["features"])["name"]
        )

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        X = model_input[self.feature_names].astype("float64")
        proba = self.estimator.predict_proba(X)[:, 1]
        return pd.DataFrame({"probability": proba}, index=model_input.index)
