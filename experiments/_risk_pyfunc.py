"""The risk model as an MLflow pyfunc that returns probabilities (not class labels)."""

from __future__ import annotations

from typing import Any

import joblib
import numpy as np
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
        if X.empty:  # no rows, no probabilities (sklearn would refuse the empty matrix)
            return pd.DataFrame({"probability": pd.Series(dtype="float64")},
                                index=model_input.index)
        infinite = ~np.isfinite(X.to_numpy()) & X.notna().to_numpy()
        if infinite.any():
            row, col = (int(v[0]) for v in np.nonzero(infinite))
            raise ValueError(f"row {row}, column {self.feature_names[col]} is infinite: give a "
                             "finite value, or NaN when it is unknown")
        proba = self.estimator.predict_proba(X)[:, 1]
        return pd.DataFrame({"probability": proba}, index=model_input.index)
