"""Baselines for individual effects: the T-learner and the X-learner (Künzel et al. 2019).

Both give point estimates only (no intervals) and use LightGBM by default; they are what
the doubly-robust learner (:class:`overblik.models.DRLearner`) is compared against.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, clone

from overblik.models._effects import (
    FloatArray,
    Matrix,
    default_propensity_model,
    fit_arm,
    fit_inputs,
    is_binary_outcome,
    predict_inputs,
    predict_outcome,
)

__all__ = ["TLearner", "XLearner"]


class TLearner(BaseEstimator):
    """Two outcome models, one per arm: effect = ``mu1(x) - mu0(x)``.

    Parameters
    ----------
    outcome_model : estimator, optional
        Cloned per arm; default LightGBM (classifier for a 0/1 outcome).
    random_state : int, default 0
    """

    def __init__(self, *, outcome_model: Any = None, random_state: int = 0) -> None:
        self.outcome_model = outcome_model
        self.random_state = random_state

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit ``mu0`` on the untreated and ``mu1`` on the treated (``groups`` unused)."""
        Xa, t, yf = fit_inputs(self, X, T, y)
        binary = is_binary_outcome(yf)
        self.model0_ = fit_arm(self.outcome_model, binary, Xa[t == 0], yf[t == 0],
                               self.random_state)
        self.model1_ = fit_arm(self.outcome_model, binary, Xa[t == 1], yf[t == 1],
                               self.random_state + 1)
        return self

    def effect(self, X: Matrix) -> FloatArray:
        """Estimated individual effects, shape (n,)."""
        Xa = predict_inputs(self, X)
        out: FloatArray = predict_outcome(self.model1_, Xa) - predict_outcome(self.model0_, Xa)
        return out


class XLearner(BaseEstimator):
    """The X-learner: imputed effects per arm, blended by the propensity.

    1. ``mu0``, ``mu1`` as in the T-learner;
    2. imputed effects ``D1 = Y - mu0(x)`` on the treated and ``D0 = mu1(x) - Y`` on the
       untreated, each regressed on ``x`` (``tau1``, ``tau0``);
    3. effect = ``e(x) tau0(x) + (1 - e(x)) tau1(x)``: the arm with more rows gets the weight
       where it is informative.

    Parameters
    ----------
    outcome_model, effect_model : estimator, optional
        Default LightGBM (a regressor for the effect models).
    propensity_model : classifier, optional
        Default LightGBM classifier.
    random_state : int, default 0
    """

    def __init__(self, *, outcome_model: Any = None, effect_model: Any = None,
                 propensity_model: Any = None, random_state: int = 0) -> None:
        self.outcome_model = outcome_model
        self.effect_model = effect_model
        self.propensity_model = propensity_model
        self.random_state = random_state

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit the outcome, imputed-effect and propensity models (``groups`` unused)."""
        Xa, t, yf = fit_inputs(self, X, T, y)
        binary = is_binary_outcome(yf)
        seed = self.random_state
        X0, X1, y0, y1 = Xa[t == 0], Xa[t == 1], yf[t == 0], yf[t == 1]
        mu0 = fit_arm(self.outcome_model, binary, X0, y0, seed)
        mu1 = fit_arm(self.outcome_model, binary, X1, y1, seed + 1)
        d1 = y1 - predict_outcome(mu0, X1)
        d0 = predict_outcome(mu1, X0) - y0
        self.tau1_ = fit_arm(self.effect_model, False, X1, d1, seed + 2)
        self.tau0_ = fit_arm(self.effect_model, False, X0, d0, seed + 3)
        prop = (clone(self.propensity_model) if self.propensity_model is not None
                else default_propensity_model(seed + 4))
        self.propensity_model_ = prop.fit(Xa, t)
        return self

    def effect(self, X: Matrix) -> FloatArray:
        """Estimated individual effects, shape (n,)."""
        Xa = predict_inputs(self, X)
        e = np.asarray(self.propensity_model_.predict_proba(Xa)[:, 1], dtype=np.float64)
        out: FloatArray = (e * predict_outcome(self.tau0_, Xa)
                           + (1.0 - e) * predict_outcome(self.tau1_, Xa))
        return out
