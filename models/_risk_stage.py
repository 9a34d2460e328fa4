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

__all__ = ["RISK_PENALTIES", "RiskStage", "baseline_margin", "baseline_margin_contributions",
           "logit", "tune_risk_penalty"]

# Ridge penalties per row tried by cross-validation (the constant is always a candidate).
RISK_PENALTIES = (0.001, 0.01, 0.1, 1.0, 10.0)
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
    """``h(r) = intercept + b1 z + b2 z^2`` with ``z = (r - centre) / scale``."""

    centre: float
    scale: float
    intercept: float
    coef: tuple[float, float]

    @classmethod
    def fit(cls, r: FloatArray, phi: FloatArray, *, alpha: float | None, centre: float,
            scale: float) -> RiskStage:
        """Ridge fit of ``phi`` on the quadratic (``alpha`` None: the constant mean)."""
        if alpha is None:
            return cls(centre, scale, float(phi.mean()), (0.0, 0.0))
        B = _design((r - centre) / scale)
        mean_b, mean_phi = B.mean(axis=0), float(phi.mean())
        Bc = B - mean_b
        # Ridge with a free intercept: solve on centred columns, penalty alpha per row.
        beta = np.linalg.solve(Bc.T @ Bc + alpha * len(phi) * np.eye(2), Bc.T @ (phi - mean_phi))
        return cls(centre, scale, float(mean_phi - mean_b @ beta), (float(beta[0]),
                                                                     float(beta[1])))

    def predict(self, r: FloatArray) -> FloatArray:
        """``h(r)``."""
        z = (r - self.centre) / self.scale
        return np.asarray(self.intercept + self.coef[0] * z + self.coef[1] * z * z,
                          dtype=np.float64)

    def slope(self, r: FloatArray) -> FloatArray:
        """``dh/dr``."""
        z = (r - self.centre) / self.scale
        return np.asarray((self.coef[0] + 2.0 * self.coef[1] * z) / self.scale,
                          dtype=np.float64)

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
    pseudo-outcome loss ranks effect models)."""
    n = len(phi)
    if n < 2 * n_folds:
        return None
    if groups is None:
        splits = KFold(n_splits=n_folds, shuffle=True, random_state=random_state).split(r)
    else:
        splits = GroupKFold(n_splits=n_folds, shuffle=True,
                            random_state=random_state).split(r, groups=groups)
    candidates: list[float | None] = [None, *RISK_PENALTIES]
    loss = np.zeros(len(candidates))
    for train, val in splits:
        for i, alpha in enumerate(candidates):
            stage = RiskStage.fit(r[train], phi[train], alpha=alpha, centre=centre,
                                  scale=scale)
            loss[i] += float(np.sum((phi[val] - stage.predict(r[val])) ** 2))
    return candidates[int(np.argmin(loss))]
