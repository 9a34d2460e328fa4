"""The risk stage of the DR learner's effect model: the effect as a function of baseline risk.

With a few hundred treated rows, a tree model of the pseudo-outcome on every feature often
finds no heterogeneity at all (cross-validation picks the constant), yet a programme that
changes the *hazard* of an outcome helps more or less depending on how likely the outcome
was without it. The PATH statement's "risk modelling" (Kent et al., Annals of Internal
Medicine 2020) lets the effect vary with the baseline risk only: one index, so few rows
suffice. Here the index is the margin ``r(x)`` of the untreated outcome model (its log-odds
for a 0/1 outcome, its prediction otherwise); the stage is a ridge quadratic in the
standardised ``r`` fitted to the doubly-robust pseudo-outcome, with its penalty (or the
constant) chosen by cross-validated pseudo-outcome loss, so it stays doubly robust and
reverts to the average effect when the data show no such heterogeneity.

Its share of an effect is attributed to the features exactly: ``r`` is additive in the
outcome models' SHAP values ``s_j``, and ``h(r) - h(r0) = sum_j s_j (h(r) - h(r0)) / (r -
r0)``, each feature getting its share of the move in baseline risk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.base import is_classifier
from sklearn.model_selection import GroupKFold, KFold

from overblik.models._effects import FloatArray, predict_outcome

__all__ = ["MIN_RISK_STAGE_MINORITY_ROWS", "RISK_PENALTIES", "RiskStage", "baseline_margin",
           "baseline_margin_contributions", "logit", "tune_risk_penalty"]

# The risk stage needs this many rows of the smaller arm (after trimming), about 100 in
# each third of the risk range; with fewer, the quadratic's ends are noise (measured: 150
# treated rows gave effects of -100 percentage points).
MIN_RISK_STAGE_MINORITY_ROWS = 300
# Ridge penalties per row tried by cross-validation (the constant is always a candidate).
RISK_PENALTIES = (0.01, 0.1, 1.0, 10.0, 100.0)
_CLIP = 1e-6


def logit(p: FloatArray) -> FloatArray:
    """Log-odds, clipped away from 0 and 1."""
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def baseline_margin(model: Any, X: FloatArray) -> FloatArray:
    """The untreated outcome model's margin: log-odds of a classifier, else its prediction."""
    mu = predict_outcome(model, X)
    return logit(mu) if is_classifier(model) else mu


def baseline_margin_contributions(model: Any, X: FloatArray) -> FloatArray | None:
    """SHAP values of the margin, shape (n, n_features + 1) (last: expected value).

    Exact for LightGBM (``pred_contrib``, on the log-odds scale for a classifier); None for
    any other model, whose risk stage is then not attributed to features.
    """
    if isinstance(model, lgb.LGBMModel):
        return np.asarray(model.predict(X, pred_contrib=True), dtype=np.float64)
    return None


def _design(z: FloatArray) -> FloatArray:
    return np.column_stack([z, z * z])


@dataclass(frozen=True)
class RiskStage:
    """``h(r) = intercept + b1 z + b2 z^2`` with ``z = (r - centre) / scale``, ``r`` held
    within the central 98 % of the range it was fitted on (``low``, ``high``): a quadratic
    must not extrapolate."""

    centre: float
    scale: float
    intercept: float
    coef: tuple[float, float]
    low: float = -np.inf
    high: float = np.inf

    @classmethod
    def fit(cls, r: FloatArray, phi: FloatArray, *, alpha: float | None, centre: float,
            scale: float) -> RiskStage:
        """Ridge fit of ``phi`` on the quadratic (``alpha`` None: the constant mean)."""
        # The central 98 %: the quadratic's ends rest on few rows of noisy pseudo-outcomes.
        low, high = (float(v) for v in np.quantile(r, [0.01, 0.99]))
        if alpha is None:
            return cls(centre, scale, float(phi.mean()), (0.0, 0.0), low, high)
        B = _design((r - centre) / scale)
        mean_b, mean_phi = B.mean(axis=0), float(phi.mean())
        Bc = B - mean_b
        # Ridge with a free intercept: solve on centred columns, penalty alpha per row.
        beta = np.linalg.solve(Bc.T @ Bc + alpha * len(phi) * np.eye(2), Bc.T @ (phi - mean_phi))
        return cls(centre, scale, float(mean_phi - mean_b @ beta),
                   (float(beta[0]), float(beta[1])), low, high)

    def predict(self, r: FloatArray) -> FloatArray:
        """``h(r)``."""
        z = (np.clip(r, self.low, self.high) - self.centre) / self.scale
        return np.asarray(self.intercept + self.coef[0] * z + self.coef[1] * z * z,
                          dtype=np.float64)

    def slope(self, r: FloatArray) -> FloatArray:
        """``dh/dr`` (0 outside the fitted range, where ``h`` is flat)."""
        z = (r - self.centre) / self.scale
        inside = (r >= self.low) & (r <= self.high)
        return np.asarray(np.where(inside, (self.coef[0] + 2.0 * self.coef[1] * z)
                                   / self.scale, 0.0), dtype=np.float64)

    def attribute(self, shap: FloatArray) -> FloatArray:
        """``h(r)`` split over the features whose SHAP values ``shap`` make up ``r``.

        Returns (n, n_features + 1): each feature's share of ``h(r) - h(r0)``, then
        ``h(r0)`` at the expected margin ``r0``; rows sum to ``h(r)`` exactly.
        """
        r0, moves = shap[:, -1], shap[:, :-1]
        r = r0 + moves.sum(axis=1)
        h, h0 = self.predict(r), self.predict(r0)
        step = r - r0
        small = np.abs(step) < 1e-9
        # Where r hardly moves, the ratio is the slope at r0 (its limit).
        ratio = np.where(small, self.slope(r0), (h - h0) / np.where(small, 1.0, step))
        out = np.empty_like(shap)
        out[:, :-1] = moves * ratio[:, None]
        out[:, -1] = h - out[:, :-1].sum(axis=1)  # = h0 up to rounding, exact in total
        return out


def tune_risk_penalty(r: FloatArray, phi: FloatArray, groups: npt.ArrayLike | None, *,
                      centre: float, scale: float, n_folds: int = 3,
                      random_state: int = 0) -> float | None:
    """The ridge penalty of the risk stage by cross-validated pseudo-outcome loss; None
    (the constant) when no penalty beats it (see :func:`tune_final_rounds` for why the
    pseudo-outcome loss ranks effect models).

    No one-standard-error gate here, unlike the trees: measured at 100k citizens, it threw
    away heterogeneity that ranks family support at 84 % of the oracle (the pseudo-outcomes'
    noise makes every gain look insignificant). Small samples are kept out by
    :data:`MIN_RISK_STAGE_MINORITY_ROWS` instead."""
    n = len(phi)
    if n < 2 * n_folds:
        return None
    g = None if groups is None else np.asarray(groups)
    if g is None:
        splits = list(KFold(n_splits=n_folds, shuffle=True, random_state=random_state)
                      .split(r))
    else:
        splits = list(GroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
                      .split(r, groups=g))
    candidates: list[float | None] = [None, *RISK_PENALTIES]
    # Held-out predictions of every candidate, rows in the order of the folds.
    predicted = np.vstack([np.concatenate([
        RiskStage.fit(r[train], phi[train], alpha=alpha, centre=centre, scale=scale)
        .predict(r[val]) for train, val in splits]) for alpha in candidates])
    rows = np.concatenate([val for _, val in splits])
    loss = ((phi[rows] - predicted) ** 2).sum(axis=1)
    return candidates[int(np.argmin(loss))]
