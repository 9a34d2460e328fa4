"""The fitted effect models as they travel with a registered model version.

``overblik train`` saves one :class:`EffectsModel` (``effects.joblib``) inside the
registered model next to the risk estimator, so the ethics board approves both together and
the service answers ``/recommend`` and ``/allocate`` from the same version it scores with.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.models import Allocation, Interval, MultiProgrammeEffects, allocate

__all__ = ["EFFECTS_FILE", "EffectsModel"]

EFFECTS_FILE = "effects.joblib"


@dataclass(frozen=True)
class EffectsModel:
    """Per-programme effect models with the experiment's places, costs and budget.

    Attributes
    ----------
    effects
        Fitted :class:`~overblik.models.MultiProgrammeEffects` (one DR learner each).
    programmes, costs, places
        In the same order; places per allocation round, cost per place.
    budget
        Total cost per round, ``None`` for no budget beyond the places.
    outcome
        The bad outcome the programmes prevent; effects are reductions in its probability.
    feature_names
        The model's input columns, in order (the risk model's).
    trained_until
        Last as-of date of the training rows (ISO date).
    """

    effects: MultiProgrammeEffects
    programmes: tuple[str, ...]
    costs: tuple[float, ...]
    places: tuple[int, ...]
    budget: float | None
    outcome: str
    feature_names: tuple[str, ...]
    trained_until: str

    @property
    def ate(self) -> dict[str, Interval]:
        """Average effect per programme (training rows), with its interval."""
        return dict(self.effects.ate_)

    def frame(self, X: pd.DataFrame | npt.NDArray[np.float64]) -> pd.DataFrame:
        """Effect, interval and extrapolation flag per row and programme (long format)."""
        return self.effects.effect_frame(self._inputs(X))

    def effect(self, X: pd.DataFrame | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Estimated effects, shape (n, programmes)."""
        return self.effects.effect(self._inputs(X))

    def contributions(self, X: pd.DataFrame | npt.NDArray[np.float64]
                      ) -> dict[str, npt.NDArray[np.float64]]:
        """Per programme, each feature's share of the effect (last column: the average)."""
        return self.effects.effect_contributions(self._inputs(X))

    def allocate(self, effects: npt.ArrayLike, *, places: npt.ArrayLike | None = None,
                 costs: npt.ArrayLike | None = None, budget: float | None = None,
                 time_limit: float | None = 30.0) -> Allocation:
        """The best allocation of places (defaults: the experiment's places, costs, budget)."""
        chosen_budget = budget if budget is not None else self.budget
        return allocate(effects, places=self.places if places is None else places,
                        costs=self.costs if costs is None else costs,
                        budget=math.inf if chosen_budget is None else float(chosen_budget),
                        time_limit=time_limit)

    def _inputs(self, X: pd.DataFrame | npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        if isinstance(X, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in X.columns]
            if missing:
                raise ValueError(f"missing feature columns: {', '.join(missing[:5])}")
            return X[list(self.feature_names)].to_numpy(dtype=np.float64)
        return np.asarray(X, dtype=np.float64)

    def save(self, path: Path) -> Path:
        """Write to ``path`` (joblib)."""
        joblib.dump(self, path)
        return path

    @staticmethod
    def load(path: Path) -> EffectsModel:
        """Read a saved model; ``TypeError`` when the file holds something else."""
        obj = joblib.load(path)
        if not isinstance(obj, EffectsModel):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not an EffectsModel")
        return obj
