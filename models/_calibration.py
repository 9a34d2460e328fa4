"""Probability calibration maps and the calibration holdout of the risk estimators.

Calibration is learned on rows the scorer was not trained on. Citizens appear at many
as-of dates with nearly the same profile and overlapping label windows, so a held-out *row*
of a person whose other rows were trained on is not held out at all: the scorer has already
seen that person's outcome, looks sharper there than on new data, and early stopping and
calibration learned from it are wrong on a later date. The holdout is therefore made of
whole persons (``groups``), dealt into folds stratified by whether the person ever has a
positive label, and cross-fitted so every training row is calibrated out-of-fold.

Why persons and not the latest training as-of date: measured on the synthetic municipality
(100,000 citizens, quarterly as-of dates, a 12-month horizon, three later test dates x three
seeds, LightGBM with isotonic calibration; "truth ECE" compares with the generator's true
probabilities, so it is free of label noise; the ECE column uses the labels):

============================  ===============  ==========  =========  ===============
holdout                       outcome          ROC AUC     ECE        truth ECE
============================  ===============  ==========  =========  ===============
persons, cross-fitted         placement        0.872       0.0025     0.0008
persons, one 25% holdout      placement        0.869       0.0024     0.0014
latest as-of date             placement        0.861       0.0035     0.0031
persons, cross-fitted         benefit          0.736       0.0230     0.0176
persons, one 25% holdout      benefit          0.735       0.0317     0.0243
latest as-of date             benefit          0.726       0.0410     0.0403
============================  ===============  ==========  =========  ===============

The latest date holds out no person: the same persons' earlier rows are in the fit, with
label windows overlapping the held-out ones, so early stopping never stops (all 400 rounds)
and the map is fitted where the booster is at its sharpest. It is also a single date, a
quarter of the rows. A single grouped holdout is clean but noisy: a long-term recipient
contributes a positive row at every date, so the holdout's base rate varies with which
persons it draws, and the map inherits that shift. Cross-fitting averages it away.

With these (crude) profiles the map type mattered less than the holdout: on the benefit
outcome the truth ECE was 0.0176 (isotonic), 0.0158 (sigmoid) and 0.0139 (none, the early-
stopped booster as is); on placement all three gave about 0.0008. Out-of-fold rows are
persons the booster has never seen, while a later test date also holds persons seen in
training, for whom the raw booster is already calibrated, so a map fitted out-of-fold
shifts their risk up slightly (about +0.004 on the benefit outcome).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.isotonic import isotonic_regression

from overblik.models._effects import check_numbers

__all__ = ["CalibrationKind", "CalibrationMap", "HoldoutKind", "fit_calibration", "holdout_folds"]

CalibrationKind = Literal["isotonic", "sigmoid", "none"]
HoldoutKind = Literal["groups", "latest_as_of"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

# Calibrated probabilities stay strictly inside (0, 1): an isotonic map gives exactly 0 to
# the lowest scores of a rare outcome, and odds or logs of an exact 0 break downstream code.
_EPS = 1e-6


@dataclass(frozen=True)
class CalibrationMap:
    """A fitted monotone map from a raw score to a probability.

    Attributes
    ----------
    kind : {"isotonic", "sigmoid", "none"}
        ``isotonic``: centred isotonic regression, a piecewise-linear interpolation through
        the (mean score, observed rate) centres of the pooled isotonic blocks (Oron &
        Flournoy 2017). Unlike the step function of plain isotonic regression it is strictly
        increasing between the first and last centre, so it does not tie distinct scores
        (ties cost ROC AUC and make top-k selection arbitrary). ``sigmoid``: Platt scaling
        on the log-odds of the raw probability. ``none``: identity.
    knots_x, knots_y : ndarray
        Interpolation knots (isotonic).
    coef, intercept : float
        Slope and intercept on the raw log-odds (sigmoid).
    """

    kind: CalibrationKind
    knots_x: FloatArray
    knots_y: FloatArray
    coef: float = 1.0
    intercept: float = 0.0

    def __call__(self, raw: npt.ArrayLike) -> FloatArray:
        """Map raw scores to calibrated probabilities (same shape)."""
        r = np.asarray(raw, dtype=np.float64)
        if self.kind == "isotonic":
            out = np.interp(r, self.knots_x, self.knots_y)
        elif self.kind == "sigmoid":
            out = expit(self.coef * _logit(r) + self.intercept)
        else:
            out = r
        return np.clip(out, _EPS, 1.0 - _EPS)


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, 1e-12, 1.0 - 1e-12)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


def expit(z: FloatArray) -> FloatArray:
    """The logistic function, overflow-free."""
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * z)), dtype=np.float64)


def fit_calibration(kind: CalibrationKind, raw: npt.ArrayLike, y: npt.ArrayLike) -> CalibrationMap:
    """Fit a calibration map from raw scores to observed 0/1 outcomes.

    Parameters
    ----------
    kind : {"isotonic", "sigmoid", "none"}
        The map (see :class:`CalibrationMap`).
    raw : array-like of shape (n,)
        Raw scores (raw probabilities for ``sigmoid``).
    y : array-like of shape (n,)
        Outcomes, 0 or 1.

    Returns
    -------
    CalibrationMap
    """
    r = check_numbers(raw, None, "raw")
    t = check_numbers(y, len(r), "y", rows="raw")
    empty = np.empty(0, dtype=np.float64)
    if kind == "none":
        return CalibrationMap("none", empty, empty)
    if kind == "sigmoid":
        coef, intercept = _platt(_logit(r), t)
        return CalibrationMap("sigmoid", empty, empty, coef, intercept)
    if kind == "isotonic":
        knots_x, knots_y = _centred_isotonic(r, t)
        return CalibrationMap("isotonic", knots_x, knots_y)
    raise ValueError(f"calibration must be 'isotonic', 'sigmoid' or 'none', got {kind!r}")


def _centred_isotonic(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    ux, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    rate = np.bincount(inverse, weights=y) / counts
    fitted = isotonic_regression(rate, sample_weight=counts.astype(np.float64), increasing=True)
    # Pool-adjacent-violators writes one value into a whole block, so exact equality finds
    # the blocks.
    block = np.cumsum(np.r_[True, np.diff(fitted) != 0]) - 1
    weight = np.bincount(block, weights=counts)
    centre_x = np.bincount(block, weights=counts * ux) / weight
    centre_y = fitted[np.r_[True, np.diff(block) != 0]]
    return centre_x.astype(np.float64), centre_y.astype(np.float64)


def _platt(z: FloatArray, y: FloatArray) -> tuple[float, float]:
    """Maximum-likelihood logistic fit of y on one feature z (Newton, with a tiny ridge)."""
    a, b = 1.0, 0.0
    # Platt's target smoothing keeps the fit finite on separable data.
    n_pos = float(y.sum())
    n_neg = float(len(y) - n_pos)
    t = np.where(y > 0.5, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    design = np.column_stack([z, np.ones_like(z)])
    for _ in range(100):
        p = expit(a * z + b)
        grad = design.T @ (p - t)
        w = p * (1.0 - p)
        hess = design.T @ (design * w[:, None]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        a, b = a - float(step[0]), b - float(step[1])
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return a, b


def _group_codes(n: int, groups: npt.ArrayLike | None) -> IntArray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups)
    if len(g) != n:
        raise ValueError(f"groups has {len(g)} values for {n} rows")
    return np.asarray(pd.factorize(g)[0], dtype=np.intp)


def holdout_folds(
    y: npt.NDArray[np.int_],
    *,
    fraction: float,
    kind: HoldoutKind,
    crossfit: bool,
    groups: npt.ArrayLike | None,
    as_of: npt.ArrayLike | None,
    random_state: int,
) -> list[IntArray]:
    """Calibration rows of each fold: the rows a scorer is *not* fitted on.

    Parameters
    ----------
    y : ndarray of shape (n,)
        Outcomes, 0 or 1.
    fraction : float
        Share of groups (persons) held out per fold, for ``kind="groups"``.
    kind : {"groups", "latest_as_of"}
        ``groups``: groups are dealt at random into folds, stratified by whether the group
        has any positive label; every row of a group is in one fold (without ``groups``
        each row is its own group). ``latest_as_of``: one fold, the rows at the latest
        as-of date.
    crossfit : bool
        For ``groups``: ``round(1 / fraction)`` folds covering every row (cross-fitting;
        fewer when a class has fewer groups than that); otherwise one fold holding out
        ``fraction`` of the groups.
    groups : array-like of shape (n,) or None
        Group (person) of each row.
    as_of : array-like of shape (n,) or None
        As-of date of each row; needed for ``latest_as_of``.
    random_state : int
        Seed of the random group choice.

    Returns
    -------
    list of ndarray of int
        Row positions (ascending) held out in each fold.

    Raises
    ------
    ValueError
        If a fold or its complement would miss one of the two classes, or ``as_of`` is
        missing for ``latest_as_of``.
    """
    n = len(y)
    if kind == "latest_as_of":
        if as_of is None:
            raise ValueError(
                "calibration_holdout='latest_as_of' needs the rows' as-of dates: pass as_of= "
                "to fit, or use calibration_holdout='groups'"
            )
        dates = pd.DatetimeIndex(pd.to_datetime(pd.Index(np.asarray(as_of))))
        if len(dates) != n:
            raise ValueError(f"as_of has {len(dates)} values for {n} rows")
        latest = np.asarray(dates == dates.max(), dtype=bool)
        if latest.all():
            raise ValueError(
                "calibration_holdout='latest_as_of' needs at least two as-of dates; all rows "
                "have the same one"
            )
        folds = [np.flatnonzero(latest)]
    elif kind == "groups":
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {fraction!r}")
        codes = _group_codes(n, groups)
        n_groups = int(codes.max()) + 1 if n else 0
        positive = np.zeros(n_groups, dtype=bool)
        positive[codes[y == 1]] = True
        rng = np.random.default_rng(random_state)
        n_folds = max(2, round(1.0 / fraction)) if crossfit else 1
        if crossfit:
            # Every fold needs a person of each class: fewer folds on tiny data.
            n_folds = max(2, min(n_folds, int(positive.sum()), int((~positive).sum())))
        fold_of = np.full(n_groups, -1, dtype=np.intp)
        for stratum in (np.flatnonzero(positive), np.flatnonzero(~positive)):
            shuffled = rng.permutation(stratum)
            if crossfit:
                # Dealt round-robin from a random start: fold sizes differ by at most one.
                fold_of[shuffled] = (np.arange(len(shuffled)) + rng.integers(n_folds)) % n_folds
            else:
                k = round(fraction * len(stratum))
                # Both parts need the stratum when it has two or more groups.
                k = min(max(k, 1), len(stratum) - 1) if len(stratum) >= 2 else k
                fold_of[shuffled[:k]] = 0
        row_fold = fold_of[codes]
        folds = [np.flatnonzero(row_fold == f) for f in range(n_folds)]
    else:
        raise ValueError(
            f"calibration_holdout must be 'groups' or 'latest_as_of', got {kind!r}"
        )
    for i, cal_rows in enumerate(folds):
        fit_rows = np.setdiff1d(np.arange(n), cal_rows, assume_unique=True)
        for name, rows in (("fitting", fit_rows), ("calibration", cal_rows)):
            labels = set(np.unique(y[rows]).tolist())
            if labels != {0, 1}:
                raise ValueError(
                    f"the {name} part of calibration fold {i + 1}/{len(folds)} ({kind}) has "
                    f"only class {sorted(labels)} ({len(rows)} rows): too few positives or "
                    f"negatives to calibrate. Use more data, a larger calibration_fraction, "
                    f"another calibration_holdout, or calibration='none'"
                )
    return folds
