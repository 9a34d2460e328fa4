"""The fairness audit: metrics by group and intersection, with intervals and suppression.

``audit(y_true, scores, sensitive, threshold=... | top_k=...)`` answers, for the whole
population, every sensitive attribute and every pair of attributes: how often each group is
selected, how often the selection is right or wrong for it (TPR, FPR, FNR, PPV), how well the
score ranks (AUC) and is calibrated (Brier, ECE) within it, and how each group differs from a
reference group, each with a bootstrap interval. Groups smaller than ``min_count`` are
suppressed: they appear, marked, with no numbers.

The point estimates are exact: the rate metrics from confusion counts per group (they agree
with fairlearn's ``MetricFrame`` to rounding, which the tests check), AUC by Mann-Whitney per
group, ECE with :func:`overblik.models.ece`. The intervals come from one Poisson bootstrap
shared by all groups (:mod:`overblik.fairness._bootstrap`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.fairness._bootstrap import bootstrap_metrics, percentile_interval
from overblik.fairness._group_metrics import (
    METRICS,
    RATE_METRICS,
    SCORE_METRICS,
    GroupCurve,
    SortedGroups,
    grouped_auc,
    grouped_brier,
    grouped_curves,
    grouped_ece,
    rate_counts,
    rates_from_cells,
    wilson_interval,
)
from overblik.fairness._groups import (
    SEP,
    GroupIndex,
    build_groups,
    check_aligned,
    resolve_references,
)
from overblik.features._errors import InputError

__all__ = [
    "METRICS",
    "AuditResult",
    "CalibrationCurve",
    "Disparity",
    "GroupResult",
    "Interval",
    "audit",
    "decide",
]

FloatArray = npt.NDArray[np.float64]
ProgressFn = Callable[[str, int, int], None]
_SCORE_COLS = [METRICS.index(m) for m in SCORE_METRICS]
_RATE_COLS = slice(0, len(RATE_METRICS))
_AUC, _BRIER, _ECE = (METRICS.index(m) for m in ("auc", "brier", "ece"))
_PROBABILITY_COLS = [_BRIER, _ECE]


@dataclass(frozen=True)
class Interval:
    """A point estimate and its bootstrap interval; NaN when undefined."""

    value: float
    ci_low: float
    ci_high: float

    def to_json(self) -> dict[str, float | None]:
        return {"value": _num(self.value), "ci_low": _num(self.ci_low),
                "ci_high": _num(self.ci_high)}


@dataclass(frozen=True)
class GroupResult:
    """One group of one attribute (or intersection).

    Attributes
    ----------
    attribute : str
        ``"origin"``, or ``"origin&sex"`` for an intersection.
    group : str
        ``"immigrant"``, or ``"immigrant&F"``; missing values are the group ``"(missing)"``.
    n : int
        Rows in the group; 0 when suppressed (a small cell's size is not published).
    suppressed : bool
        Fewer rows than the audit's ``min_count``, or ``protects`` one.
    protects : bool
        Suppressed although large enough: shown, it would let a suppressed group's size and
        rates be worked out by subtraction (complementary suppression).
    metrics : dict of str to Interval
        Every metric of ``METRICS``; empty when suppressed.
    """

    attribute: str
    group: str
    n: int
    suppressed: bool
    metrics: dict[str, Interval]
    protects: bool = False


@dataclass(frozen=True)
class Disparity:
    """A group against its attribute's reference group on one metric."""

    attribute: str
    group: str
    reference: str
    metric: str
    difference: Interval  # group - reference
    ratio: Interval  # group / reference


@dataclass(frozen=True)
class CalibrationCurve:
    """Reliability curve of one unsuppressed group (bins of at least ``min_count`` rows)."""

    attribute: str
    group: str
    mean_predicted: tuple[float, ...]
    observed: tuple[float, ...]
    n: tuple[int, ...]


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit found; :meth:`to_json` is the published form."""

    n: int
    decision: str
    threshold: float | None
    top_k: int | None
    references: dict[str, str]
    overall: dict[str, Interval]
    groups: tuple[GroupResult, ...]
    disparities: tuple[Disparity, ...]
    calibration: tuple[CalibrationCurve, ...]
    min_count: int
    n_boot: int
    confidence: float
    seed: int

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict: rates as fractions in [0, 1], NaN and infinity as ``None``."""
        return {
            "n": self.n,
            "decision": self.decision,
            "min_count": self.min_count,
            "n_boot": self.n_boot,
            "confidence": self.confidence,
            "overall": {m: v.to_json() for m, v in self.overall.items()},
            "groups": [
                {"attribute": g.attribute, "group": g.group,
                 "n": None if g.suppressed else g.n, "suppressed": g.suppressed,
                 "protects": g.protects,
                 "metrics": {m: v.to_json() for m, v in g.metrics.items()}}
                for g in self.groups
            ],
            "disparities": [
                {"attribute": d.attribute, "group": d.group, "reference": d.reference,
                 "metric": d.metric, "difference": d.difference.to_json(),
                 "ratio": d.ratio.to_json()}
                for d in self.disparities
            ],
        }

    def group_table(self) -> pd.DataFrame:
        """One row per group and metric; suppressed groups have ``n`` and values missing."""
        records = []
        for g in self.groups:
            for m in METRICS:
                v = g.metrics.get(m)
                records.append({
                    "attribute": g.attribute, "group": g.group,
                    "n": pd.NA if g.suppressed else g.n, "suppressed": g.suppressed,
                    "metric": m,
                    "value": np.nan if v is None else v.value,
                    "ci_low": np.nan if v is None else v.ci_low,
                    "ci_high": np.nan if v is None else v.ci_high,
                })
        frame = pd.DataFrame.from_records(
            records, columns=["attribute", "group", "n", "suppressed", "metric", "value",
                              "ci_low", "ci_high"])
        return frame.astype({"n": "Int64", "suppressed": bool})

    def disparity_table(self) -> pd.DataFrame:
        """One row per disparity: difference and ratio with their intervals."""
        records = [{
            "attribute": d.attribute, "group": d.group, "reference": d.reference,
            "metric": d.metric,
            "difference": d.difference.value, "difference_ci_low": d.difference.ci_low,
            "difference_ci_high": d.difference.ci_high,
            "ratio": d.ratio.value, "ratio_ci_low": d.ratio.ci_low,
            "ratio_ci_high": d.ratio.ci_high,
        } for d in self.disparities]
        return pd.DataFrame.from_records(
            records, columns=["attribute", "group", "reference", "metric", "difference",
                              "difference_ci_low", "difference_ci_high", "ratio",
                              "ratio_ci_low", "ratio_ci_high"])


def _num(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


# --- validation -------------------------------------------------------------------------


def _labels(y_true: npt.ArrayLike, name: str = "y_true") -> npt.NDArray[np.int8]:
    """0/1 outcomes as int8; an error names the first bad row."""
    y = np.asarray(y_true.to_numpy() if isinstance(y_true, pd.Series) else y_true)
    if y.ndim != 1:
        raise InputError(f"{name} must be one column of outcomes, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int8)
    try:
        yf = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError):
        yf = None
    if yf is None or (bad := ~np.isin(yf, (0.0, 1.0))).any():
        if yf is None:
            bad = ~pd.Series(y).isin([0, 1, True, False]).to_numpy()
        i = int(np.flatnonzero(bad)[0])
        value = y[i].item() if isinstance(y[i], np.generic) else y[i]
        raise InputError(f"{name}: value {value!r} at row {i} is not an outcome; labels must "
                         "be 0/1 (or True/False), with no missing values")
    return yf.astype(np.int8)


def _scores(scores: npt.ArrayLike, n: int, name: str = "scores",
            labels: str = "y_true") -> FloatArray:
    """Finite float scores, one per row; an error names the first bad row."""
    raw = np.asarray(scores.to_numpy() if isinstance(scores, pd.Series) else scores)
    if raw.ndim != 1:
        raise InputError(f"{name} must be one column, got shape {raw.shape}")
    if len(raw) != n:
        raise InputError(f"{name} has {len(raw)} rows but {labels} has {n}: give one value "
                         "per row, in the same order")
    if raw.dtype == bool or not (np.issubdtype(raw.dtype, np.number) or raw.dtype == object):
        raise InputError(f"{name} must be numbers, got dtype {raw.dtype}: pass probabilities "
                         "(e.g. the model's predict_proba[:, 1])")
    try:
        s = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        bad = pd.to_numeric(pd.Series(raw), errors="coerce").isna().to_numpy()
        i = int(np.flatnonzero(bad)[0])
        value = raw[i].item() if isinstance(raw[i], np.generic) else raw[i]
        raise InputError(f"{name}: value {value!r} at row {i} is not a number") from None
    if not np.isfinite(s).all():
        i = int(np.flatnonzero(~np.isfinite(s))[0])
        raise InputError(f"{name}: row {i} is {s[i]} (missing or infinite); give a value for "
                         "every row or leave those rows out")
    return s


def _sensitive(sensitive: pd.DataFrame | pd.Series, n: int, labels: str = "y_true"
               ) -> pd.DataFrame:
    """The attributes as a DataFrame with a fresh index (rows match by position)."""
    if isinstance(sensitive, pd.Series):
        sensitive = sensitive.to_frame()
    if not isinstance(sensitive, pd.DataFrame):
        raise InputError(f"sensitive must be a DataFrame with one column per attribute, got "
                         f"{type(sensitive).__name__}")
    if sensitive.shape[1] == 0:
        raise InputError("sensitive has no columns: give at least one attribute, e.g. sex")
    if len(sensitive) != n:
        raise InputError(f"sensitive has {len(sensitive)} rows but {labels} has {n}: give the "
                         "attributes of the same rows, in the same order")
    if sensitive.columns.duplicated().any():
        dup = sensitive.columns[sensitive.columns.duplicated()][0]
        raise InputError(f"sensitive has the column {dup!r} twice: keep one")
    return sensitive.reset_index(drop=True)


def decide(scores: FloatArray, threshold: float | None, top_k: int | None
           ) -> tuple[npt.NDArray[np.bool_], str]:
    """Who the decision rule selects, and the rule in words (``top 200``, ``score >= 0.3``).

    Exactly one of ``threshold`` (selected when the score is at least it) and ``top_k`` (the
    k highest scores; ties at the cut go to the earlier row).
    """
    if (threshold is None) == (top_k is None):
        raise InputError("give exactly one decision rule: threshold= (selected when score >= "
                         "threshold) or top_k= (the k highest scores are selected)")
    if threshold is not None:
        if not math.isfinite(threshold):
            raise InputError(f"threshold={threshold}: give a finite number, e.g. 0.3")
        return scores >= threshold, f"score >= {threshold:g}"
    assert top_k is not None
    n = len(scores)
    if isinstance(top_k, bool) or int(top_k) != top_k or not 1 <= top_k <= n:
        raise InputError(f"top_k={top_k!r}: give a whole number of places between 1 and the "
                         f"number of rows ({n})")
    # Ties at the cut: the earlier row wins (stable sort by descending score).
    chosen = np.argsort(-scores, kind="stable")[: int(top_k)]
    predicted = np.zeros(n, dtype=bool)
    predicted[chosen] = True
    return predicted, f"top {int(top_k)}"


# --- the audit --------------------------------------------------------------------------


def _exact(index: GroupIndex, y: npt.NDArray[np.int8], predicted: npt.NDArray[np.bool_],
           scores: FloatArray, *, probabilities: bool, min_count: int
           ) -> tuple[FloatArray, FloatArray, FloatArray, dict[int, GroupCurve]]:
    """Exact metrics (n_groups, M), group sizes, confusion counts (n_groups, 4), and
    reliability curves by global group."""
    cell = 2 * y.astype(np.int64) + predicted
    order = np.argsort(scores, kind="stable")
    out = np.full((index.n_groups, len(METRICS)), np.nan)
    sizes = np.zeros(index.n_groups)
    cells = np.zeros((index.n_groups, 4))
    curves: dict[int, GroupCurve] = {}
    for g in index.groupings:
        k, sl = len(g.names), slice(g.offset, g.offset + len(g.names))
        counts = np.bincount(g.codes * 4 + cell, minlength=4 * k).reshape(k, 4)
        cells[sl] = counts
        out[sl, _RATE_COLS] = rates_from_cells(counts.astype(np.float64))
        sorted_groups = SortedGroups.build(g.codes, g.counts, y, scores, order)
        out[sl, _AUC] = grouped_auc(sorted_groups)
        sizes[sl] = g.counts
        if probabilities:
            wanted = g.counts >= min_count
            out[sl, _BRIER] = grouped_brier(g.codes, k, y, scores)
            out[sl, _ECE] = grouped_ece(sorted_groups, wanted)
            if g.attribute:
                for code, curve in grouped_curves(sorted_groups, wanted,
                                                  min_count=min_count).items():
                    curves[g.offset + code] = curve
    return out, sizes, cells, curves


def _intervals(point: FloatArray, draws: FloatArray, binned: FloatArray, confidence: float
               ) -> tuple[FloatArray, FloatArray]:
    """Percentile intervals; those of the binned score metrics move by (exact - binned).

    An interval is widened to hold its own estimate: the bootstrap distribution of ECE (a
    sum of absolute gaps) lies above the estimate in small groups, and an interval that
    excludes the number it is printed next to would mislead the board.
    """
    low, high = percentile_interval(draws, confidence)
    shift = np.zeros_like(point)
    with np.errstate(invalid="ignore"):  # inf - inf (a ratio over 0) is NaN, as it should be
        shift[..., _SCORE_COLS] = point[..., _SCORE_COLS] - binned[..., _SCORE_COLS]
    low, high = low + shift, high + shift
    both = np.isfinite(low) & np.isfinite(high) & np.isfinite(point)
    return (np.where(both, np.minimum(low, point), low),
            np.where(both, np.maximum(high, point), high))


def audit(y_true: npt.ArrayLike, scores: npt.ArrayLike, sensitive: pd.DataFrame, *,
          threshold: float | None = None, top_k: int | None = None,
          reference: Mapping[str, str] | None = None, intersections: bool = True,
          min_count: int = 20, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0,
          progress: ProgressFn | None = None) -> AuditResult:
    """Audit a risk score's decisions by group, with bootstrap intervals.

    Parameters
    ----------
    y_true : array-like of shape (n,)
        Recorded outcomes, 0/1 or bool.
    scores : array-like of shape (n,)
        Risk scores (probabilities for Brier, ECE and calibration; other scores get NaN
        there). Rows are matched to ``y_true`` and ``sensitive`` by position.
    sensitive : DataFrame
        One column per attribute (e.g. sex, age_band, origin, district); missing values
        form the group ``"(missing)"``.
    threshold : float, optional
        Selected when ``score >= threshold``.
    top_k : int, optional
        The ``k`` highest scores are selected; on a tie at the cut the earlier row is taken
        (stable order by descending score, then row position). Give exactly one of
        ``threshold`` and ``top_k``.
    reference : mapping, optional
        Attribute (or intersection ``"a&b"``) -> reference group. Default: the largest group
        of each attribute and the largest cell of each intersection.
    intersections : bool, default True
        Also audit every *pair* of attributes (not triples: their cells are mostly small).
    min_count : int, default 20
        Groups with fewer rows are suppressed (no numbers, not even their size).
    n_boot : int, default 1000
        Poisson bootstrap resamples (0: no intervals). Decisions are taken once on the
        observed rows; resamples reweight rows, they do not re-rank them.
    confidence : float, default 0.95
        Coverage of the percentile intervals.
    seed : int, default 0
    progress : callable, optional
        ``progress(step, done, total)``.

    Returns
    -------
    AuditResult

    Notes
    -----
    Rate metrics (selection rate, TPR, FPR, FNR, PPV, base rate) are exact in every
    resample. AUC, Brier and ECE per resample come from score histograms over 32 global
    quantile bins (see :mod:`overblik.fairness._bootstrap`); their intervals are moved by the
    difference between the exact and the binned estimate on the observed rows. Ratios whose
    reference is 0 are NaN.
    """
    if isinstance(sensitive, pd.DataFrame):
        check_aligned(sensitive, y_true=y_true, scores=scores)
    y = _labels(y_true)
    n = len(y)
    if n == 0:
        raise InputError("nothing to audit: y_true has no rows")
    s = _scores(scores, n)
    frame = _sensitive(sensitive, n)
    if isinstance(min_count, bool) or int(min_count) != min_count or min_count < 1:
        raise InputError(f"min_count={min_count!r}: give a whole number >= 1, e.g. 20")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 0:
        raise InputError(f"n_boot={n_boot!r}: give a whole number of resamples >= 0, e.g. 1000")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence={confidence!r}: give a level between 0 and 1, e.g. 0.95")
    predicted, decision = decide(s, threshold, top_k)
    index = build_groups(frame, intersections=intersections)
    refs = resolve_references(index, reference, min_count=int(min_count))
    step = progress or (lambda *_: None)
    step("groups", 0, 1)
    probabilities = bool(((s >= 0.0) & (s <= 1.0)).all())
    point, sizes, cells, curves = _exact(index, y, predicted, s, probabilities=probabilities,
                                         min_count=int(min_count))
    step("groups", 1, 1)
    draws = bootstrap_metrics(y, predicted, s, index, n_boot=int(n_boot), seed=seed,
                              progress=progress)
    values = draws.values
    if not probabilities:  # Brier and ECE mean nothing for a score outside [0, 1]
        values[..., _PROBABILITY_COLS] = np.nan
        draws.binned_point[:, _PROBABILITY_COLS] = np.nan
    low, high = _intervals(point, values, draws.binned_point, confidence)
    wilson = wilson_interval(*rate_counts(cells), confidence)
    # A rate's bootstrap interval shrinks to a point at 0 or 1 (a group's two positives
    # both selected: TPR 100 % [100; 100]); it is never narrower than the Wilson interval.
    low[:, _RATE_COLS] = np.fmin(low[:, _RATE_COLS], wilson[0])
    high[:, _RATE_COLS] = np.fmax(high[:, _RATE_COLS], wilson[1])
    # Every metric is a share (AUC, Brier and ECE too): the binned-to-exact shift of the
    # score metrics' intervals may not carry them past 0 or 1.
    low, high = np.clip(low, 0.0, 1.0), np.clip(high, 0.0, 1.0)

    def interval(k: int, m: int) -> Interval:
        return Interval(float(point[k, m]), float(low[k, m]), float(high[k, m]))

    small = sizes < min_count
    suppressed = _complementary(index, small, sizes, refs)
    groups: list[GroupResult] = []
    disparities: list[Disparity] = []
    calibration: list[CalibrationCurve] = []
    overall = {m: interval(0, j) for j, m in enumerate(METRICS)}
    for g in index.groupings[1:]:
        for code, name in enumerate(g.names):
            k = g.offset + code
            hide = bool(suppressed[k])
            groups.append(GroupResult(
                attribute=g.attribute, group=name, n=0 if hide else int(sizes[k]),
                suppressed=hide, protects=hide and not bool(small[k]),
                metrics={} if hide else {m: interval(k, j) for j, m in enumerate(METRICS)}))
            if k in curves and not hide:
                c = curves[k]
                calibration.append(CalibrationCurve(g.attribute, name, c.mean_predicted,
                                                    c.observed, c.n))
        disparities += _disparities(g.attribute, g.names, g.offset, refs[g.attribute],
                                    point, values, draws.binned_point, suppressed, confidence,
                                    wilson)
    return AuditResult(
        n=n, decision=decision, threshold=None if threshold is None else float(threshold),
        top_k=None if top_k is None else int(top_k),
        references={g.attribute: g.names[refs[g.attribute]] for g in index.groupings[1:]},
        overall=overall, groups=tuple(groups), disparities=tuple(disparities),
        calibration=tuple(calibration), min_count=int(min_count), n_boot=int(n_boot),
        confidence=float(confidence), seed=int(seed),
    )


def _complementary(index: GroupIndex, small: npt.NDArray[np.bool_], sizes: FloatArray,
                   refs: Mapping[str, int]) -> npt.NDArray[np.bool_]:
    """``small`` plus the groups that would reveal a small one by subtraction.

    An intersection's cells along one value of either attribute add up to that value's
    group: where such a line hides exactly one cell, the others and the group give its size
    and, through the rates, its counts
    (origin & district: D12 minus Danish and descendants in D12 = 5 immigrants, 4 selected).
    The line's smallest shown cell is hidden too, until no line hides exactly one; never
    the reference cell (the comparisons need it). Attributes themselves are left alone:
    hiding their next smallest group would take a whole group (400 descendants for 7
    refugees) out of the audit, whose purpose is to compare groups; a group below
    ``min_count`` can still be worked out from the total there (a known limit).
    """
    hidden = small.copy()
    by_name = {g.attribute: g for g in index.groupings}
    lines: list[tuple[npt.NDArray[np.int64], int]] = []  # (positions, reference)
    for g in index.groupings[1:]:
        if SEP not in g.attribute:
            continue
        ref = g.offset + refs[g.attribute]
        first = np.zeros(len(g.names), dtype=np.int64)
        first[g.codes] = np.arange(len(g.codes))  # a row of every cell (any one will do)
        for part in g.attribute.split(SEP):
            values = by_name[part].codes[first]
            lines += [(g.offset + np.flatnonzero(values == v), ref)
                      for v in np.unique(values)]
    changed = True
    while changed:
        changed = False
        for positions, ref in lines:
            shown = positions[~hidden[positions]]
            if len(positions) - len(shown) != 1:
                continue
            candidates = shown[shown != ref]
            if len(candidates):
                hidden[candidates[np.argmin(sizes[candidates])]] = True
                changed = True
    return hidden


def _disparities(attribute: str, names: tuple[str, ...], offset: int, ref: int,
                 point: FloatArray, values: FloatArray, binned: FloatArray,
                 suppressed: npt.NDArray[np.bool_], confidence: float,
                 wilson: tuple[FloatArray, FloatArray]) -> list[Disparity]:
    """Difference and ratio of every unsuppressed group against the reference, jointly.

    A rate difference's interval is at least Newcombe's (hybrid score, from the two
    groups' Wilson intervals): the bootstrap's is a point when both rates sit at 0 or 1
    in every resample (one placed child of one against two of two read as "-100 pp,
    interval -100 to -100, beyond the limit").
    """
    r = offset + ref
    if suppressed[r]:
        return []
    ks = [offset + c for c in range(len(names)) if c != ref and not suppressed[offset + c]]
    if not ks:
        return []
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = (point[ks] - point[r], values[:, ks] - values[:, [r]],
                binned[ks] - binned[r])
        ratio = (point[ks] / point[r], values[:, ks] / values[:, [r]],
                 binned[ks] / binned[r])
    d_low, d_high = _intervals(diff[0], diff[1], diff[2], confidence)
    p, (wl, wh) = point[:, _RATE_COLS], wilson
    with np.errstate(invalid="ignore"):
        d = p[ks] - p[r]
        n_low = d - np.sqrt((p[ks] - wl[ks]) ** 2 + (wh[r] - p[r]) ** 2)
        n_high = d + np.sqrt((wh[ks] - p[ks]) ** 2 + (p[r] - wl[r]) ** 2)
    d_low[:, _RATE_COLS] = np.fmin(d_low[:, _RATE_COLS], n_low)
    d_high[:, _RATE_COLS] = np.fmax(d_high[:, _RATE_COLS], n_high)
    d_low, d_high = np.clip(d_low, -1.0, 1.0), np.clip(d_high, -1.0, 1.0)
    r_low, r_high = _intervals(ratio[0], ratio[1], ratio[2], confidence)
    out = []
    for i, k in enumerate(ks):
        for j, m in enumerate(METRICS):
            rv = float(ratio[0][i, j])
            out.append(Disparity(
                attribute=attribute, group=names[k - offset], reference=names[ref], metric=m,
                difference=Interval(float(diff[0][i, j]), float(d_low[i, j]),
                                    float(d_high[i, j])),
                ratio=Interval(rv if math.isfinite(rv) else math.nan, float(r_low[i, j]),
                               float(r_high[i, j]))))
    return out
