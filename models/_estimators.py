"""Risk estimators in scikit-learn style: LightGBM, a logistic baseline and a one-column
heuristic, each returning calibrated probabilities.

``__init__`` only stores its keyword arguments; ``fit`` learns; learned state ends in ``_``.
``X`` is a pandas DataFrame of float columns (an array works too; its columns are then called
``x0``, ``x1``, … as in scikit-learn). ``fit`` takes the rows' persons (``groups=``) and
as-of dates (``as_of=``) separately from ``X`` so neither can become a feature.

Each estimator exposes the two halves of its score: ``predict_raw(X)`` (the uncalibrated
score) and ``calibrate(raw)`` (the monotone map to a probability), with
``predict_proba(X)[:, 1] == calibrate(predict_raw(X))``. Serving explains
:class:`LightGBMRisk` with ``shap.TreeExplainer(model.booster_)`` on the raw (log-odds)
scale and reports ``calibrate`` of the raw probability as the score.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.impute import SimpleImputer
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, validate_data

from overblik.models._calibration import (
    CalibrationKind,
    CalibrationMap,
    HoldoutKind,
    fit_calibration,
    holdout_folds,
)

__all__ = ["HeuristicRisk", "LightGBMRisk", "LogisticRisk"]

FloatArray = npt.NDArray[np.float64]
Matrix = pd.DataFrame | npt.NDArray[Any]


class _RiskBase(ClassifierMixin, BaseEstimator):
    """Shared binary-target handling, prediction and tags of the risk estimators."""

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        # Binary risk only; missing values are legitimate (e.g. "days since" with no event).
        assert tags.classifier_tags is not None
        tags.classifier_tags.multi_class = False
        tags.input_tags.allow_nan = True
        return tags

    def _validate_fit(self, X: Matrix, y: npt.ArrayLike) -> tuple[FloatArray, npt.NDArray[np.int_]]:
        Xa, ya = validate_data(self, X, y, dtype=np.float64, ensure_all_finite="allow-nan")
        check_classification_targets(ya)
        y_type = type_of_target(ya, input_name="y", raise_unknown=True)
        if y_type != "binary":
            raise ValueError(
                f"Only binary classification is supported. The type of the target is {y_type}: "
                f"{type(self).__name__} is a binary risk model; pass y as 0/1"
            )
        classes = np.unique(ya)
        if len(classes) != 2:
            raise ValueError(
                f"{type(self).__name__} needs both classes in y (0 and 1); only one class is "
                f"present: {classes.tolist()}"
            )
        self.classes_ = classes
        return Xa, (ya == classes[1]).astype(np.int_)

    def _validate_predict(self, X: Matrix) -> FloatArray:
        check_is_fitted(self)
        Xa: FloatArray = validate_data(
            self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan"
        )
        return Xa

    def _raw(self, Xa: FloatArray) -> FloatArray:
        raise NotImplementedError

    def predict_raw(self, X: Matrix) -> FloatArray:
        """Uncalibrated score of the positive class (the input of :meth:`calibrate`).

        Parameters
        ----------
        X : DataFrame of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n,)
        """
        return self._raw(self._validate_predict(X))

    def calibrate(self, raw_proba: npt.ArrayLike) -> FloatArray:
        """Map raw scores from :meth:`predict_raw` to calibrated probabilities.

        Parameters
        ----------
        raw_proba : array-like of shape (n,)

        Returns
        -------
        ndarray of shape (n,)
            Probability of the positive class.
        """
        check_is_fitted(self)
        return self.calibration_map_(raw_proba)

    calibration_map_: CalibrationMap

    def predict_proba(self, X: Matrix) -> FloatArray:
        """Calibrated class probabilities.

        Parameters
        ----------
        X : DataFrame of shape (n, n_features)

        Returns
        -------
        ndarray of shape (n, 2)
            Columns in the order of ``classes_``; column 1 is the risk.
        """
        p = self.calibrate(self.predict_raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: Matrix) -> npt.NDArray[Any]:
        """Class with the higher calibrated probability (risk >= 0.5 is positive)."""
        p = self.predict_proba(X)[:, 1]
        return np.asarray(self.classes_[(p >= 0.5).astype(np.intp)])


class _HeldOutCalibrated(_RiskBase):
    """Fits a scorer and a calibration map learned on rows the scorer was not fitted on."""

    calibration: CalibrationKind
    calibration_fraction: float
    calibration_holdout: HoldoutKind
    crossfit: bool
    random_state: int

    def _needs_holdout(self) -> bool:
        return self.calibration != "none"

    def _fit_scorer(
        self, X: FloatArray, y: npt.NDArray[np.int_], X_val: FloatArray | None,
        y_val: npt.NDArray[np.int_] | None,
    ) -> int:
        """Fit the scorer (``X_val``: the fold's held-out part, for early stopping).

        Returns the number of boosting rounds used (0 for a scorer without rounds).
        """
        raise NotImplementedError

    def _refit(self, X: FloatArray, y: npt.NDArray[np.int_], fold_rounds: list[int]) -> None:
        """Fit the final scorer on all rows after the cross-fitting folds."""
        self._fit_scorer(X, y, None, None)

    def fit(
        self, X: Matrix, y: npt.ArrayLike, *, groups: npt.ArrayLike | None = None,
        as_of: npt.ArrayLike | None = None,
    ) -> Self:
        """Fit the scorer and its calibration.

        Parameters
        ----------
        X : DataFrame of shape (n, n_features)
            Float features.
        y : array-like of shape (n,)
            Binary outcome.
        groups : array-like of shape (n,), optional
            Person of each row. Pass it whenever a person has several rows (several as-of
            dates): held-out parts then take whole persons.
        as_of : array-like of shape (n,), optional
            As-of date of each row; used by ``calibration_holdout="latest_as_of"``.

        Returns
        -------
        self
        """
        Xa, ya = self._validate_fit(X, y)
        self.n_calibration_rows_ = 0
        if not self._needs_holdout():
            self._fit_scorer(Xa, ya, None, None)
            self.calibration_map_ = fit_calibration("none", [], [])
            return self
        folds = holdout_folds(
            ya, fraction=self.calibration_fraction, kind=self.calibration_holdout,
            crossfit=self.crossfit, groups=groups, as_of=as_of, random_state=self.random_state,
        )
        raw = np.full(len(ya), np.nan)
        fold_rounds = []
        for cal_rows in folds:
            fit_rows = np.setdiff1d(np.arange(len(ya)), cal_rows, assume_unique=True)
            fold_rounds.append(
                self._fit_scorer(Xa[fit_rows], ya[fit_rows], Xa[cal_rows], ya[cal_rows])
            )
            raw[cal_rows] = self._raw(Xa[cal_rows])
        if len(folds) > 1:
            self._refit(Xa, ya, fold_rounds)
        held_out = ~np.isnan(raw)
        self.calibration_map_ = fit_calibration(self.calibration, raw[held_out], ya[held_out])
        self.n_calibration_rows_ = int(held_out.sum())
        return self


_LGB_SPECIAL = re.compile(r'[",:\[\]{}]')


class LightGBMRisk(_HeldOutCalibrated):
    """Gradient-boosted trees (LightGBM) with probability calibration on held-out persons.

    ``fit`` deals the persons (``groups``) into ``round(1 / calibration_fraction)`` folds;
    for each fold a booster is trained on the other folds, early-stopped on this one, and
    predicts this one (out-of-fold). The calibration map is fitted on all out-of-fold raw
    probabilities, and the final booster is refitted on every row with the folds' mean
    number of rounds. Whole persons are held out because a person's rows at other as-of
    dates share most of the profile and overlapping label windows; cross-fitting (rather
    than one holdout) calibrates on every training row, which matters because a person's
    rows are correlated, so one holdout's effective size is small and its base rate noisy.
    Why not the latest as-of date: see :mod:`overblik.models._calibration`.

    Parameters
    ----------
    n_estimators : int, default 400
        Most boosting rounds (early stopping usually ends sooner).
    learning_rate : float, default 0.03
    num_leaves : int, default 31
    min_child_samples : int, default 50
        Fewest rows in a leaf: regularises against rare-outcome noise.
    calibration : {"isotonic", "sigmoid", "none"}, default "isotonic"
        ``isotonic`` is centred isotonic regression (monotone, no ties between distinct
        scores); ``sigmoid`` is Platt scaling on the raw log-odds.
    calibration_fraction : float, default 0.25
        Share of persons held out of each fit (for calibration and early stopping).
    calibration_holdout : {"groups", "latest_as_of"}, default "groups"
        ``groups``: whole persons, as above. ``latest_as_of``: one holdout, the rows at the
        latest as-of date (needs ``as_of=`` in ``fit``); worse on later dates.
    crossfit : bool, default True
        For ``groups``: cross-fit as above; ``False`` holds out one ``calibration_fraction``
        of the persons and keeps the booster trained on the rest (faster, noisier).
    early_stopping_rounds : int or None, default 50
        Stop when the held-out log-loss has not improved for this many rounds; ``None``
        trains all ``n_estimators`` rounds.
    subsample : float, default 0.8
        Row share per tree (bagging every round).
    colsample_bytree : float, default 0.8
        Feature share per tree.
    reg_lambda : float, default 1.0
        L2 penalty on leaf values.
    random_state : int, default 0
    n_jobs : int or None, default None
        Threads; ``None`` lets LightGBM use all cores.

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The uncalibrated booster, trimmed to the rounds it uses (for SHAP:
        ``shap.TreeExplainer(booster_)`` or ``booster_.predict(X, pred_contrib=True)``
        explain the raw log-odds; the score is ``calibrate(booster_.predict(X))``).
    best_iteration_ : int
        Rounds in ``booster_``.
    fold_best_iterations_ : ndarray of int
        Early-stopped rounds per cross-fitting fold (when cross-fitted).
    n_calibration_rows_ : int
        Rows the calibration map was fitted on.
    feature_importances_ : ndarray of shape (n_features,)
        Total gain per feature.
    calibration_map_ : CalibrationMap
    classes_, n_features_in_, feature_names_in_ : as in scikit-learn.
    """

    def __init__(
        self, *, n_estimators: int = 400, learning_rate: float = 0.03, num_leaves: int = 31,
        min_child_samples: int = 50, calibration: CalibrationKind = "isotonic",
        calibration_fraction: float = 0.25, calibration_holdout: HoldoutKind = "groups",
        crossfit: bool = True, early_stopping_rounds: int | None = 50, subsample: float = 0.8,
        colsample_bytree: float = 0.8, reg_lambda: float = 1.0, random_state: int = 0,
        n_jobs: int | None = None,
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.calibration_holdout = calibration_holdout
        self.crossfit = crossfit
        self.early_stopping_rounds = early_stopping_rounds
        self.subsample = subsample
        self.colsample_bytree = colsample_bytree
        self.reg_lambda = reg_lambda
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _needs_holdout(self) -> bool:
        return self.calibration != "none" or self.early_stopping_rounds is not None

    def _params(self) -> dict[str, Any]:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_child_samples,
            "bagging_fraction": self.subsample,
            "bagging_freq": 1 if self.subsample < 1.0 else 0,
            "feature_fraction": self.colsample_bytree,
            "lambda_l2": self.reg_lambda,
            "seed": self.random_state,
            "num_threads": 0 if self.n_jobs is None else self.n_jobs,
            "deterministic": True,
            "force_row_wise": True,
            "feature_pre_filter": False,
            "verbosity": -1,
        }

    def _booster_feature_names(self) -> list[str]:
        names = getattr(self, "feature_names_in_", None)
        if names is None:
            return [f"x{i}" for i in range(self.n_features_in_)]
        # LightGBM refuses JSON special characters in feature names.
        out = [_LGB_SPECIAL.sub("_", str(n)) for n in names]
        first: dict[str, str] = {}
        for original, name in zip(names, out, strict=True):
            if name in first:  # LightGBM would refuse the duplicate with a cryptic error
                raise ValueError(
                    f"columns {first[name]!r} and {str(original)!r} of X both become {name!r} "
                    "for LightGBM, which replaces the characters \" , : [ ] { } with _: "
                    "rename one of them")
            first[name] = str(original)
        return out

    def _fit_scorer(
        self, X: FloatArray, y: npt.NDArray[np.int_], X_val: FloatArray | None,
        y_val: npt.NDArray[np.int_] | None, rounds: int | None = None,
    ) -> int:
        names = self._booster_feature_names()
        params = self._params()
        train = lgb.Dataset(X, label=y, feature_name=names, params=params)
        valid_sets: list[lgb.Dataset] = []
        callbacks: list[Callable[..., Any]] = []
        if X_val is not None and self.early_stopping_rounds is not None:
            params["metric"] = "binary_logloss"
            valid_sets = [lgb.Dataset(X_val, label=y_val, reference=train)]
            callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        booster = lgb.train(
            params, train, num_boost_round=rounds or self.n_estimators, valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.current_iteration()
        # Keep only the trees that are used, so SHAP on booster_ explains exactly the score.
        self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
        self.best_iteration_ = int(best)
        self.feature_importances_ = np.asarray(
            self.booster_.feature_importance(importance_type="gain"), dtype=np.float64
        )
        return self.best_iteration_

    def _refit(self, X: FloatArray, y: npt.NDArray[np.int_], fold_rounds: list[int]) -> None:
        # The folds' early-stopped round counts, averaged: the refit has no held-out part.
        self.fold_best_iterations_ = np.asarray(fold_rounds, dtype=np.intp)
        self._fit_scorer(X, y, None, None, rounds=max(1, round(float(np.mean(fold_rounds)))))

    def _raw(self, Xa: FloatArray) -> FloatArray:
        return np.asarray(self.booster_.predict(Xa), dtype=np.float64)


def _signed_log1p(X: FloatArray) -> FloatArray:
    return np.asarray(np.sign(X) * np.log1p(np.abs(X)), dtype=np.float64)


class LogisticRisk(_HeldOutCalibrated):
    """Logistic regression baseline, calibrated like :class:`LightGBMRisk` (cross-fitted on
    held-out persons, then refitted on all rows).

    Count-like columns (non-negative whole numbers above 1 in training) are log-transformed
    (``sign(x) * log1p(|x|)``) because event counts are heavy-tailed and their effect on the
    log-odds flattens; missing values are imputed by the median with a missing-indicator
    column; then standardised.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 penalty strength.
    log_counts : bool, default True
        Log-transform count-like columns.
    calibration : {"isotonic", "sigmoid", "none"}, default "isotonic"
    calibration_fraction : float, default 0.25
    calibration_holdout : {"groups", "latest_as_of"}, default "groups"
    crossfit : bool, default True
    max_iter : int, default 1000
    random_state : int, default 0

    Attributes
    ----------
    pipeline_ : sklearn Pipeline
        Imputer, scaler and logistic regression (uncalibrated).
    log_columns_ : ndarray of bool of shape (n_features,)
        The columns that were log-transformed.
    n_iter_ : int
        Solver iterations of the final fit.
    calibration_map_ : CalibrationMap
    """

    def __init__(
        self, *, C: float = 1.0, log_counts: bool = True,
        calibration: CalibrationKind = "isotonic", calibration_fraction: float = 0.25,
        calibration_holdout: HoldoutKind = "groups", crossfit: bool = True,
        max_iter: int = 1000, random_state: int = 0,
    ) -> None:
        self.C = C
        self.log_counts = log_counts
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.calibration_holdout = calibration_holdout
        self.crossfit = crossfit
        self.max_iter = max_iter
        self.random_state = random_state

    def _transform(self, X: FloatArray) -> FloatArray:
        if not self.log_columns_.any():
            return X
        out = X.copy()
        out[:, self.log_columns_] = _signed_log1p(X[:, self.log_columns_])
        return out

    def _fit_scorer(
        self, X: FloatArray, y: npt.NDArray[np.int_], X_val: FloatArray | None,
        y_val: npt.NDArray[np.int_] | None,
    ) -> int:
        if self.log_counts:
            with np.errstate(invalid="ignore"):
                whole = np.all(np.isnan(X) | ((X >= 0) & (np.floor(X) == X)), axis=0)
                big = np.nanmax(np.where(np.isnan(X), -np.inf, X), axis=0) > 1
            self.log_columns_ = np.asarray(whole & big, dtype=bool)
        else:
            self.log_columns_ = np.zeros(X.shape[1], dtype=bool)
        pipeline: Pipeline = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
            LogisticRegression(C=self.C, max_iter=self.max_iter),
        )
        self.pipeline_ = pipeline.fit(self._transform(X), y)
        self.n_iter_ = self.pipeline_[-1].n_iter_
        return 0

    def _raw(self, Xa: FloatArray) -> FloatArray:
        return np.asarray(self.pipeline_.predict_proba(self._transform(Xa))[:, 1], dtype=np.float64)


class HeuristicRisk(_RiskBase):
    """The one-line baseline: risk is a monotone function of one named column.

    The raw score (:meth:`predict_raw`) is the column's value; ``fit`` learns an isotonic
    map from it to the outcome rate (:meth:`calibrate`; a step function: the usual
    heuristic columns are small counts, so equal values share a probability). No holdout: a
    one-column monotone map has little to overfit.

    Parameters
    ----------
    column : str
        The column, e.g. ``"cross_silo__siloes_known_365d"``. For an array without column
        names, columns are called ``x0``, ``x1``, … (scikit-learn's convention).
    increasing : bool or "auto", default True
        Direction of the map; ``True`` is the heuristic's premise ("more is riskier");
        ``"auto"`` picks the sign of the Spearman correlation in training.

    Attributes
    ----------
    column_index_ : int
    isotonic_ : sklearn IsotonicRegression
        The map from the column's value to the probability.
    """

    def __init__(self, *, column: str, increasing: bool | Literal["auto"] = True) -> None:
        self.column = column
        self.increasing = increasing

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        assert tags.classifier_tags is not None
        # One column by design: it is the baseline to beat, not a good classifier.
        tags.classifier_tags.poor_score = True
        # Missing values elsewhere in X are fine; in its own column they are an error.
        tags.input_tags.allow_nan = False
        return tags

    def fit(
        self, X: Matrix, y: npt.ArrayLike, *, groups: npt.ArrayLike | None = None,
        as_of: npt.ArrayLike | None = None,
    ) -> Self:
        """Learn the monotone map from the column to the outcome rate.

        Parameters
        ----------
        X : DataFrame of shape (n, n_features)
        y : array-like of shape (n,)
        groups, as_of : ignored
            Accepted so every risk estimator is fitted the same way.

        Returns
        -------
        self
        """
        Xa, ya = self._validate_fit(X, y)
        names = getattr(self, "feature_names_in_", None)
        names_list = [str(n) for n in names] if names is not None else [
            f"x{i}" for i in range(Xa.shape[1])
        ]
        if self.column not in names_list:
            shown = ", ".join(names_list[:10]) + (", …" if len(names_list) > 10 else "")
            raise ValueError(
                f"HeuristicRisk: column {self.column!r} is not in X (columns: {shown}); "
                f"pass column= one of X's columns"
            )
        self.column_index_ = names_list.index(self.column)
        self.isotonic_ = IsotonicRegression(
            increasing=self.increasing, out_of_bounds="clip", y_min=0.0, y_max=1.0
        ).fit(self._column(Xa), ya)
        return self

    def calibrate(self, raw_proba: npt.ArrayLike) -> FloatArray:
        """Map the column's values to probabilities (the learned isotonic step function).

        Parameters
        ----------
        raw_proba : array-like of shape (n,)
            Values of the column.

        Returns
        -------
        ndarray of shape (n,)
        """
        check_is_fitted(self)
        p = self.isotonic_.predict(np.asarray(raw_proba, dtype=np.float64))
        return np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1.0 - 1e-6)

    def _column(self, Xa: FloatArray) -> FloatArray:
        values = Xa[:, self.column_index_]
        missing = int(np.isnan(values).sum())
        if missing:
            raise ValueError(
                f"HeuristicRisk: column {self.column!r} has {missing} missing value(s) (NaN); "
                f"fill them (e.g. 0 for a count) before fitting or scoring"
            )
        return values

    def _raw(self, Xa: FloatArray) -> FloatArray:
        return self._column(Xa).copy()
