"""Effects modelled through baseline risk, an S-learner, and an average of learners.

The doubly-robust learner (:class:`overblik.models.DRLearner`) regresses noisy
pseudo-outcomes on every feature: honest and with intervals, but with a few hundred treated
rows it finds only the strongest heterogeneity. When a programme acts on the *hazard* of an
outcome, much of its heterogeneity runs through the citizen's baseline risk (a programme
that doubles the chance of leaving benefit gains most where that chance is middling), and
a model of the effect *as a function of baseline risk* needs far fewer rows. This is the
"risk modelling" approach to heterogeneous effects of the PATH statement (Kent et al.,
Annals of Internal Medicine 2020): predict the baseline risk from all features, then let
the effect vary with that risk only.

- :class:`RiskBasedLearner`: ``q0(x) = P(event | x, untreated)`` by LightGBM on the
  untreated; on the treated, ``P(event | x, treated) = 1 - (1 - q0)^exp(g)`` where ``g`` is a
  ridge-penalised polynomial in the standardised log cumulative hazard
  ``log(-log(1 - q0))`` (a complementary log-log model with ``q0`` as offset: ``g = 0``
  means no effect; a constant ``g`` means proportional hazards).
- :class:`SLearner`: one LightGBM model with the treatment as a feature, optionally
  constrained so that the treatment never lowers the outcome.
- :class:`AveragedEffects`: the mean effect of several learners, each fitted with several
  seeds (averaging learners with different biases lowers the error of the ranking).

Point estimates only; the intervals of the service come from the DR learner.
"""

from __future__ import annotations

from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, clone

from overblik.models._effects import (
    FloatArray,
    Matrix,
    check_whole,
    default_outcome_model,
    fit_inputs,
    fit_outcome_model,
    is_binary_outcome,
    predict_inputs,
    predict_outcome,
)

__all__ = ["AveragedEffects", "RiskBasedLearner", "SLearner"]

_EPS = 1e-6


def _log_cumulative_hazard(q: FloatArray) -> FloatArray:
    """``log(-log(1 - q))`` of an event probability ``q``."""
    q = np.clip(q, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(-np.log1p(-q)), dtype=np.float64)


def _cloglog_event(eta: FloatArray) -> FloatArray:
    """``1 - exp(-exp(eta))``: the event probability at log cumulative hazard ``eta``."""
    return np.asarray(-np.expm1(-np.exp(np.clip(eta, -30.0, 5.0))), dtype=np.float64)


def _outcome_model(template: Any, binary: bool, seed: int) -> Any:
    """A clone of the user's model, else LightGBM with 300 rounds (one model, all rows)."""
    if template is not None:
        return clone(template)
    return default_outcome_model(binary, seed).set_params(n_estimators=300)


def _design(z: FloatArray, degree: int) -> FloatArray:
    return np.column_stack([z ** k for k in range(degree + 1)])


def _fit_multiplier(offset: FloatArray, B: FloatArray, event: FloatArray,
                    alpha: float) -> FloatArray:
    """Coefficients of ``g = B @ beta`` in ``P(event) = 1 - exp(-exp(offset + g))``.

    Penalised log-likelihood, ridge ``alpha / 2 * |beta[1:]|^2`` (the intercept, the
    average log hazard ratio, is free); the loss is convex, so L-BFGS finds its minimum.
    """

    def loss(beta: FloatArray) -> tuple[float, FloatArray]:
        eta = np.clip(offset + B @ beta, -30.0, 5.0)
        h = np.exp(eta)
        log_p = np.log(-np.expm1(-h))  # log P(event)
        nll = -float(np.sum(event * log_p - (1.0 - event) * h))
        # d(-loglik)/d(eta): events pull the hazard up, non-events down.
        d_eta = -(event * h / np.expm1(h) - (1.0 - event) * h)
        penalty = beta.copy()
        penalty[0] = 0.0
        return nll + 0.5 * alpha * float(penalty @ penalty), B.T @ d_eta + alpha * penalty

    result = minimize(loss, np.zeros(B.shape[1]), jac=True, method="L-BFGS-B")
    return np.asarray(result.x, dtype=np.float64)


class RiskBasedLearner(BaseEstimator):
    """Effects that vary with baseline risk: a complementary log-log model on the treated.

    Parameters
    ----------
    event : {0, 1}, default 1
        The outcome value whose hazard the programme changes: 1 when ``y = 1`` is the event a
        programme brings about (leaving benefit), 0 when it prevents ``y = 0`` (a placement,
        with ``y = 1`` = not placed). The effect is always on the scale of ``y``.
    degree : int, default 2
        Degree of the polynomial in the baseline log cumulative hazard.
    alpha : float, default 30.0
        Ridge penalty on the polynomial's slopes (towards proportional hazards).
    baseline_model : classifier, optional
        Model of the outcome among the untreated; default LightGBM, 300 rounds.
    random_state : int, default 0
    """

    def __init__(self, *, event: Literal[0, 1] = 1, degree: int = 2, alpha: float = 30.0,
                 baseline_model: Any = None, random_state: int = 0) -> None:
        self.event = event
        self.degree = degree
        self.alpha = alpha
        self.baseline_model = baseline_model
        self.random_state = random_state

    def _event_probability(self, Xa: FloatArray) -> FloatArray:
        p1 = predict_outcome(self.baseline_model_, Xa)  # P(y = 1 | x, untreated)
        return p1 if self.event == 1 else 1.0 - p1

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit the baseline on the untreated, then ``g`` on the treated (``groups`` unused)."""
        if self.event not in (0, 1):
            raise ValueError(f"event={self.event!r}: give 0 or 1, the outcome value whose "
                             "hazard the programme changes")
        check_whole(self.degree, "degree", minimum=0)
        if not self.alpha >= 0:  # also refuses NaN
            raise ValueError(f"alpha={self.alpha}: give a ridge penalty >= 0")
        Xa, t, yf = fit_inputs(self, X, T, y)
        if not is_binary_outcome(yf):
            raise ValueError("RiskBasedLearner needs a 0/1 outcome: it models the hazard of "
                             "an event; use DRLearner for a numeric outcome")
        model = _outcome_model(self.baseline_model, True, self.random_state)
        self.baseline_model_ = fit_outcome_model(model, True, Xa[t == 0], yf[t == 0])
        u = _log_cumulative_hazard(self._event_probability(Xa[t == 1]))
        self.centre_, self.scale_ = float(u.mean()), float(u.std()) or 1.0
        event = (yf[t == 1] == self.event).astype(np.float64)
        self.coef_ = _fit_multiplier(u, _design((u - self.centre_) / self.scale_, self.degree),
                                     event, self.alpha)
        return self

    def _multiplier(self, u: FloatArray) -> FloatArray:
        """``g`` at baseline log cumulative hazards ``u``."""
        return np.asarray(_design((u - self.centre_) / self.scale_, self.degree) @ self.coef_,
                          dtype=np.float64)

    def log_hazard_ratio(self, X: Matrix) -> FloatArray:
        """``g(x)``: the log of the factor the programme multiplies the event's hazard by."""
        Xa = predict_inputs(self, X)
        return self._multiplier(_log_cumulative_hazard(self._event_probability(Xa)))

    def effect(self, X: Matrix) -> FloatArray:
        """Estimated individual effects on the scale of ``y``, shape (n,)."""
        Xa = predict_inputs(self, X)
        q0 = self._event_probability(Xa)
        u = _log_cumulative_hazard(q0)
        q1 = _cloglog_event(u + self._multiplier(u))
        change = q1 - np.clip(q0, _EPS, 1.0 - _EPS)
        return np.asarray(change if self.event == 1 else -change, dtype=np.float64)


class SLearner(BaseEstimator):
    """One outcome model with the treatment as its last feature: effect = ``mu(x, 1) - mu(x, 0)``.

    Parameters
    ----------
    nonnegative : bool, default False
        Constrain the model to be monotone increasing in the treatment (LightGBM's
        ``monotone_constraints``), so no effect is negative: for programmes known not to
        harm, it stops noise from ranking anyone below zero.
    outcome_model : LightGBM estimator, optional
        Default LightGBM, 300 rounds (a classifier for a 0/1 outcome).
    random_state : int, default 0
    """

    def __init__(self, *, nonnegative: bool = False, outcome_model: Any = None,
                 random_state: int = 0) -> None:
        self.nonnegative = nonnegative
        self.outcome_model = outcome_model
        self.random_state = random_state

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit the model on ``[X, T]`` (``groups`` unused)."""
        Xa, t, yf = fit_inputs(self, X, T, y)
        binary = is_binary_outcome(yf)
        model = _outcome_model(self.outcome_model, binary, self.random_state)
        if self.nonnegative:
            if not isinstance(model, lgb.LGBMModel):
                raise ValueError(f"nonnegative=True needs a LightGBM outcome model (it sets "
                                 f"LightGBM's monotone_constraints), got "
                                 f"{type(model).__name__}: leave outcome_model out or set "
                                 "nonnegative=False")
            model.set_params(monotone_constraints=[0] * Xa.shape[1] + [1])
        _check_arms_can_split(model, t)
        self.model_ = fit_outcome_model(model, binary, np.column_stack([Xa, t]), yf)
        return self

    def effect(self, X: Matrix) -> FloatArray:
        """Estimated individual effects, shape (n,)."""
        Xa = predict_inputs(self, X)
        ones, zeros = np.ones(len(Xa)), np.zeros(len(Xa))
        return np.asarray(predict_outcome(self.model_, np.column_stack([Xa, ones]))
                          - predict_outcome(self.model_, np.column_stack([Xa, zeros])),
                          dtype=np.float64)


def _check_arms_can_split(model: Any, t: npt.NDArray[Any]) -> None:
    """Refuse a LightGBM model whose leaves need more rows than the smaller arm has.

    Splitting on the treatment needs ``min_child_samples`` rows on each side; with fewer,
    no tree can split on it and every estimated effect is exactly 0, whatever the data.
    """
    if not isinstance(model, lgb.LGBMModel):
        return
    leaf_rows = int(model.get_params()["min_child_samples"])
    treated = int(np.count_nonzero(t))
    smaller = min(treated, len(t) - treated)
    if smaller < leaf_rows:
        arm = "treated" if treated <= len(t) - treated else "untreated"
        raise ValueError(f"SLearner: the {arm} arm has {smaller} rows, fewer than the "
                         f"outcome model's {leaf_rows} rows a leaf (min_child_samples), so "
                         "it could never split on the treatment and every effect would be "
                         "0: use TLearner or DRLearner, more rows, or an outcome_model with "
                         "a smaller min_child_samples")


class AveragedEffects(BaseEstimator):
    """The mean effect of several effect learners, each fitted with ``n_seeds`` seeds.

    Parameters
    ----------
    estimators : list of effect estimators
        Each has ``fit(X, T, y, groups=)``, ``effect(X)`` and a ``random_state``
        parameter; cloned for every seed.
    n_seeds : int, default 5
    random_state : int, default 0
        Seed ``k`` of every learner is ``random_state + k``.
    """

    def __init__(self, estimators: list[Any], *, n_seeds: int = 5,
                 random_state: int = 0) -> None:
        self.estimators = estimators
        self.n_seeds = n_seeds
        self.random_state = random_state

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit every learner with every seed."""
        if not self.estimators:
            raise ValueError("AveragedEffects needs at least one estimator")
        check_whole(self.n_seeds, "n_seeds", minimum=1)
        Xa, t, yf = fit_inputs(self, X, T, y)
        self.fitted_ = [clone(est).set_params(random_state=self.random_state + k)
                        .fit(Xa, t, yf, groups=groups)
                        for est in self.estimators for k in range(self.n_seeds)]
        return self

    def effect(self, X: Matrix) -> FloatArray:
        """The mean of the fitted learners' effects, shape (n,)."""
        Xa = predict_inputs(self, X)
        return np.asarray(np.mean([m.effect(Xa) for m in self.fitted_], axis=0),
                          dtype=np.float64)
