"""Mitigation options side by side: what each costs in performance and buys in fairness.

For one sensitive attribute (the board's choice) and each fairness criterion, two fairlearn
methods are compared with the unmitigated model on the same test rows:

- ``threshold_optimizer``: :class:`fairlearn.postprocessing.ThresholdOptimizer` on the fitted
  model's probabilities (``prefit``), thresholds per group that maximise balanced accuracy
  under the criterion. Its decisions are randomised between two thresholds, so it has no
  score and no AUC.
- ``exponentiated_gradient``: :class:`fairlearn.reductions.ExponentiatedGradient` training a
  logistic regression (median-imputed, standardised: it is refitted in every iteration, so
  it must be fast) under the criterion, with false positives and false negatives weighted so
  that the objective is balanced accuracy (on a rare outcome, plain error rate is met by
  selecting nobody). Its AUC is that of its randomised classifier's probabilities.

The unmitigated model decides with one threshold for everyone, the one that maximises
balanced accuracy on the training rows: the same objective, without the constraint. That
rule selects another share than the audit's (the top ``capacity_k``, say), so the model
*as audited* (``audited=``, the audit's decisions) is shown first: the row the rest of the
report describes, which the board would otherwise compare with the unmitigated row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.postprocessing import ThresholdOptimizer
from fairlearn.reductions import (
    DemographicParity,
    EqualizedOdds,
    ErrorRate,
    ExponentiatedGradient,
    TruePositiveRateParity,
)
from matplotlib.figure import Figure
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score, roc_curve
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from overblik.fairness._audit import _labels
from overblik.fairness._group_metrics import rates_from_cells
from overblik.fairness._groups import encode_attribute
from overblik.features._errors import InputError

__all__ = ["CRITERIA", "METHODS", "MitigationOption", "MitigationReport", "compare_mitigations",
           "disparities", "plot_tradeoff"]

Criterion = Literal["demographic_parity", "equalized_odds", "true_positive_rate_parity"]
Method = Literal["threshold_optimizer", "exponentiated_gradient"]
CRITERIA: tuple[str, ...] = ("demographic_parity", "equalized_odds", "true_positive_rate_parity")
METHODS: tuple[str, ...] = ("threshold_optimizer", "exponentiated_gradient")
_MOMENT = {
    "demographic_parity": DemographicParity,
    "equalized_odds": EqualizedOdds,
    "true_positive_rate_parity": TruePositiveRateParity,
}


@dataclass(frozen=True)
class MitigationOption:
    """One option's performance and disparities on the test rows.

    ``disparities`` maps each criterion to its difference between groups (fairlearn's
    ``demographic_parity_difference``, ``equalized_odds_difference`` and
    ``equal_opportunity_difference``; 0 is parity).
    """

    option: str
    method: str
    criterion: str
    auc: float
    balanced_accuracy: float
    accuracy: float
    selection_rate: float
    disparities: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class MitigationReport:
    """The unmitigated model and every mitigation, for one attribute."""

    attribute: str
    criteria: tuple[str, ...]
    options: tuple[MitigationOption, ...]
    n_train: int
    n_test: int
    threshold: float

    def table(self) -> pd.DataFrame:
        """One row per option: performance, selection rate, and the disparity per criterion."""
        return pd.DataFrame.from_records(
            [{"option": o.option, "method": o.method, "criterion": o.criterion, "auc": o.auc,
              "balanced_accuracy": o.balanced_accuracy, "accuracy": o.accuracy,
              "selection_rate": o.selection_rate,
              **{f"{c}_difference": o.disparities[c] for c in self.criteria}}
             for o in self.options],
            columns=["option", "method", "criterion", "auc", "balanced_accuracy", "accuracy",
                     "selection_rate", *(f"{c}_difference" for c in self.criteria)])

    def option(self, method: str, criterion: str) -> MitigationOption:
        """The option of one method and criterion (``"unmitigated", ""`` for the model)."""
        for o in self.options:
            if o.method == method and o.criterion == criterion:
                return o
        raise KeyError(f"no option {method}/{criterion} in the mitigation report")


def _attribute(a: pd.Series | pd.DataFrame | npt.ArrayLike, n: int, name: str) -> pd.Series:
    if isinstance(a, pd.DataFrame):
        if a.shape[1] != 1:
            raise InputError(f"{name}: give one sensitive column (the attribute to mitigate "
                             f"for), got {a.shape[1]} columns")
        a = a.iloc[:, 0]
    series = a if isinstance(a, pd.Series) else pd.Series(np.asarray(a), name="attribute")
    if len(series) != n:
        raise InputError(f"{name} has {len(series)} rows but the features have {n}")
    codes, names = encode_attribute(series.reset_index(drop=True))
    return pd.Series(np.asarray(names, dtype=object)[codes], name=str(series.name))


def _outcome(y: pd.Series | npt.ArrayLike, n: int, name: str) -> npt.NDArray[np.int8]:
    out = _labels(y, name)
    if len(out) != n:
        raise InputError(f"{name} has {len(out)} rows but the features have {n}")
    return out


def _fitted(estimator: BaseEstimator, X: pd.DataFrame, y: npt.NDArray[np.int8]) -> BaseEstimator:
    try:
        check_is_fitted(estimator)
        return estimator
    except NotFittedError:
        return clone(estimator).fit(X, y)


def _reduction_base(seed: int) -> Pipeline:
    # Refitted once per iteration of exponentiated gradient: keep it fast.
    return make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                         StandardScaler(), LogisticRegression(max_iter=500, random_state=seed))


def _balanced_threshold(y: npt.NDArray[np.int8], score: npt.NDArray[np.float64]) -> float:
    fpr, tpr, thresholds = roc_curve(y, score)
    best = int(np.argmax(tpr - fpr))
    return float(min(thresholds[best], 1.0))


def disparities(y: npt.NDArray[np.int8], pred: npt.NDArray[Any], a: pd.Series
                ) -> dict[str, float]:
    """Largest difference between groups per criterion (fairlearn's ``between_groups``).

    ``demographic_parity``: selection rate; ``equalized_odds``: the larger of the TPR and
    FPR differences; ``true_positive_rate_parity``: TPR. Computed from confusion counts
    (fairlearn's ``MetricFrame`` per option was the slowest part; the tests check that
    both agree).
    """
    codes, names = pd.factorize(a)
    cells = np.bincount(codes * 4 + 2 * y.astype(np.int64) + np.asarray(pred, dtype=np.int64),
                        minlength=4 * len(names)).reshape(len(names), 4).astype(np.float64)
    rates = rates_from_cells(cells)

    def spread(column: int) -> float:
        v = rates[:, column]
        v = v[np.isfinite(v)]
        return float(v.max() - v.min()) if len(v) else math.nan

    tpr, fpr = spread(2), spread(3)
    return {"demographic_parity": spread(1), "equalized_odds": max(tpr, fpr),
            "true_positive_rate_parity": tpr}


def _option(option: str, method: str, criterion: str, y: npt.NDArray[np.int8],
            pred: npt.NDArray[Any], a: pd.Series, criteria: tuple[str, ...],
            proba: npt.NDArray[np.float64] | None) -> MitigationOption:
    both = 0 < y.sum() < len(y)
    return MitigationOption(
        option=option, method=method, criterion=criterion,
        auc=float(roc_auc_score(y, proba)) if proba is not None and both else math.nan,
        balanced_accuracy=float(balanced_accuracy_score(y, pred)) if both else math.nan,
        accuracy=float(accuracy_score(y, pred)),
        selection_rate=float(np.mean(pred)),
        disparities={c: d for c, d in disparities(y, pred, a).items() if c in criteria},
    )


def compare_mitigations(
    estimator: BaseEstimator, X_train: pd.DataFrame, y_train: npt.ArrayLike,
    A_train: pd.Series | pd.DataFrame, X_test: pd.DataFrame, y_test: npt.ArrayLike,
    A_test: pd.Series | pd.DataFrame, *,
    criteria: tuple[str, ...] = CRITERIA, methods: tuple[str, ...] = METHODS, seed: int = 0,
    max_train_rows: int = 20_000, eg_max_iter: int = 30,
    audited: npt.ArrayLike | None = None,
) -> MitigationReport:
    """Compare the unmitigated model with fairlearn's mitigations for each criterion.

    Parameters
    ----------
    estimator : scikit-learn classifier
        The risk model; fitted (used as is) or not (fitted on the training rows).
    X_train, y_train, A_train
        Training rows: numeric features (missing values allowed), outcomes, and the one
        sensitive attribute (a Series; missing values form ``"(missing)"``).
    X_test, y_test, A_test
        Test rows, where every option is measured.
    criteria : tuple of str
        Any of ``"demographic_parity"``, ``"equalized_odds"``, ``"true_positive_rate_parity"``.
    methods : tuple of str
        Any of ``"threshold_optimizer"``, ``"exponentiated_gradient"``.
    seed : int, default 0
        Seeds the row sample, the models and the randomised decisions.
    max_train_rows : int, default 20_000
        A random sample of at most this many training rows fits the mitigations.
    eg_max_iter : int, default 30
        Iterations of exponentiated gradient (each fits one logistic regression).
    audited : array-like of bool, optional
        The test rows' decisions under the audit's rule (:func:`decide`): shown first, as
        ``as_audited``.

    Returns
    -------
    MitigationReport
    """
    unknown_c = [c for c in criteria if c not in CRITERIA]
    unknown_m = [m for m in methods if m not in METHODS]
    if unknown_c or unknown_m or not criteria:
        raise InputError(f"criteria {list(criteria)} / methods {list(methods)}: use criteria "
                         f"from {list(CRITERIA)} and methods from {list(METHODS)}")
    n_train, n_test = len(X_train), len(X_test)
    if n_train == 0 or n_test == 0:
        raise InputError("compare_mitigations needs training and test rows")
    y_tr = _outcome(y_train, n_train, "y_train")
    y_te = _outcome(y_test, n_test, "y_test")
    a_tr = _attribute(A_train, n_train, "A_train")
    a_te = _attribute(A_test, n_test, "A_test")
    X_tr = X_train.reset_index(drop=True)
    X_te = X_test.reset_index(drop=True)
    if n_train > max_train_rows:
        rows = np.sort(np.random.default_rng(seed).choice(n_train, max_train_rows,
                                                          replace=False))
        X_tr, y_tr, a_tr = X_tr.iloc[rows].reset_index(drop=True), y_tr[rows], \
            a_tr.iloc[rows].reset_index(drop=True)
    # After the sample: the rows the mitigations learn from are the ones that must cover
    # every group, each with both outcomes.
    unseen = sorted(set(a_te) - set(a_tr))
    if unseen:
        raise InputError(f"A_test has groups {unseen} that A_train lacks: the mitigations "
                         "learn per group, so train on rows from every group")
    one_class = sorted(str(g) for g, labels in pd.Series(y_tr).groupby(a_tr.to_numpy())
                       if labels.nunique() < 2)
    if one_class:
        raise InputError(f"A_train groups {one_class} have only one outcome among the training "
                         "rows: the mitigations learn per group, so each group needs both "
                         "outcomes (more rows, or another attribute)")
    model = _fitted(estimator, X_tr, y_tr)
    threshold = _balanced_threshold(y_tr, model.predict_proba(X_tr)[:, 1])
    proba_te = model.predict_proba(X_te)[:, 1]
    options = [_option("unmitigated", "unmitigated", "", y_te,
                       (proba_te >= threshold).astype(int), a_te, criteria, proba_te)]
    if audited is not None:
        chosen = np.asarray(audited, dtype=bool).reshape(-1)
        if len(chosen) != n_test:
            raise InputError(f"audited has {len(chosen)} rows but the test features have "
                             f"{n_test}")
        options.insert(0, _option("as audited", "as_audited", "", y_te, chosen.astype(int),
                                  a_te, criteria, proba_te))
    rate = float(y_tr.mean())
    for criterion in criteria:
        if "threshold_optimizer" in methods:
            post = ThresholdOptimizer(estimator=model, constraints=criterion,  # type: ignore[arg-type]
                                      objective="balanced_accuracy_score", prefit=True,
                                      predict_method="predict_proba")
            post.fit(X_tr, y_tr, sensitive_features=a_tr)
            pred = post.predict(X_te, sensitive_features=a_te, random_state=seed)
            options.append(_option(f"threshold_optimizer / {criterion}", "threshold_optimizer",
                                   criterion, y_te, np.asarray(pred), a_te, criteria, None))
        if "exponentiated_gradient" in methods:
            reduction = ExponentiatedGradient(
                _reduction_base(seed), _MOMENT[criterion](),
                objective=ErrorRate(costs={"fp": rate, "fn": 1.0 - rate}),
                max_iter=eg_max_iter, sample_weight_name="logisticregression__sample_weight")
            reduction.fit(X_tr, y_tr, sensitive_features=a_tr)
            pred = reduction.predict(X_te, random_state=seed)
            proba = reduction._pmf_predict(X_te)[:, 1]
            options.append(_option(f"exponentiated_gradient / {criterion}",
                                   "exponentiated_gradient", criterion, y_te, np.asarray(pred),
                                   a_te, criteria, np.asarray(proba, dtype=np.float64)))
    return MitigationReport(attribute=str(a_te.name), criteria=tuple(criteria),
                            options=tuple(options), n_train=len(y_tr), n_test=n_test,
                            threshold=threshold)


_PLOT_WORDS: dict[str, tuple[str, str]] = {
    "unmitigated": ("uden afbødning", "unmitigated"),
    "as audited": ("som auditeret", "as audited"),
    "difference": ("forskel i {criterion}", "{criterion} difference"),
    "balanced_accuracy": ("balanceret træfsikkerhed", "balanced accuracy"),
    "title": ("Afvejning ved afbødning efter {attribute} (TO tærskler pr. gruppe, "
              "EG gentrænet med krav)",
              "Mitigation trade-off by {attribute} (TO threshold optimizer, EG exponentiated "
              "gradient)"),
}


def plot_tradeoff(report: MitigationReport, language: Literal["da", "en"] = "en") -> Figure:
    """Balanced accuracy against disparity, one panel per criterion, one point per option.

    Lower left is fair but weak, upper right strong but unequal; the unmitigated model is
    the black square, the model as audited the red diamond. Words in ``language``.
    """
    from overblik.fairness._wording import attribute_label, value_label

    pick = 0 if language == "da" else 1

    def words(key: str, **values: str) -> str:
        return _PLOT_WORDS[key][pick].format(**values)

    k = len(report.criteria)
    fig = Figure(figsize=(4.2 * k, 3.6), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    for ax, criterion in zip(axes, report.criteria, strict=True):
        for o in report.options:
            x, y = o.disparities[criterion], o.balanced_accuracy
            if o.method == "unmitigated":
                ax.scatter([x], [y], marker="s", color="black", zorder=3)
            elif o.method == "as_audited":
                ax.scatter([x], [y], marker="D", color="tab:red", zorder=3)
            else:
                ax.scatter([x], [y], marker="o" if o.method == "threshold_optimizer" else "^",
                           color="tab:blue" if o.criterion == criterion else "tab:gray",
                           zorder=2)
            label = words(o.option) if o.method in ("unmitigated", "as_audited") else \
                f"{'TO' if o.method == 'threshold_optimizer' else 'EG'}: " \
                f"{value_label(o.criterion, language).lower()}"
            ax.annotate(label, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(words("difference", criterion=value_label(criterion, language).lower()))
        ax.set_ylabel(words("balanced_accuracy"))
        ax.grid(alpha=0.3)
    fig.suptitle(words("title", attribute=attribute_label(report.attribute, language).lower()),
                 fontsize=9)
    return fig
