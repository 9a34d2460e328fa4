"""What every effect estimator shares: intervals, input checks, default models, folds.

Conventions of the effect estimators (:mod:`._dr_learner`, :mod:`._meta_learners`):

- the treatment ``T`` is passed to ``fit`` separately from ``X`` (like fairlearn's
  sensitive features), as 0/1 (or booleans);
- an effect is ``E[Y(1) - Y(0) | X]`` on the scale of ``y``: for a 0/1 outcome, a
  difference in probability;
- ``groups`` (the person of each row, when a person has rows at several as-of dates) keeps
  a person's rows in one cross-fitting fold and makes bootstraps and standard errors
  resample whole persons.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Integral
from statistics import NormalDist
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.validation import check_is_fitted, validate_data

__all__ = [
    "ConstantOutcome",
    "Interval",
    "beats_the_constant",
    "check_groups",
    "check_labels",
    "check_numbers",
    "check_outcome",
    "check_treatment",
    "check_whole",
    "crossfit_folds",
    "default_final_model",
    "default_outcome_model",
    "default_propensity_model",
    "final_leaf_rows",
    "fit_arm",
    "fit_inputs",
    "fit_outcome_model",
    "group_codes",
    "is_binary_outcome",
    "kfold_splits",
    "predict_inputs",
    "predict_outcome",
    "too_few_to_split",
    "tune_final_rounds",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int_]
Matrix = pd.DataFrame | npt.NDArray[Any]


@dataclass(frozen=True)
class Interval:
    """A point estimate with its two-sided confidence interval (and standard error)."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float = float("nan")

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in ``[ci_low, ci_high]``."""
        return self.ci_low <= value <= self.ci_high

    def as_dict(self) -> dict[str, float]:
        """JSON-ready ``{"estimate", "ci_low", "ci_high", "se"}``."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def normal(cls, estimate: float, se: float, alpha: float = 0.05) -> Interval:
        """``estimate ± z(1 - alpha/2) · se``."""
        z = NormalDist().inv_cdf(1.0 - alpha / 2.0)
        return cls(float(estimate), float(estimate - z * se), float(estimate + z * se), float(se))


def z_value(alpha: float) -> float:
    """The two-sided normal quantile for a ``1 - alpha`` interval."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha={alpha}: give a level between 0 and 1, e.g. 0.05")
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


def _lgb_common(random_state: int) -> dict[str, Any]:
    # Modest trees with row/column subsampling: nuisance models must not overfit the
    # minority arm (a few hundred treated rows), and subsampling decorrelates the folds.
    # One thread: many small fits, and on a busy machine OpenMP threads spin-wait (measured
    # 4-9x slower with 2 threads on 2 shared cores).
    return {"learning_rate": 0.05, "subsample": 0.8, "subsample_freq": 1,
            "colsample_bytree": 0.8, "reg_lambda": 1.0, "random_state": random_state,
            "n_jobs": 1, "verbose": -1}


def default_propensity_model(random_state: int = 0) -> lgb.LGBMClassifier:
    """LightGBM classifier for ``P(T = 1 | X)``: 200 rounds, 15 leaves, >= 40 rows a leaf."""
    return lgb.LGBMClassifier(n_estimators=200, num_leaves=15, min_child_samples=40,
                              **_lgb_common(random_state))


def default_outcome_model(binary: bool, random_state: int = 0) -> BaseEstimator:
    """LightGBM for ``E[Y | X]`` within one arm: a classifier for 0/1 outcomes."""
    params = {"n_estimators": 200, "num_leaves": 15, "min_child_samples": 40,
              **_lgb_common(random_state)}
    if binary:
        return lgb.LGBMClassifier(**params)
    return lgb.LGBMRegressor(**params)


def default_final_model(random_state: int = 0, *, n_estimators: int = 400,
                        min_child_samples: int = 200) -> lgb.LGBMRegressor:
    """LightGBM regressor for the effect itself, strongly regularised.

    Pseudo-outcomes are the effect plus noise many times larger than it (inverse
    propensity weights), so leaves must average many rows and trees stay shallow; the
    number of rounds is chosen by :func:`tune_final_rounds`.
    """
    return lgb.LGBMRegressor(n_estimators=n_estimators, learning_rate=0.03, num_leaves=7,
                             min_child_samples=min_child_samples, subsample=0.8,
                             subsample_freq=1, colsample_bytree=0.8, reg_lambda=10.0,
                             random_state=random_state, n_jobs=1, verbose=-1)


MIN_LEAF_MINORITY_ROWS = 50


def final_leaf_rows(n: int, minority_share: float = 0.5) -> int:
    """Rows a leaf of the default effect model must hold: 200, 1/50 of the rows, and enough
    for ``MIN_LEAF_MINORITY_ROWS`` rows of the smaller arm on average (``minority_share``:
    its share of the rows). A pseudo-outcome's noise comes from the smaller arm's inverse
    propensity weights: a leaf with a handful of its rows has a mean of noise."""
    share = min(max(minority_share, 1e-6), 0.5)
    return max(200, n // 50, math.ceil(MIN_LEAF_MINORITY_ROWS / share))


def beats_the_constant(phi: FloatArray, constant: FloatArray, model: FloatArray,
                       groups: npt.ArrayLike | None) -> bool:
    """Whether held-out predictions ``model`` beat ``constant`` by more than one standard
    error of the paired difference in squared pseudo-outcome loss (clustered by person).

    The one-standard-error rule (Breiman et al.'s CART; glmnet's ``lambda.1se``): pseudo-
    outcomes carry inverse-propensity noise many times the effect, so the cross-validated
    minimum alone often picks heterogeneity that is noise, and an effect model fitted to
    noise ranks citizens at random (worse: it sends places where they do no good).
    """
    gain = (phi - constant) ** 2 - (phi - model) ** 2
    return bool(gain.mean() > cluster_se(gain, groups))


def tune_final_rounds(X: FloatArray, phi: FloatArray, groups: npt.ArrayLike | None, *,
                      max_rounds: int = 400, n_folds: int = 3, minority_share: float = 0.5,
                      random_state: int = 0) -> int:
    """Boosting rounds of the default effect model, by cross-validated pseudo-outcome loss.

    ``E[(phi - tau_hat(x))^2] = E[(tau(x) - tau_hat(x))^2] + const`` when ``phi``'s
    conditional mean is the effect, so the held-out squared error of the pseudo-outcome
    ranks effect models as their (unobservable) error against the true effects does.
    Round 0 is the constant (the average effect): chosen when the data show no
    heterogeneity the model can find, or when the best number of rounds does not beat it by
    more than a standard error (:func:`beats_the_constant`).
    """
    n = len(phi)
    g = None if groups is None else group_codes(groups)
    if too_few_to_split(n, n_folds, g):
        return 0
    splits = kfold_splits(n, n_folds=n_folds, groups=g, random_state=random_state)
    loss = np.zeros(max_rounds + 1)
    fitted = []
    for train, val in splits:
        base = float(phi[train].mean())
        loss[0] += float(np.sum((phi[val] - base) ** 2))
        model = default_final_model(random_state, n_estimators=max_rounds,
                                    min_child_samples=final_leaf_rows(len(train),
                                                                      minority_share))
        model.fit(X[train], phi[train], eval_X=(X[val],), eval_y=(phi[val],), eval_metric="l2")
        curve = np.asarray(model.evals_result_["valid_0"]["l2"], dtype=np.float64)
        loss[1:len(curve) + 1] += curve * len(val)
        loss[len(curve) + 1:] = np.inf  # fewer rounds when LightGBM stopped early
        fitted.append((val, base, model))
    best = int(np.argmin(loss))
    if best == 0:
        return 0
    val_rows = np.concatenate([val for val, _, _ in fitted])
    constant = np.concatenate([np.full(len(val), base) for val, base, _ in fitted])
    predicted = np.concatenate([np.asarray(model.predict(X[val], num_iteration=best))
                                for val, _, model in fitted])
    keep = beats_the_constant(phi[val_rows], constant, predicted,
                              None if g is None else g[val_rows])
    return best if keep else 0


def too_few_to_split(n: int, n_folds: int, groups: IntArray | None) -> bool:
    """Whether ``n`` rows (whole :func:`group_codes` ``groups`` together) are too few for
    ``n_folds`` folds to tune on: then the constant is kept, untuned."""
    return n < 2 * n_folds or (groups is not None and int(groups.max()) + 1 < n_folds)


def is_binary_outcome(y: FloatArray) -> bool:
    """True when every value of ``y`` is 0 or 1."""
    return bool(np.isin(y, (0.0, 1.0)).all())


def predict_outcome(model: Any, X: FloatArray) -> FloatArray:
    """``E[Y | X]`` from a fitted outcome model: class-1 probability of a classifier."""
    if is_classifier(model):
        out: FloatArray = np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)
        return out
    return np.asarray(model.predict(X), dtype=np.float64)


class ConstantOutcome(BaseEstimator):
    """An outcome 'model' for rows that have one outcome value only."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def fit(self, X: FloatArray, y: npt.ArrayLike) -> Self:
        return self

    def predict(self, X: FloatArray) -> FloatArray:
        return np.full(len(X), self.value)


def fit_outcome_model(model: Any, binary: bool, X: FloatArray, y: FloatArray) -> Any:
    """Fit an unfitted outcome model to ``y`` (one arm's rows, say) and return it.

    A classifier gets integer labels, and rows with one outcome value only get a
    :class:`ConstantOutcome` instead: a classifier cannot learn one class (LightGBM's then
    gives class 1 a probability of about 1e-15 whichever class it saw, which reads an arm
    whose outcomes are all 1 as all 0).
    """
    target = y.astype(np.int_) if binary and is_classifier(model) else y
    if is_classifier(model) and len(np.unique(target)) < 2:
        model = ConstantOutcome(float(target[0]))
    return model.fit(X, target)


def fit_arm(template: Any, binary: bool, X: FloatArray, y: FloatArray, seed: int) -> Any:
    """A clone of ``template`` (default: :func:`default_outcome_model`) fitted to the rows
    by :func:`fit_outcome_model`."""
    model = clone(template) if template is not None else default_outcome_model(binary, seed)
    return fit_outcome_model(model, binary, X, y)


def check_whole(value: Any, name: str, *, minimum: int, why: str = "") -> int:
    """``value`` as an int, refused unless it is a whole number >= ``minimum`` (``why``:
    the reason for the minimum, said when it is not met)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name}={value!r}: give a whole number (an int) >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value}: {why or f'give a whole number >= {minimum}'}")
    return int(value)


def check_labels(values: npt.ArrayLike, n: int, name: str, fix: str) -> npt.NDArray[Any]:
    """Labels, one-dimensional, one per row of X (``n``), none missing (``fix``: what to do
    about a missing one)."""
    labels = np.asarray(values)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"{name} must be one-dimensional with one label per row of X ({n}), "
                         f"got shape {labels.shape}")
    missing = pd.isna(labels)
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise ValueError(f"{name} has a missing label at row {i}: {fix}")
    return labels


def check_groups(groups: npt.ArrayLike, n: int, *, min_groups: int = 1) -> IntArray:
    """:func:`group_codes` of ``groups``: one label (person) per row, none missing, and at
    least ``min_groups`` different labels."""
    g = check_labels(groups, n, "groups", "give every row its person")
    try:
        code = group_codes(g)
    except TypeError:  # labels of types that do not sort together, e.g. 1 and "a"
        raise TypeError("groups mixes labels of different types (e.g. numbers and text): "
                        "give every label the same type") from None
    found = int(code.max()) + 1 if n else 0
    if found < min_groups:
        raise ValueError(f"groups has {found} different label(s), need at least "
                         f"{min_groups}: give more persons, or leave groups out")
    return code


def check_treatment(T: npt.ArrayLike, n: int, name: str = "T", rows: str = "X") -> IntArray:
    """0/1 treatment of length ``n`` (the rows of ``rows``) with both arms present."""
    t = np.asarray(T)
    if t.ndim != 1 or len(t) != n:
        raise ValueError(f"{name} must be one-dimensional with one value per row of {rows} "
                         f"({n}), got shape {t.shape}")
    if t.dtype == bool:
        out = t.astype(np.int_)
    else:
        try:
            tf = t.astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be 0/1 (treated = 1); got values such as "
                             f"{t[:3].tolist()}") from None
        bad = ~np.isin(tf, (0.0, 1.0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"{name} must be 0/1 (treated = 1); value {t[i].item()!r} at "
                             f"row {i}")
        out = tf.astype(np.int_)
    n1 = int(out.sum())
    if n1 == 0 or n1 == n:
        raise ValueError(f"{name} must have treated (1) and untreated (0) rows; all {n} rows "
                         f"are {int(out[0])}")
    return out


def check_numbers(values: npt.ArrayLike, n: int | None, name: str, rows: str = "X"
                  ) -> FloatArray:
    """Finite numbers, one-dimensional; ``n`` of them (one per row of ``rows``) when given."""
    try:
        v = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers; got values such as "
                         f"{np.asarray(values).ravel()[:3].tolist()}") from None
    if v.ndim != 1 or (n is not None and len(v) != n):
        want = "" if n is None else f" with one value per row of {rows} ({n})"
        raise ValueError(f"{name} must be one-dimensional{want}, got shape {v.shape}")
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} has a missing or infinite value at row {i}: drop or fill it")
    return v


def check_outcome(y: npt.ArrayLike, n: int, rows: str = "X") -> FloatArray:
    """Finite numeric outcome of length ``n`` (the rows of ``rows``)."""
    return check_numbers(y, n, "y", rows)


def group_codes(groups: npt.ArrayLike) -> IntArray:
    """Integer codes of group labels, in the labels' sorted order.

    scikit-learn's group splitters run ``np.isin`` on the labels: on string person ids
    that took 20 s per fold at 176k rows, on codes milliseconds; the folds are the same.
    """
    _, code = np.unique(np.asarray(groups), return_inverse=True)
    return np.asarray(code, dtype=np.int64)


def kfold_splits(n: int, *, n_folds: int, groups: IntArray | None,
                 random_state: int) -> list[tuple[IntArray, IntArray]]:
    """Shuffled (train, validation) index pairs of ``n`` rows, whole groups together;
    ``groups`` are :func:`group_codes` (made once by the caller, which reuses them)."""
    if groups is None:
        return list(KFold(n_splits=n_folds, shuffle=True, random_state=random_state)
                    .split(np.zeros(n)))
    return list(GroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
                .split(np.zeros(n), groups=groups))


def crossfit_folds(T: IntArray, *, n_folds: int, groups: npt.ArrayLike | None,
                   random_state: int) -> list[IntArray]:
    """Held-out row indices of each fold, stratified by treatment, whole groups together.

    Raises
    ------
    ValueError
        When an arm has fewer rows (or groups) than folds.
    """
    check_whole(n_folds, "n_folds", minimum=2, why="cross-fitting needs at least 2 folds")
    treat = np.asarray(T)
    for arm in (0, 1):
        count = int(np.count_nonzero(treat == arm))
        if count < n_folds:
            raise ValueError(f"only {count} {'treated' if arm else 'untreated'} rows for "
                             f"{n_folds} cross-fitting folds: use fewer folds or more data")
    dummy = np.zeros(len(T))
    if groups is None:
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
        return [test for _, test in splitter.split(dummy, T)]
    code = check_groups(groups, len(treat))
    persons = int(code.max()) + 1
    if persons < n_folds:
        raise ValueError(f"groups has {persons} persons for {n_folds} cross-fitting folds "
                         "(a person's rows stay in one fold): use fewer folds or more persons")
    sgk = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
    return [test for _, test in sgk.split(dummy, T, groups=code)]


def cluster_se(scores: FloatArray, groups: npt.ArrayLike | None) -> float:
    """Standard error of the mean of ``scores``, clustered by ``groups`` when given."""
    n = len(scores)
    centred = scores - scores.mean()
    if groups is None:
        return float(np.sqrt(np.sum(centred**2) / (n * (n - 1))))
    sums = np.bincount(group_codes(groups), weights=centred)
    k = len(sums)
    # Small-sample factor k / (k - 1), as in the usual cluster-robust variance.
    return float(np.sqrt(np.sum(sums**2) * k / (k - 1)) / n)


def fit_inputs(estimator: BaseEstimator, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike
               ) -> tuple[FloatArray, IntArray, FloatArray]:
    """``X`` validated (its features remembered by ``estimator``), ``T`` and ``y`` checked."""
    Xa: FloatArray = validate_data(estimator, X, dtype=np.float64, ensure_all_finite="allow-nan")
    return Xa, check_treatment(T, len(Xa)), check_outcome(y, len(Xa))


def predict_inputs(estimator: BaseEstimator, X: Matrix) -> FloatArray:
    """``X`` of a fitted effect estimator, checked against the features it was fitted on."""
    check_is_fitted(estimator)
    Xa: FloatArray = validate_data(estimator, X, reset=False, dtype=np.float64,
                                   ensure_all_finite="allow-nan")
    return Xa
