"""The cross-fitted doubly-robust (DR) learner of individual effects, and its multi-programme
wrapper.

How :class:`DRLearner` works (Kennedy 2023, "Towards optimal doubly robust estimation of
heterogeneous causal effects"; the cross-fitted variant of econml's ``DRLearner``):

1. **Nuisances, cross-fitted**: the rows are dealt into ``n_folds`` folds (stratified by
   treatment, whole persons together). For each fold, the propensity ``e(x) = P(T=1|x)`` and
   the outcome models ``mu0(x)``, ``mu1(x)`` (one per arm) are fitted on the other folds and
   predict this fold, so every row gets nuisances from models that never saw it.
2. **Doubly-robust scores** (AIPW): ``G1 = mu1 + T (Y - mu1) / e``,
   ``G0 = mu0 + (1 - T) (Y - mu0) / (1 - e)`` and the pseudo-outcome ``phi = G1 - G0``,
   whose conditional mean is the effect when either the propensity or the outcome models
   are right (and whose error is the product of their errors when both are estimated).
3. **Trimming**: rows with ``e`` outside ``trim`` are left out of steps 4-5 and flagged
   (see :mod:`._propensity`).
4. **Average effects** from the scores: ATE = mean of ``phi``; ATT = the DR estimator
   ``mean[T (Y - mu0) - (1 - T) e / (1 - e) (Y - mu0)] / P(T = 1)``; both with
   influence-function standard errors (clustered by person when ``groups`` is given).
5. **The effect model** regresses ``phi`` on ``x`` in two stages: the *risk stage*
   (:mod:`._risk_stage`, on by default) fits a ridge quadratic in the baseline risk
   (the untreated outcome model's probability or its log-odds, the one that suits the
   outcome's rarity unless the other cross-validates clearly better), so effects that
   vary with how likely the outcome was without the programme are found from few treated
   rows; the *feature stage* regresses what remains on ``x`` (by default a shallow
   LightGBM with large leaves whose number of rounds is chosen by cross-validated
   pseudo-outcome loss, :func:`~overblik.models._effects.tune_final_rounds`; 0 rounds
   when no further heterogeneity is found). Both stages' complexity is chosen by
   cross-validation, so with no heterogeneity in the data the effect is the constant ATE.
   Both are bagged over ``n_bootstrap`` bootstrap resamples (whole persons): the effect of
   a row is the mean of the bagged predictions, and its interval is ``mean ± z · sd``
   over them. This interval measures the sampling variability of the effect model given
   the cross-fitted nuisances (whose errors enter only as a product, so they are second
   order); it does not cover the regularisation bias of the final model, so it is a
   variability band, not a guaranteed-coverage interval for each person.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, clone, is_classifier
from sklearn.dummy import DummyRegressor
from sklearn.utils.validation import check_is_fitted

from overblik.models._effects import (
    ConstantOutcome,
    FloatArray,
    Interval,
    Matrix,
    check_groups,
    check_labels,
    check_outcome,
    check_treatment,
    check_whole,
    cluster_se,
    crossfit_folds,
    default_final_model,
    default_propensity_model,
    final_leaf_rows,
    fit_arm,
    fit_inputs,
    group_codes,
    is_binary_outcome,
    predict_inputs,
    predict_outcome,
    tune_final_rounds,
    z_value,
)
from overblik.models._propensity import OverlapReport, check_trim, overlap_report, trimmed_mask
from overblik.models._risk_stage import (
    MIN_RISK_STAGE_MINORITY_ROWS,
    RiskBasis,
    RiskStage,
    baseline_margin,
    baseline_margin_contributions,
    logit,
    risk_bases,
    tune_risk_stage,
)

__all__ = ["DRLearner", "DRScores", "MultiProgrammeEffects", "dr_scores"]


@dataclass(frozen=True)
class DRScores:
    """Cross-fitted nuisances and doubly-robust scores, one value per row.

    ``gamma1``/``gamma0`` are the AIPW scores of the potential outcomes under treatment and
    under none: the mean of ``gamma1`` over any fixed set of rows estimates the mean
    outcome had they all been treated. ``propensity`` is the raw estimate; the scores use
    it clipped to the trimming bounds, and ``trimmed`` flags rows outside them.
    """

    mu0: FloatArray
    mu1: FloatArray
    propensity: FloatArray
    gamma0: FloatArray
    gamma1: FloatArray
    trimmed: npt.NDArray[np.bool_]

    @property
    def phi(self) -> FloatArray:
        """The pseudo-outcome ``gamma1 - gamma0`` (its conditional mean is the effect)."""
        out: FloatArray = self.gamma1 - self.gamma0
        return out


@dataclass
class _Fold:
    propensity: Any
    outcome0: Any
    outcome1: Any


def _crossfit(Xa: FloatArray, t: npt.NDArray[np.int_], y: FloatArray, *,
              outcome_model: Any, propensity_model: Any, n_folds: int,
              groups: npt.ArrayLike | None, trim: tuple[float, float], random_state: int,
              ) -> tuple[DRScores, list[_Fold]]:
    binary = is_binary_outcome(y)
    n = len(y)
    mu0, mu1, e = np.empty(n), np.empty(n), np.empty(n)
    folds: list[_Fold] = []
    for k, test in enumerate(crossfit_folds(t, n_folds=n_folds, groups=groups,
                                            random_state=random_state)):
        train = np.setdiff1d(np.arange(n), test, assume_unique=True)
        seed = random_state + k
        prop = (clone(propensity_model) if propensity_model is not None
                else default_propensity_model(seed))
        prop.fit(Xa[train], t[train])
        e[test] = np.asarray(prop.predict_proba(Xa[test])[:, 1], dtype=np.float64)
        arms = []
        for arm, target in ((0, mu0), (1, mu1)):
            rows = train[t[train] == arm]
            model = fit_arm(outcome_model, binary, Xa[rows], y[rows], seed)
            target[test] = predict_outcome(model, Xa[test])
            arms.append(model)
        folds.append(_Fold(prop, arms[0], arms[1]))
    low, high = trim
    ec = np.clip(e, max(low, 1e-6), min(high, 1.0 - 1e-6))
    gamma1 = mu1 + t * (y - mu1) / ec
    gamma0 = mu0 + (1 - t) * (y - mu0) / (1.0 - ec)
    scores = DRScores(mu0=mu0, mu1=mu1, propensity=e, gamma0=gamma0, gamma1=gamma1,
                      trimmed=trimmed_mask(e, trim))
    return scores, folds


_Constant = ConstantOutcome  # the class's name here before it moved: older pickles use it


def dr_scores(X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *, outcome_model: Any = None,
              propensity_model: Any = None, n_folds: int = 5,
              groups: npt.ArrayLike | None = None, trim: tuple[float, float] = (0.01, 0.99),
              random_state: int = 0) -> DRScores:
    """Cross-fitted doubly-robust scores of rows (e.g. held-out rows for evaluation).

    The same nuisances and scores as :class:`DRLearner` step 1-2, without an effect model:
    the input of :func:`overblik.models.rate`, :func:`overblik.models.policy_value` and the
    uplift curves on data the effect model was not trained on.
    """
    Xa = np.asarray(X, dtype=np.float64)
    t = check_treatment(T, len(Xa))
    yf = check_outcome(y, len(Xa))
    scores, _ = _crossfit(Xa, t, yf, outcome_model=outcome_model,
                          propensity_model=propensity_model, n_folds=n_folds, groups=groups,
                          trim=check_trim(trim), random_state=random_state)
    return scores


def _att(scores: DRScores, t: npt.NDArray[np.int_], y: FloatArray, kept: npt.NDArray[np.bool_],
         groups: npt.ArrayLike | None, alpha: float) -> Interval:
    tk, yk, mu0 = t[kept], y[kept], scores.mu0[kept]
    e = np.clip(scores.propensity[kept], 1e-6, 1.0 - 1e-6)
    share = tk.mean()
    numerator = tk * (yk - mu0) - (1 - tk) * e / (1.0 - e) * (yk - mu0)
    att = float(numerator.mean() / share)
    influence = (numerator - tk * att) / share
    g = None if groups is None else np.asarray(groups)[kept]
    return Interval.normal(att, cluster_se(influence, g), alpha)


class DRLearner(BaseEstimator):
    """Cross-fitted doubly-robust learner of individual treatment effects.

    See the module docstring for the method. ``fit(X, T, y)``: ``T`` 0/1, ``y`` numeric or
    0/1; effects are ``E[Y(1) - Y(0) | X]`` on the scale of ``y``.

    Parameters
    ----------
    outcome_model : estimator, optional
        Fitted per arm and fold (a clone each time); a classifier's class-1 probability is
        used. Default: LightGBM (classifier for a 0/1 outcome, else regressor).
    propensity_model : classifier, optional
        Default: LightGBM classifier.
    final_model : regressor, optional
        Regresses the pseudo-outcome (less the risk stage) on ``X``. Default: shallow,
        strongly regularised LightGBM with cross-validated rounds (``final_rounds_``).
    risk_stage : bool, default True
        Fit the risk stage first (effects varying with baseline risk; its basis and ridge
        penalty, or the constant, chosen by cross-validation: ``risk_basis_``,
        ``risk_penalty_``). With fewer than ``MIN_RISK_STAGE_MINORITY_ROWS`` (300) kept rows
        in the smaller arm the stage is the constant.
    n_folds : int, default 5
        Cross-fitting folds.
    trim : (low, high), default (0.01, 0.99)
        Propensity bounds; rows outside are trimmed.
    n_bootstrap : int, default 30
        Bootstrap resamples of the final stage (bagging and intervals); 0 fits it once, on
        all kept rows, and gives no intervals.
    alpha : float, default 0.05
        Level of the ``ate_``/``att_`` intervals and the default of :meth:`effect_interval`.
    random_state : int, default 0

    Attributes
    ----------
    ate_, att_ : Interval
        Average effect over the kept rows, and over the kept treated rows.
    naive_difference_ : float
        Mean outcome of the treated minus of the untreated (all rows): what the effect
        would be if assignment were random.
    overlap_ : OverlapReport
    propensity_, mu0_, mu1_, pseudo_outcome_ : ndarray of shape (n,)
        Out-of-fold nuisances and pseudo-outcome of the training rows.
    trimmed_ : ndarray of bool, shape (n,)
    scores_ : DRScores
    final_models_ : list of fitted regressors
    final_rounds_ : int or None
        Rounds of the default effect model (0: constant); None with ``final_model``.
    risk_penalty_ : float or None
        Ridge penalty per row of the risk stage; None: constant (or no risk stage).
    risk_basis_ : {"margin", "probability"} or None
        What the risk stage is quadratic in: the baseline margin (log-odds) or the baseline
        probability; None with the constant.
    risk_stages_ : list of RiskStage, one per bagged effect model (empty without it)
    centre_shift_ : float
        Added to every bagged prediction so the effects average to ``ate_`` over the kept
        training rows.
    n_treated_ : int
    """

    def __init__(self, *, outcome_model: Any = None, propensity_model: Any = None,
                 final_model: Any = None, risk_stage: bool = True, n_folds: int = 5,
                 trim: tuple[float, float] = (0.01, 0.99), n_bootstrap: int = 30,
                 alpha: float = 0.05, random_state: int = 0) -> None:
        self.outcome_model = outcome_model
        self.propensity_model = propensity_model
        self.final_model = final_model
        self.risk_stage = risk_stage
        self.n_folds = n_folds
        self.trim = trim
        self.n_bootstrap = n_bootstrap
        self.alpha = alpha
        self.random_state = random_state

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit nuisances (cross-fitted), average effects and the effect model.

        Parameters
        ----------
        X : DataFrame or array of shape (n, n_features)
            Covariates measured before treatment (NaN allowed with the default models).
        T : array-like of shape (n,)
            0/1 treatment.
        y : array-like of shape (n,)
            Outcome.
        groups : array-like of shape (n,), optional
            Person of each row, when persons have several rows.

        Returns
        -------
        self
        """
        trim = check_trim(self.trim)
        z_value(self.alpha)
        if check_whole(self.n_bootstrap, "n_bootstrap", minimum=0) == 1:
            raise ValueError(f"n_bootstrap={self.n_bootstrap}: use 0 (no intervals) or at "
                             "least 2")
        Xa, t, yf = fit_inputs(self, X, T, y)
        # Integer codes once: the folds, clustered errors and bootstrap all group by person.
        g = None if groups is None else check_groups(groups, len(Xa))
        scores, folds = _crossfit(Xa, t, yf, outcome_model=self.outcome_model,
                                  propensity_model=self.propensity_model,
                                  n_folds=self.n_folds, groups=g, trim=trim,
                                  random_state=self.random_state)
        self.scores_ = scores
        self.folds_ = folds
        self.propensity_ = scores.propensity
        self.mu0_, self.mu1_ = scores.mu0, scores.mu1
        self.pseudo_outcome_ = scores.phi
        self.trimmed_ = scores.trimmed
        self.overlap_: OverlapReport = overlap_report(scores.propensity, t, trim=trim)
        kept = ~scores.trimmed
        if t[kept].sum() < 2 or (1 - t[kept]).sum() < 2:
            raise ValueError(f"after trimming to {trim}, fewer than 2 treated or untreated "
                             "rows remain: widen the trimming bounds")
        phi = scores.phi[kept]
        gk = None if g is None else g[kept]
        self.ate_ = Interval.normal(float(phi.mean()), cluster_se(phi, gk), self.alpha)
        self.att_ = _att(scores, t, yf, kept, g, self.alpha)
        self.naive_difference_ = float(yf[t == 1].mean() - yf[t == 0].mean())
        self.n_treated_ = int(t.sum())
        # Out-of-fold margins of the untreated outcome model: the index of the risk stage.
        self.logit_margin_ = any(is_classifier(f.outcome0) for f in folds)
        r = logit(scores.mu0) if self.logit_margin_ else scores.mu0
        minority = int(min(t[kept].sum(), (1 - t[kept]).sum()))
        self.final_models_, self.risk_stages_ = self._fit_final(
            Xa[kept], r[kept], phi, gk, minority_rows=minority)
        # The bagged models' average over the kept rows drifts from the ATE by bootstrap
        # noise (a constant effect model gave every citizen +0.079 where the ATE was
        # -0.028): move it onto the ATE, which keeps every ranking and interval width.
        self.centre_shift_ = 0.0
        self.centre_shift_ = self.ate_.estimate - float(
            self._predictions(Xa[kept]).mean(axis=0).mean())
        return self

    def _fit_final(self, Xk: FloatArray, r: FloatArray, phi: FloatArray,
                   groups: npt.ArrayLike | None, *, minority_rows: int
                   ) -> tuple[list[Any], list[RiskStage]]:
        self.risk_penalty_: float | None = None
        self.risk_basis_: str | None = None
        minority_share = minority_rows / len(phi)
        chosen = None
        if self.risk_stage and minority_rows >= MIN_RISK_STAGE_MINORITY_ROWS:
            chosen = tune_risk_stage(r, phi, groups,
                                     bases=risk_bases(r, logit_margin=self.logit_margin_),
                                     random_state=self.random_state)
        if chosen is not None:
            basis, self.risk_penalty_ = chosen
            self.risk_basis_ = basis.kind
        else:  # the constant (its basis is immaterial)
            basis = RiskBasis.of("margin", r)

        def stage(rows: npt.NDArray[np.int_] | slice) -> RiskStage | None:
            if not self.risk_stage:
                return None
            return RiskStage.fit(r[rows], phi[rows], alpha=self.risk_penalty_, basis=basis)

        whole = stage(slice(None))
        rest = phi - whole.predict(r) if whole is not None else phi
        if self.final_model is None:
            self.final_rounds_: int | None = tune_final_rounds(
                Xk, rest, groups, minority_share=minority_share,
                random_state=self.random_state)
        else:
            self.final_rounds_ = None
        leaf_rows = final_leaf_rows(len(phi), minority_share)

        def make(seed: int) -> Any:
            if self.final_model is not None:
                return clone(self.final_model)
            if self.final_rounds_ == 0:
                return DummyRegressor(strategy="mean")  # no heterogeneity found
            return default_final_model(seed, n_estimators=int(self.final_rounds_ or 0),
                                       min_child_samples=leaf_rows)

        def fit_bag(rows: npt.NDArray[np.int_] | slice, seed: int
                    ) -> tuple[Any, RiskStage | None]:
            risk = stage(rows)
            target = phi[rows] - risk.predict(r[rows]) if risk is not None else phi[rows]
            return make(seed).fit(Xk[rows], target), risk

        if self.n_bootstrap == 0:
            bags = [fit_bag(slice(None), self.random_state)]
            return [m for m, _ in bags], [s for _, s in bags if s is not None]
        rng = np.random.default_rng(self.random_state)
        if groups is None:
            code, k = np.arange(len(phi)), len(phi)
        else:
            code = group_codes(groups)
            k = int(code.max()) + 1
        order = np.argsort(code, kind="stable")
        starts = np.searchsorted(code[order], np.arange(k + 1))
        sizes = np.diff(starts)
        bags = []
        for b in range(self.n_bootstrap):
            counts = np.bincount(rng.integers(0, k, size=k), minlength=k)
            # Each drawn person contributes all their rows, as often as drawn.
            rows = np.repeat(order, np.repeat(counts, sizes))
            bags.append(fit_bag(rows, self.random_state + 1000 + b))
        return [m for m, _ in bags], [s for _, s in bags if s is not None]

    def _fold_margin(self, model: Any, Xa: FloatArray) -> FloatArray:
        if isinstance(model, ConstantOutcome):
            v = np.full(len(Xa), model.value)
            return logit(v) if self.logit_margin_ else v
        return baseline_margin(model, Xa)

    def baseline_margin(self, X: Matrix) -> FloatArray:
        """The risk stage's index of new rows: the mean margin of the fold models of the
        outcome without the programme (log-odds for a 0/1 outcome)."""
        Xa = predict_inputs(self, X)
        return self._margin(Xa)

    def _margin(self, Xa: FloatArray) -> FloatArray:
        return np.asarray(np.mean([self._fold_margin(f.outcome0, Xa) for f in self.folds_],
                                  axis=0), dtype=np.float64)

    def _predictions(self, X: Matrix) -> FloatArray:
        Xa = predict_inputs(self, X)
        pred = np.vstack([np.asarray(m.predict(Xa), dtype=np.float64)
                          for m in self.final_models_])
        if self.risk_stages_:
            r = self._margin(Xa)
            pred += np.vstack([s.predict(r) for s in self.risk_stages_])
        return pred + getattr(self, "centre_shift_", 0.0)  # 0.0 in models saved before it

    def _margin_contributions(self, Xa: FloatArray) -> FloatArray | None:
        """SHAP values of :meth:`baseline_margin` (mean over the folds), or None."""
        parts = []
        for fold in self.folds_:
            if isinstance(fold.outcome0, ConstantOutcome):
                part = np.zeros((len(Xa), Xa.shape[1] + 1))
                part[:, -1] = self._fold_margin(fold.outcome0, Xa)
            else:
                contrib = baseline_margin_contributions(fold.outcome0, Xa)
                if contrib is None:
                    return None
                part = contrib
            parts.append(part)
        return np.asarray(np.mean(parts, axis=0), dtype=np.float64)

    def effect(self, X: Matrix) -> FloatArray:
        """Estimated individual effects ``E[Y(1) - Y(0) | X]``, shape (n,)."""
        out: FloatArray = self._predictions(X).mean(axis=0)
        return out

    def effect_contributions(self, X: Matrix) -> FloatArray:
        """Each feature's share of the estimated effect: the reasons behind it.

        SHAP values of the effect model (LightGBM's exact tree contributions) plus each
        feature's share of the risk stage (its part in moving the baseline risk, see
        :mod:`._risk_stage`), averaged over the bagged models, so each row's contributions
        plus the last column (the average effect) sum to :meth:`effect`.

        Returns
        -------
        ndarray of shape (n, n_features + 1)
        """
        Xa = predict_inputs(self, X)
        out = np.zeros((len(Xa), Xa.shape[1] + 1))
        for model in self.final_models_:
            if isinstance(model, lgb.LGBMRegressor):
                out += np.asarray(model.predict(Xa, pred_contrib=True), dtype=np.float64)
            else:  # a constant or a user's model: no per-feature attribution
                out[:, -1] += np.asarray(model.predict(Xa), dtype=np.float64)
        out /= len(self.final_models_)
        if self.risk_stages_:
            shap = self._margin_contributions(Xa)
            if shap is not None:
                for risk in self.risk_stages_:
                    out += risk.attribute(shap) / len(self.final_models_)
            else:  # no SHAP values of the outcome model: the stage stays unattributed
                r = self._margin(Xa)
                for risk in self.risk_stages_:
                    out[:, -1] += risk.predict(r) / len(self.final_models_)
        out[:, -1] += getattr(self, "centre_shift_", 0.0)
        return out

    def effect_and_interval(self, X: Matrix, alpha: float | None = None
                            ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Effect, lower and upper bound of each row from one pass over the bagged models
        (what :meth:`effect` and :meth:`effect_interval` give, at the cost of one).

        Raises
        ------
        ValueError
            When fitted with ``n_bootstrap=0``.
        """
        if self.n_bootstrap < 2:
            raise ValueError("effect intervals need n_bootstrap >= 2; refit with e.g. "
                             "n_bootstrap=30")
        z = z_value(self.alpha if alpha is None else alpha)
        pred = self._predictions(X)
        mean, sd = pred.mean(axis=0), pred.std(axis=0, ddof=1)
        return mean, mean - z * sd, mean + z * sd

    def effect_interval(self, X: Matrix, alpha: float | None = None
                        ) -> tuple[FloatArray, FloatArray]:
        """Lower and upper bounds of each row's effect (bootstrap of the effect model).

        Raises
        ------
        ValueError
            When fitted with ``n_bootstrap=0``.
        """
        _, low, high = self.effect_and_interval(X, alpha)
        return low, high

    def treated_outcome(self, X: Matrix) -> FloatArray:
        """``E[Y | X, T = 1]`` of new rows: the mean of the fold outcome models of the
        treated (fitted on the training rows)."""
        Xa = predict_inputs(self, X)
        out: FloatArray = np.mean([predict_outcome(f.outcome1, Xa) for f in self.folds_],
                                  axis=0)
        return out

    def propensity(self, X: Matrix) -> FloatArray:
        """``P(T = 1 | X)`` of new rows: the mean of the fold propensity models."""
        Xa = predict_inputs(self, X)
        out: FloatArray = np.mean([f.propensity.predict_proba(Xa)[:, 1] for f in self.folds_],
                                  axis=0)
        return out

    def is_trimmed(self, X: Matrix) -> npt.NDArray[np.bool_]:
        """True for rows whose propensity is outside ``trim`` (effects are extrapolations)."""
        return trimmed_mask(self.propensity(X), check_trim(self.trim))


def _sorted_labels(labels: set[Any]) -> list[Any]:
    try:
        return sorted(labels)
    except TypeError:  # e.g. 1 and "a": no order between them
        raise TypeError(f"T mixes label types ({sorted({type(v).__name__ for v in labels})}):"
                        " give every programme label the same type") from None


class MultiProgrammeEffects(BaseEstimator):
    """One binary contrast per programme against no programme.

    ``T`` holds each row's programme label (``control`` for none). For programme ``p``, a
    clone of ``learner`` is fitted on the rows with ``T == p`` or ``T == control``: rows
    that got another programme are left out of that contrast (they are neither treated
    with ``p`` nor untreated).

    Parameters
    ----------
    learner : DRLearner, optional
        The binary learner (default ``DRLearner()``); any estimator with
        ``fit(X, T, y, groups=)`` and ``effect(X)``.
    programmes : sequence of labels, optional
        Programmes and their column order; default the labels in ``T`` other than
        ``control``, sorted.
    control : label, default "none"
        The label of no programme. Labels are compared as they are (not as text): with
        integer labels in ``T``, give ``control=0``, not ``"0"``.

    Attributes
    ----------
    programmes_ : list of labels
    learners_ : dict of programme -> fitted learner
    ate_, att_ : dict of programme -> Interval
    overlap_ : dict of programme -> OverlapReport
    """

    def __init__(self, *, learner: Any = None, programmes: Sequence[Hashable] | None = None,
                 control: Hashable = "none") -> None:
        self.learner = learner
        self.programmes = programmes
        self.control = control

    def fit(self, X: Matrix, T: npt.ArrayLike, y: npt.ArrayLike, *,
            groups: npt.ArrayLike | None = None) -> Self:
        """Fit one learner per programme (rows of that programme and of no programme)."""
        n = len(X)
        labels = check_labels(T, n, "T", "give it a programme or the control label (no "
                              "programme), or drop the row")
        # Labels keep their type: 1 and "1" are different programmes, control=0 finds 0.
        found = _sorted_labels(set(labels.tolist()) - {self.control})
        programmes = list(self.programmes) if self.programmes is not None else found
        unknown = [p for p in found if p not in programmes]
        if unknown:
            raise ValueError(f"T has programme labels {unknown} not in programmes="
                             f"{programmes}: add them or relabel those rows")
        if not (labels == self.control).any():
            raise ValueError(f"no row has the control label {self.control!r} (T's labels "
                             f"are {_sorted_labels(set(labels.tolist()))[:10]}): pass "
                             "control= the label of 'no programme'")
        yv = check_outcome(y, n)
        g = None if groups is None else check_groups(groups, n)
        self.programmes_ = programmes
        self.learners_: dict[Hashable, Any] = {}
        for p in programmes:
            rows = np.flatnonzero((labels == p) | (labels == self.control))
            if not (labels == p).any():
                raise ValueError(f"programme {p!r} has no treated rows in T")
            learner = clone(self.learner) if self.learner is not None else DRLearner()
            Xp = X.iloc[rows] if hasattr(X, "iloc") else np.asarray(X)[rows]
            learner.fit(Xp, (labels[rows] == p).astype(np.int_), yv[rows],
                        groups=None if g is None else g[rows])
            self.learners_[p] = learner
        self.ate_ = {p: lrn.ate_ for p, lrn in self.learners_.items() if hasattr(lrn, "ate_")}
        self.att_ = {p: lrn.att_ for p, lrn in self.learners_.items() if hasattr(lrn, "att_")}
        self.overlap_ = {p: lrn.overlap_ for p, lrn in self.learners_.items()
                         if hasattr(lrn, "overlap_")}
        return self

    def effect(self, X: Matrix) -> FloatArray:
        """Effects of every programme, shape (n, m), columns in ``programmes_`` order."""
        check_is_fitted(self)
        return np.column_stack([self.learners_[p].effect(X) for p in self.programmes_])

    def effect_and_interval(self, X: Matrix, alpha: float | None = None
                            ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Effects, lower and upper bounds, each of shape (n, m), one pass per learner."""
        check_is_fitted(self)
        parts = [self.learners_[p].effect_and_interval(X, alpha) for p in self.programmes_]
        effect, low, high = (np.column_stack([part[i] for part in parts]) for i in range(3))
        return effect, low, high

    def effect_interval(self, X: Matrix, alpha: float | None = None
                        ) -> tuple[FloatArray, FloatArray]:
        """Lower and upper bounds, each of shape (n, m)."""
        _, low, high = self.effect_and_interval(X, alpha)
        return low, high

    def effect_contributions(self, X: Matrix) -> dict[Hashable, FloatArray]:
        """Per programme, each feature's share of the effect (see
        :meth:`DRLearner.effect_contributions`); learners without it are left out."""
        check_is_fitted(self)
        return {p: self.learners_[p].effect_contributions(X) for p in self.programmes_
                if hasattr(self.learners_[p], "effect_contributions")}

    def propensity(self, X: Matrix) -> FloatArray:
        """Each contrast's propensity of the rows, shape (n, m)."""
        check_is_fitted(self)
        return np.column_stack([self.learners_[p].propensity(X) for p in self.programmes_])

    def effect_frame(self, X: Matrix, alpha: float | None = None) -> pd.DataFrame:
        """Effects of every programme for every row, long format: what serving shows.

        Returns
        -------
        DataFrame
            ``programme``, ``row`` (position in ``X``), ``effect``, ``ci_low``, ``ci_high``
            (NaN when the learner gives no intervals) and ``trimmed`` (the row's propensity
            for that programme is outside the trimming bounds: an extrapolation), ordered
            by row, then programme.
        """
        check_is_fitted(self)
        n = len(X)
        parts = []
        for p in self.programmes_:
            learner = self.learners_[p]
            try:
                effect, low, high = learner.effect_and_interval(X, alpha)
            except (AttributeError, ValueError):  # a learner without intervals
                effect, low, high = learner.effect(X), np.full(n, np.nan), np.full(n, np.nan)
            trimmed = (learner.is_trimmed(X) if hasattr(learner, "is_trimmed")
                       else np.zeros(n, dtype=bool))
            parts.append(pd.DataFrame({"programme": p, "row": np.arange(n), "effect": effect,
                                       "ci_low": low, "ci_high": high, "trimmed": trimmed}))
        frame = pd.concat(parts, ignore_index=True)
        order = np.lexsort((frame["programme"].map(self.programmes_.index).to_numpy(),
                            frame["row"].to_numpy()))
        return frame.iloc[order].reset_index(drop=True)
