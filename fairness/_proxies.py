"""Proxy diagnostics: how well the model's features reveal each sensitive attribute.

Leaving a protected attribute out of ``X`` does not keep it out of the model when other
features carry it (district for origin, a benefit type for age). For every attribute a small
LightGBM classifier predicts it from ``X``; its cross-validated ROC AUC (one-vs-rest macro
average for more than two groups) says how much of the attribute the features carry (0.5:
nothing, 1: all of it), and the features with the largest share of the classifier's gain
say which ones carry it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from overblik.fairness._groups import MISSING, check_aligned, encode_attribute
from overblik.features._errors import InputError

__all__ = ["ProxyFeature", "ProxyReport", "ProxyResult", "proxy_diagnostics"]


@dataclass(frozen=True)
class ProxyFeature:
    """A feature and its share of the proxy classifier's total gain (shares sum to 1)."""

    feature: str
    importance: float


@dataclass(frozen=True)
class ProxyResult:
    """How well ``X`` predicts one attribute.

    Attributes
    ----------
    attribute : str
    auc : float
        Cross-validated ROC AUC (macro one-vs-rest for several groups); NaN with one group.
    n : int
        Rows used (rows with the attribute missing are left out).
    classes : tuple of str
        The groups predicted (groups with fewer rows than folds are left out).
    top_features : tuple of ProxyFeature
        Largest gain shares first.
    """

    attribute: str
    auc: float
    n: int
    classes: tuple[str, ...]
    top_features: tuple[ProxyFeature, ...]


@dataclass(frozen=True)
class ProxyReport:
    """Proxy diagnostics of every attribute."""

    results: tuple[ProxyResult, ...]
    folds: int
    seed: int

    def table(self) -> pd.DataFrame:
        """One row per attribute: AUC, rows, groups and the top features."""
        return pd.DataFrame.from_records(
            [{"attribute": r.attribute, "n": r.n, "auc": r.auc, "classes": len(r.classes),
              "top_features": tuple(f.feature for f in r.top_features)}
             for r in self.results],
            columns=["attribute", "n", "auc", "classes", "top_features"])

    def feature_table(self) -> pd.DataFrame:
        """One row per attribute and top feature, with its rank and gain share."""
        return pd.DataFrame.from_records(
            [{"attribute": r.attribute, "auc": r.auc, "rank": i + 1, "feature": f.feature,
              "importance": f.importance}
             for r in self.results for i, f in enumerate(r.top_features)],
            columns=["attribute", "auc", "rank", "feature", "importance"])

    def result(self, attribute: str) -> ProxyResult:
        """The result of one attribute."""
        for r in self.results:
            if r.attribute == attribute:
                return r
        raise KeyError(f"no proxy result for attribute {attribute!r}")


def _model_frame(X: pd.DataFrame) -> pd.DataFrame:
    """Positional feature names LightGBM accepts; text columns as categories."""
    out = {}
    for j, c in enumerate(X.columns):
        col = X[c]
        if col.dtype == bool:
            col = col.astype(np.int8)
        elif not (pd.api.types.is_numeric_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype)):
            col = col.astype("category")
        out[f"f{j}"] = col.to_numpy() if not isinstance(col.dtype, pd.CategoricalDtype) else col
    return pd.DataFrame(out).reset_index(drop=True)


def _classifier(seed: int) -> lgb.LGBMClassifier:
    return lgb.LGBMClassifier(n_estimators=100, learning_rate=0.1, num_leaves=15,
                              min_child_samples=20, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, random_state=seed, n_jobs=1, verbose=-1)


def _one(X: pd.DataFrame, target: pd.Series, names: list[str], *, folds: int, seed: int,
         top_n: int) -> ProxyResult:
    attribute = str(target.name)
    codes, groups = encode_attribute(target)
    keep = np.ones(len(codes), dtype=bool)
    if groups[-1] == MISSING:
        keep &= codes != len(groups) - 1
    counts = np.bincount(codes[keep], minlength=len(groups))
    big = counts >= folds
    keep &= big[codes]
    classes = tuple(g for g, b in zip(groups, big, strict=True) if b and g != MISSING)
    n = int(keep.sum())
    if len(classes) < 2:
        return ProxyResult(attribute, math.nan, n, classes, ())
    y = np.searchsorted(np.flatnonzero(big), codes[keep])
    Xk = X.loc[keep].reset_index(drop=True)
    proba = np.zeros((n, len(classes)))
    gain = np.zeros(X.shape[1])
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in cv.split(np.zeros(n), y):
        model = _classifier(seed).fit(Xk.iloc[train], y[train])
        proba[test] = model.predict_proba(Xk.iloc[test])
        gain += model.booster_.feature_importance(importance_type="gain")
    if len(classes) == 2:
        auc = float(roc_auc_score(y, proba[:, 1]))
    else:
        auc = float(roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    share = gain / gain.sum() if gain.sum() > 0 else gain
    top = np.argsort(-share, kind="stable")[:top_n]
    features = tuple(ProxyFeature(names[i], float(share[i])) for i in top if share[i] > 0)
    return ProxyResult(attribute, auc, n, classes, features)


def proxy_diagnostics(X: pd.DataFrame, sensitive: pd.DataFrame, *, seed: int = 0,
                      max_rows: int = 50_000, top_n: int = 5, folds: int = 3) -> ProxyReport:
    """Predict each sensitive attribute from the features; report AUC and top features.

    Parameters
    ----------
    X : DataFrame
        The model's features (rows matched to ``sensitive`` by position).
    sensitive : DataFrame
        One column per attribute.
    seed : int, default 0
    max_rows : int, default 50_000
        A random sample of this many rows is used (the AUC settles long before).
    top_n : int, default 5
        Features reported per attribute.
    folds : int, default 3
        Cross-validation folds (stratified); the AUC is on out-of-fold predictions and the
        gain shares are summed over the fold models.

    Returns
    -------
    ProxyReport
    """
    if not isinstance(X, pd.DataFrame) or not isinstance(sensitive, pd.DataFrame):
        raise InputError("X and sensitive must be DataFrames (features, and one column per "
                         "attribute)")
    if len(X) != len(sensitive):
        raise InputError(f"X has {len(X)} rows but sensitive has {len(sensitive)}: give the "
                         "same rows in the same order")
    check_aligned(sensitive, X=X)
    if X.shape[1] == 0 or sensitive.shape[1] == 0:
        raise InputError("X and sensitive need at least one column each")
    if len(X) == 0:
        raise InputError("nothing to check: X has no rows")
    if max_rows < 2 * folds or folds < 2 or top_n < 1:
        raise InputError(f"max_rows={max_rows}, folds={folds}, top_n={top_n}: need folds >= 2, "
                         "max_rows >= 2 * folds and top_n >= 1")
    rows = np.arange(len(X))
    if len(X) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(len(X), max_rows, replace=False))
    frame = _model_frame(X.iloc[rows])
    attrs = sensitive.iloc[rows].reset_index(drop=True)
    names = [str(c) for c in X.columns]
    results = tuple(_one(frame, attrs[c].rename(str(c)), names, folds=folds, seed=seed,
                         top_n=top_n) for c in attrs.columns)
    return ProxyReport(results=results, folds=folds, seed=seed)
