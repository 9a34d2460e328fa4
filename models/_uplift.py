"""Evaluating a ranking by effect on held-out data: uplift and Qini curves, RATE (AUTOC and
Qini weighting) with a bootstrap interval, and the doubly-robust policy value at a budget.

Everything takes a ``score`` (higher = treat first, e.g. an estimated effect or a risk)
and the doubly-robust scores of held-out rows (:func:`overblik.models.dr_scores`, fitted
on those rows only, never by the model being evaluated): the pseudo-outcome
``phi = gamma1 - gamma0`` has the row's effect as its conditional mean, so a mean of
``phi`` over any set of rows chosen by the score alone estimates the average effect in
that set without bias. (Yadlowsky, Fleming, Shah, Brunskill & Wager 2021, "Evaluating
treatment prioritization rules via rank-weighted average treatment effects"; Athey & Wager
2021, "Policy learning with observational data".)

Ties in the score are handled as a random order within the tie would be, in expectation:
a constant score has a flat TOC and an AUTOC of exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from overblik.models._dr_learner import DRScores
from overblik.models._effects import (
    FloatArray,
    Interval,
    check_groups,
    check_numbers,
    check_outcome,
    check_treatment,
    check_whole,
    cluster_se,
    z_value,
)

__all__ = ["PolicyValue", "UpliftCurve", "policy_value", "qini_curve", "qini_curve_observed",
           "rate", "uplift_metrics"]

RateTarget = Literal["AUTOC", "QINI"]
_NO_INTERVAL = Interval(float("nan"), float("nan"), float("nan"))


@dataclass(frozen=True)
class UpliftCurve:
    """A ranking's curve at ``share`` of rows targeted (highest score first).

    Attributes
    ----------
    share
        Share of rows targeted, from 0 to 1.
    gain
        Qini curve: the total effect of treating the targeted rows, per row of the whole
        population (``share * uplift``); at share 1 it is the ATE.
    uplift
        Uplift curve: the average effect among the targeted rows (NaN at share 0).
    """

    share: FloatArray
    gain: FloatArray
    uplift: FloatArray

    def random_gain(self) -> FloatArray:
        """The Qini curve of targeting at random: ``share * ATE``."""
        out: FloatArray = self.share * self.gain[-1]
        return out

    def area(self) -> float:
        """Area between the Qini curve and random targeting (trapezoid rule)."""
        diff = self.gain - self.random_gain()
        return float(np.sum((diff[1:] + diff[:-1]) / 2.0 * np.diff(self.share)))


def _score(score: npt.ArrayLike, n: int | None = None, of: str = "phi") -> FloatArray:
    """``score`` as floats: one-dimensional, finite, not empty, and (when ``n`` is given)
    one value per row of ``of``."""
    s = check_numbers(score, n, "score", of)
    if len(s) == 0:
        raise ValueError("score has no rows: a ranking needs at least one")
    return s


def _ranked(score: npt.ArrayLike, phi: npt.ArrayLike | DRScores
            ) -> tuple[FloatArray, npt.NDArray[np.int_], npt.NDArray[np.int_]]:
    """Pseudo-outcomes, and :func:`_order` of the score (one per pseudo-outcome)."""
    p = _phi(phi)
    order, block = _order(_score(score, len(p)))
    return p, order, block


def _order(s: FloatArray) -> tuple[npt.NDArray[np.int_], npt.NDArray[np.int_]]:
    """Rows by descending score, and the tie block of each sorted position."""
    order = np.argsort(-s, kind="stable")
    sorted_s = s[order]
    block = np.concatenate([[0], np.cumsum(sorted_s[1:] != sorted_s[:-1])])
    return order, block


def _cumulative(values: FloatArray, weights: FloatArray, block: npt.NDArray[np.int_]
                ) -> tuple[FloatArray, FloatArray]:
    """Cumulative weighted sums along the sorted rows, tie blocks interpolated linearly."""
    cs = np.cumsum(values * weights)
    cw = np.cumsum(weights)
    # Dense block numbers (a bootstrap drops rows, leaving gaps in the labels).
    block = np.concatenate([[0], np.cumsum(block[1:] != block[:-1])])
    ends = np.flatnonzero(np.r_[block[1:] != block[:-1], True])
    if len(ends) == len(block):
        return cs, cw  # no ties
    end_of = ends[block]
    start_s = np.r_[0.0, cs[ends]][block]
    start_w = np.r_[0.0, cw[ends]][block]
    span = cw[end_of] - start_w
    frac = np.divide(cw - start_w, span, out=np.ones_like(cw), where=span > 0)
    return start_s + frac * (cs[end_of] - start_s), cw


def _phi(phi: npt.ArrayLike | DRScores) -> FloatArray:
    if isinstance(phi, DRScores):
        return phi.phi
    out = np.asarray(phi, dtype=np.float64)
    if out.ndim != 1 or not np.isfinite(out).all():
        raise ValueError("phi must be a one-dimensional array of finite pseudo-outcomes")
    return out


def qini_curve(score: npt.ArrayLike, phi: npt.ArrayLike | DRScores, *,
               n_points: int = 101) -> UpliftCurve:
    """Uplift and Qini curves of a ranking, estimated with doubly-robust scores.

    Parameters
    ----------
    score : array-like of shape (n,)
        Higher = targeted first.
    phi : array-like of shape (n,) or DRScores
        Doubly-robust pseudo-outcomes of the same (held-out) rows.
    n_points : int, default 101
        Points of the curve, at evenly spaced shares from 0 to 1.
    """
    p, order, block = _ranked(score, phi)
    cs, cw = _cumulative(p[order], np.ones(len(p)), block)
    return _curve(cs, cw, n_points)


def _shares(n_points: int) -> FloatArray:
    check_whole(n_points, "n_points", minimum=2, why="a curve needs at least its two ends")
    return np.linspace(0.0, 1.0, n_points)


def _curve(cs: FloatArray, cw: FloatArray, n_points: int) -> UpliftCurve:
    n = len(cs)
    share = _shares(n_points)
    k = np.rint(share * n).astype(np.int_)
    total = np.r_[0.0, cs][k]
    count = np.r_[0.0, cw][k]
    gain = total / cw[-1]
    uplift = np.divide(total, count, out=np.full(n_points, np.nan), where=count > 0)
    return UpliftCurve(share=share, gain=gain, uplift=uplift)


def qini_curve_observed(score: npt.ArrayLike, T: npt.ArrayLike, y: npt.ArrayLike, *,
                        n_points: int = 101) -> UpliftCurve:
    """Radcliffe's Qini curve from outcomes alone, for randomised data.

    Among the top rows, the treated rows' outcome total minus the untreated rows' total
    scaled to the treated count; per row of the population. Valid when treatment was
    random (no propensity model); use :func:`qini_curve` with DR scores otherwise.

    Parameters
    ----------
    score : array-like of shape (n,)
        Higher = targeted first.
    T : array-like of shape (n,)
        0/1 treatment (or booleans), both arms present.
    y : array-like of shape (n,)
        Finite outcomes.
    n_points : int, default 101
    """
    s = _score(score)
    t = check_treatment(T, len(s), rows="score").astype(np.float64)
    yy = check_outcome(y, len(s), rows="score")
    order, block = _order(s)
    ones = np.ones(len(t))
    y1, n1 = _cumulative((t * yy)[order], ones, block)[0], _cumulative(t[order], ones, block)[0]
    y0 = _cumulative(((1 - t) * yy)[order], ones, block)[0]
    n0 = _cumulative((1 - t)[order], ones, block)[0]
    scaled = y1 - np.divide(y0 * n1, n0, out=np.zeros_like(y0), where=n0 > 0)
    n = len(t)
    share = _shares(n_points)
    k = np.rint(share * n).astype(np.int_)
    total = np.r_[0.0, scaled][k]
    treated = np.r_[0.0, n1][k]
    # Per treated row among the top, times the share: comparable to the DR Qini curve.
    uplift = np.divide(total, treated, out=np.full(n_points, np.nan), where=treated > 0)
    gain = np.where(np.isnan(uplift), 0.0, uplift) * share
    return UpliftCurve(share=share, gain=gain, uplift=uplift)


def _rate_value(p_sorted: FloatArray, w_sorted: FloatArray, block: npt.NDArray[np.int_],
                target: RateTarget) -> float:
    cs, cw = _cumulative(p_sorted, w_sorted, block)
    total_w = cw[-1]
    toc = cs / cw - cs[-1] / total_w  # TOC(q): effect among the top q minus the ATE
    dq = w_sorted / total_w
    q = cw / total_w
    weight = dq if target == "AUTOC" else q * dq
    return float(np.sum(weight * toc))


def rate(score: npt.ArrayLike, phi: npt.ArrayLike | DRScores, *,
         target: RateTarget = "AUTOC", n_bootstrap: int = 200,
         groups: npt.ArrayLike | None = None, alpha: float = 0.05,
         random_state: int = 0) -> Interval:
    """Rank-weighted average treatment effect of a ranking, with a bootstrap interval.

    ``TOC(q)`` is the average effect among the top ``q`` share of rows minus the ATE;
    ``AUTOC = ∫ TOC(q) dq`` (weights the top of the ranking most) and
    ``QINI = ∫ q TOC(q) dq`` (the area between the Qini curve and random targeting).
    Positive: the ranking finds rows that gain more than average; 0: no better than
    random.

    Parameters
    ----------
    score, phi
        As :func:`qini_curve`.
    target : "AUTOC" or "QINI"
    n_bootstrap : int, default 200
        Bootstrap resamples (whole ``groups`` when given) for the standard error; the
        interval is ``estimate ± z · se``.
    groups : array-like, optional
        Person of each row; at least 2 persons (one would give a zero-width interval).
    alpha : float, default 0.05
    random_state : int, default 0
    """
    if target not in ("AUTOC", "QINI"):
        raise ValueError(f"target={target!r}: choose 'AUTOC' or 'QINI'")
    check_whole(n_bootstrap, "n_bootstrap", minimum=2, why="need at least 2 resamples")
    z_value(alpha)
    p, order, block = _ranked(score, phi)
    p_sorted = p[order]
    estimate = _rate_value(p_sorted, np.ones(len(p)), block, target)
    rng = np.random.default_rng(random_state)
    if groups is None:
        code, k = np.arange(len(p)), len(p)
    else:
        code = check_groups(groups, len(p), min_groups=2)
        k = int(code.max()) + 1
    code_sorted = code[order]
    draws = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        counts = np.bincount(rng.integers(0, k, size=k), minlength=k).astype(np.float64)
        w = counts[code_sorted]
        keep = w > 0  # rows not drawn drop out; their tie blocks shrink with them
        draws[b] = _rate_value(p_sorted[keep], w[keep], block[keep], target)
    return Interval.normal(estimate, float(draws.std(ddof=1)), alpha)


@dataclass(frozen=True)
class PolicyValue:
    """Doubly-robust value of treating the top ``budget`` share by a score.

    Attributes
    ----------
    budget
        Share of rows treated (the top ``n_treated`` rows).
    n_treated
    value
        Mean outcome had the policy been followed.
    gain
        Mean gain per row over treating nobody (``value`` minus the untreated mean).
    gain_vs_random
        Mean gain per row over treating the same number of rows at random.
    gain_per_treated
        Average effect among the treated rows of the policy.
    """

    budget: float
    n_treated: int
    value: Interval
    gain: Interval
    gain_vs_random: Interval
    gain_per_treated: Interval

    def as_metrics(self, prefix: str = "") -> dict[str, float]:
        """Flat ``{name: number}`` for MLflow."""
        out: dict[str, float] = {}
        for name in ("value", "gain", "gain_vs_random", "gain_per_treated"):
            iv: Interval = getattr(self, name)
            out[f"{prefix}{name}"] = iv.estimate
            out[f"{prefix}{name}_ci_low"] = iv.ci_low
            out[f"{prefix}{name}_ci_high"] = iv.ci_high
        return out


def policy_value(score: npt.ArrayLike, scores: npt.ArrayLike | DRScores, *, budget: float,
                 groups: npt.ArrayLike | None = None, alpha: float = 0.05) -> PolicyValue:
    """Doubly-robust value of treating the top ``budget`` share of rows by ``score``.

    ``value = mean(pi * gamma1 + (1 - pi) * gamma0)`` with ``pi`` = 1 for the top
    ``round(budget * n)`` rows; rows tied at the cut share its remaining places (``pi``
    between 0 and 1: the policy that breaks the tie at random, on average; by row order a
    constant score "beat" random by +0.19). The policy is taken as fixed (learnt on other
    rows), so the standard errors are those of a mean of scores, clustered by ``groups``
    (at least 2 persons).

    ``scores`` is :class:`DRScores`, or the pseudo-outcomes ``phi`` alone (as for
    :func:`rate`): then ``value``, which needs ``gamma0`` and ``gamma1``, is NaN.

    Raises
    ------
    ValueError
        When ``budget`` is not in ``(0, 1]``.
    """
    if not 0.0 < budget <= 1.0:
        raise ValueError(f"budget={budget}: give the share of rows to treat, in (0, 1]")
    z_value(alpha)
    phi, order, block = _ranked(score, scores)
    n = len(phi)
    k = round(budget * n)
    pi = np.zeros(n)
    pi[order[:k]] = 1.0
    if 0 < k < n and block[k - 1] == block[k]:  # the cut falls inside a tie block
        tied = order[block == block[k - 1]]
        pi[tied] = float(pi[tied].sum()) / len(tied)
    gain = pi * phi
    vs_random = (pi - k / n) * phi
    g = None if groups is None else check_groups(groups, n, min_groups=2)
    if k < 2:
        per_treated = _NO_INTERVAL
    elif np.isin(pi, (0.0, 1.0)).all():
        treated = phi[pi == 1.0]
        g_treated = None if g is None else g[pi == 1.0]
        per_treated = Interval.normal(float(treated.mean()), cluster_se(treated, g_treated),
                                      alpha)
    else:  # shares of places: the mean per place is the gain scaled to the places
        per_place = gain * (n / k)
        per_treated = Interval.normal(float(per_place.mean()), cluster_se(per_place, g),
                                      alpha)
    if isinstance(scores, DRScores):
        value = pi * scores.gamma1 + (1.0 - pi) * scores.gamma0
        value_iv = Interval.normal(float(value.mean()), cluster_se(value, g), alpha)
    else:
        value_iv = _NO_INTERVAL
    return PolicyValue(
        budget=float(budget), n_treated=k,
        value=value_iv,
        gain=Interval.normal(float(gain.mean()), cluster_se(gain, g), alpha),
        gain_vs_random=Interval.normal(float(vs_random.mean()), cluster_se(vs_random, g),
                                       alpha),
        gain_per_treated=per_treated)


def uplift_metrics(score: npt.ArrayLike, scores: DRScores, *,
                   budgets: tuple[float, ...] = (0.1, 0.2, 0.5),
                   groups: npt.ArrayLike | None = None, n_bootstrap: int = 200,
                   random_state: int = 0, prefix: str = "") -> dict[str, float]:
    """Flat metrics of a ranking on held-out rows, for MLflow.

    ``autoc``, ``qini_rate`` (each with ``_ci_low``/``_ci_high``), ``qini_area`` and, per
    budget ``b``, ``policy_gain_at_<b%>`` and ``policy_gain_vs_random_at_<b%>`` (with
    intervals).
    """
    out: dict[str, float] = {}
    for name, target in (("autoc", "AUTOC"), ("qini_rate", "QINI")):
        iv = rate(score, scores, target=target, n_bootstrap=n_bootstrap,  # type: ignore[arg-type]
                  groups=groups, random_state=random_state)
        out[f"{prefix}{name}"] = iv.estimate
        out[f"{prefix}{name}_ci_low"] = iv.ci_low
        out[f"{prefix}{name}_ci_high"] = iv.ci_high
    out[f"{prefix}qini_area"] = qini_curve(score, scores).area()
    for b in budgets:
        pv = policy_value(score, scores, budget=b, groups=groups)
        tag = f"{round(b * 100)}pct"
        for name in ("gain", "gain_vs_random"):
            iv = getattr(pv, name)
            out[f"{prefix}policy_{name}_at_{tag}"] = iv.estimate
            out[f"{prefix}policy_{name}_at_{tag}_ci_low"] = iv.ci_low
            out[f"{prefix}policy_{name}_at_{tag}_ci_high"] = iv.ci_high
    return out
