"""The risk stage of the DR learner's effect model: the effect as a function of baseline risk.

With a few hundred treated rows, a tree model of the pseudo-outcome on every feature often
finds no heterogeneity at all (cross-validation picks the constant), yet a programme that
changes the *hazard* of an outcome helps more or less depending on how likely the outcome
was without it. The PATH statement's "risk modelling" (Kent et al., Annals of Internal
Medicine 2020) lets the effect vary with the baseline risk only: one index, so few rows
suffice. Here the index is the margin ``r(x)`` of the untreated outcome model (its log-odds
for a 0/1 outcome, its prediction otherwise); the stage is a ridge quadratic fitted to the
doubly-robust pseudo-outcome, so it stays doubly robust, in one of two bases:

- ``margin``: quadratic in the standardised ``r`` (an effect that rises and falls with the
  log-odds, e.g. a programme that helps most those with middling chances);
- ``probability`` (0/1 outcomes only): quadratic in the standardised baseline probability
  ``sigmoid(r)``, the risk-difference scale. A programme that scales a rare event's hazard
  changes its probability in proportion to the probability itself, which a quadratic in
  the log-odds (exponential in it) cannot follow: it bends back up at the low-risk end and
  hands places to those least at risk.

The basis and its penalty (or the constant) are chosen together by cross-validated
pseudo-outcome loss, so the stage reverts to the average effect when the data show no such
heterogeneity.

Its share of an effect is attributed to the features exactly: ``r`` is additive in the
outcome models' SHAP values ``s_j``, and ``h(r) - h(r0) = sum_j s_j (h(r) - h(r0)) / (r -
r0)``, each feature getting its share of the move in baseline risk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from sklearn.base import is_classifier

from overblik.models._calibration import expit
from overblik.models._effects import (
    FloatArray,
    cluster_se,
    group_codes,
    kfold_splits,
    predict_outcome,
    too_few_to_split,
)

__all__ = ["MIN_RISK_STAGE_MINORITY_ROWS", "RARE_OUTCOME_SHARE", "RISK_CV_REPEATS",
           "RISK_PENALTIES", "RiskBasis", "RiskBasisKind", "RiskStage", "baseline_margin",
           "baseline_margin_contributions", "logit", "risk_bases", "tune_risk_stage"]

RiskBasisKind = Literal["margin", "probability"]

# The risk stage needs this many rows of the smaller arm (after trimming), about 100 in
# each third of the risk range; with fewer, the quadratic's ends are noise (measured: 150
# treated rows gave effects of -100 percentage points).
MIN_RISK_STAGE_MINORITY_ROWS = 300
# Ridge penalties per row tried by cross-validation (the constant is always a candidate).
RISK_PENALTIES = (0.01, 0.1, 1.0, 10.0, 100.0)
# An outcome whose rarer value has a mean baseline probability under this is rare (the
# share under which odds, risk and hazard ratios are taken to coincide).
RARE_OUTCOME_SHARE = 0.1
# Fold assignments whose losses are summed when choosing the basis and penalty.
RISK_CV_REPEATS = 3
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


@dataclass(frozen=True)
class RiskBasis:
    """The index a risk stage is quadratic in: ``z = (u(r) - centre) / scale`` with ``u``
    the margin itself (``margin``) or the baseline probability ``sigmoid(r)``
    (``probability``), standardised on the rows it was made from."""

    kind: RiskBasisKind
    centre: float
    scale: float

    @classmethod
    def of(cls, kind: RiskBasisKind, r: FloatArray) -> RiskBasis:
        """The basis standardised on margins ``r``."""
        u = expit(r) if kind == "probability" else r
        return cls(kind, float(u.mean()), float(u.std()) or 1.0)

    def z(self, r: FloatArray) -> FloatArray:
        """The standardised index of margins ``r``."""
        u = expit(r) if self.kind == "probability" else r
        return np.asarray((u - self.centre) / self.scale, dtype=np.float64)

    def dz_dr(self, r: FloatArray) -> FloatArray:
        """``dz/dr``."""
        if self.kind == "probability":
            p = expit(r)
            return np.asarray(p * (1.0 - p) / self.scale, dtype=np.float64)
        return np.full(len(r), 1.0 / self.scale)


def risk_bases(r: FloatArray, *, logit_margin: bool) -> list[RiskBasis]:
    """The bases cross-validation chooses from, in order of preference (see
    :func:`tune_risk_stage`).

    For a numeric outcome only the margin (the probability would be the same). For a 0/1
    outcome both, the probability first when the outcome is rare (its rarer value's mean
    baseline probability under :data:`RARE_OUTCOME_SHARE`): a programme that scales the
    hazard of a rare event changes its probability in proportion to the probability
    (hazard, odds and risk ratios coincide), a straight line in the probability and an
    exponential in the log-odds. For a common outcome the same programme helps most in the
    middle (``p (1 - p)`` times the log hazard ratio), a hump that a quadratic in the
    log-odds follows, so the margin comes first.
    """
    if not logit_margin:
        return [RiskBasis.of("margin", r)]
    mean = float(expit(r).mean())
    kinds: list[RiskBasisKind] = (["probability", "margin"]
                                  if min(mean, 1.0 - mean) < RARE_OUTCOME_SHARE
                                  else ["margin", "probability"])
    return [RiskBasis.of(kind, r) for kind in kinds]


@dataclass(frozen=True)
class RiskStage:
    """``h(r) = intercept + b1 z + b2 z^2`` with ``z = basis.z(r)``, ``r`` held within the
    central 98 % of the range it was fitted on (``low``, ``high``): a quadratic must not
    extrapolate."""

    basis: RiskBasis
    intercept: float
    coef: tuple[float, float]
    low: float = -np.inf
    high: float = np.inf

    @classmethod
    def fit(cls, r: FloatArray, phi: FloatArray, *, alpha: float | None,
            basis: RiskBasis) -> RiskStage:
        """Ridge fit of ``phi`` on the quadratic (``alpha`` None: the constant mean)."""
        # The central 98 %: the quadratic's ends rest on few rows of noisy pseudo-outcomes.
        low, high = (float(v) for v in np.quantile(r, [0.01, 0.99]))
        if alpha is None:
            return cls(basis, float(phi.mean()), (0.0, 0.0), low, high)
        z = basis.z(np.clip(r, low, high))
        B = np.column_stack([z, z * z])
        mean_b, mean_phi = B.mean(axis=0), float(phi.mean())
        Bc = B - mean_b
        # Ridge with a free intercept: solve on centred columns, penalty alpha per row.
        beta = np.linalg.solve(Bc.T @ Bc + alpha * len(phi) * np.eye(2), Bc.T @ (phi - mean_phi))
        return cls(basis, float(mean_phi - mean_b @ beta), (float(beta[0]), float(beta[1])),
                   low, high)

    def predict(self, r: FloatArray) -> FloatArray:
        """``h(r)``."""
        z = self.basis.z(np.clip(r, self.low, self.high))
        return np.asarray(self.intercept + self.coef[0] * z + self.coef[1] * z * z,
                          dtype=np.float64)

    def slope(self, r: FloatArray) -> FloatArray:
        """``dh/dr`` (0 outside the fitted range, where ``h`` is flat)."""
        z = self.basis.z(r)
        inside = (r >= self.low) & (r <= self.high)
        return np.asarray(np.where(inside, (self.coef[0] + 2.0 * self.coef[1] * z)
                                   * self.basis.dz_dr(r), 0.0), dtype=np.float64)

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


def tune_risk_stage(r: FloatArray, phi: FloatArray, groups: npt.ArrayLike | None, *,
                    bases: Sequence[RiskBasis], n_folds: int = 3,
                    n_repeats: int = RISK_CV_REPEATS, random_state: int = 0
                    ) -> tuple[RiskBasis, float] | None:
    """The basis and ridge penalty of the risk stage by cross-validated pseudo-outcome loss;
    None (the constant) when no penalty of the chosen basis beats it (see
    :func:`tune_final_rounds` for why the pseudo-outcome loss ranks effect models).

    ``bases`` are in order of preference: a later basis replaces the one chosen so far only
    when its best fit beats that one's by more than a standard error of the loss difference
    (clustered by ``groups``). The pseudo-outcome loss hardly tells a quadratic in the
    probability from one in the log-odds apart (at 100k citizens the winner moved with the
    fold seed), while their rankings of the least at risk differ, so the basis that suits
    the outcome's scale stays unless the data clearly say otherwise. The per-row losses are
    averaged over ``n_repeats`` fold assignments.

    Within a basis, no one-standard-error gate against the constant, unlike the trees:
    measured at 100k citizens, it threw away heterogeneity that ranks family support at 84 %
    of the oracle (the pseudo-outcomes' noise makes every gain look insignificant). Small
    samples are kept out by :data:`MIN_RISK_STAGE_MINORITY_ROWS` instead."""
    n = len(phi)
    g = None if groups is None else group_codes(groups)  # once: splits and SE run on codes
    if too_few_to_split(n, n_folds, g) or not bases:
        return None
    candidates: list[tuple[RiskBasis, float | None]] = [
        (basis, alpha) for basis in bases for alpha in (None, *RISK_PENALTIES)]
    # Held-out squared error of every candidate on every row, averaged over the repeats.
    loss = np.zeros((len(candidates), n))
    for repeat in range(n_repeats):
        splits = kfold_splits(n, n_folds=n_folds, groups=g, random_state=random_state + repeat)
        for i, (basis, alpha) in enumerate(candidates):
            for train, val in splits:
                fitted = RiskStage.fit(r[train], phi[train], alpha=alpha, basis=basis)
                loss[i, val] += (phi[val] - fitted.predict(r[val])) ** 2 / n_repeats
    total = loss.sum(axis=1)
    per_basis = len(RISK_PENALTIES) + 1
    chosen = int(np.argmin(total[:per_basis]))
    for b in range(1, len(bases)):
        best = b * per_basis + int(np.argmin(total[b * per_basis:(b + 1) * per_basis]))
        gain = loss[chosen] - loss[best]
        if gain.mean() > cluster_se(gain, g):
            chosen = best
    basis, alpha = candidates[chosen]
    return None if alpha is None else (basis, alpha)
