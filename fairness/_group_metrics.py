"""Metrics per group: exact estimates on the rows, and their binned forms for the bootstrap.

Confusion cells are coded ``2 * y + predicted``: 0 true negative, 1 false positive,
2 false negative, 3 true positive. Every function is vectorised over groups (and over
resamples for the binned forms); a metric whose denominator is zero is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from overblik.models._effects import z_value
from overblik.models._metrics import ece

__all__ = [
    "METRICS",
    "RATE_METRICS",
    "SCORE_METRICS",
    "GroupCurve",
    "SortedGroups",
    "binned_auc",
    "binned_ece",
    "calibration_curve",
    "grouped_auc",
    "grouped_brier",
    "grouped_curves",
    "grouped_ece",
    "rate_counts",
    "rates_from_cells",
    "wilson_interval",
]

METRICS: tuple[str, ...] = ("base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv", "auc",
                            "brier", "ece")
RATE_METRICS: tuple[str, ...] = METRICS[:6]
SCORE_METRICS: tuple[str, ...] = METRICS[6:]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
TN, FP, FN, TP = 0, 1, 2, 3


def _ratio(num: FloatArray, den: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.asarray(num / den, dtype=np.float64)
    return np.where(den > 0, out, np.nan)


def rates_from_cells(cells: FloatArray) -> FloatArray:
    """The rate metrics from confusion counts.

    Parameters
    ----------
    cells : ndarray of shape (..., 4)
        Counts (or bootstrap weights) of TN, FP, FN, TP.

    Returns
    -------
    ndarray of shape (..., 6)
        ``base_rate, selection_rate, tpr, fpr, fnr, ppv`` (the order of ``RATE_METRICS``).
    """
    tn, fp, fn, tp = (cells[..., i] for i in range(4))
    n = tn + fp + fn + tp
    return np.stack([
        _ratio(fn + tp, n),
        _ratio(fp + tp, n),
        _ratio(tp, tp + fn),
        _ratio(fp, fp + tn),
        _ratio(fn, fn + tp),
        _ratio(tp, tp + fp),
    ], axis=-1)


def rate_counts(cells: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Numerators and denominators of the rate metrics, each of shape (..., 6), in the
    order of :func:`rates_from_cells`."""
    tn, fp, fn, tp = (cells[..., i] for i in range(4))
    n = tn + fp + fn + tp
    return (np.stack([fn + tp, fp + tp, tp, fp, fn, tp], axis=-1),
            np.stack([n, n, tp + fn, fp + tn, fn + tp, tp + fp], axis=-1))


def wilson_interval(num: FloatArray, den: FloatArray, confidence: float
                    ) -> tuple[FloatArray, FloatArray]:
    """Wilson score interval of a proportion ``num / den``; NaN where ``den`` is 0.

    Unlike a bootstrap percentile interval it does not shrink to a point at 0 or 1: two
    cases of two give [34 %, 100 %] at 95 %, not [100 %, 100 %].
    """
    z = z_value(1.0 - confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = num / den
        centre = (p + z * z / (2 * den)) / (1 + z * z / den)
        half = z * np.sqrt(p * (1 - p) / den + z * z / (4 * den * den)) / (1 + z * z / den)
    ok = den > 0
    return (np.where(ok, np.clip(centre - half, 0.0, 1.0), np.nan),
            np.where(ok, np.clip(centre + half, 0.0, 1.0), np.nan))


@dataclass(frozen=True)
class SortedGroups:
    """Rows of one grouping sorted by group, then by score (contiguous slices per group)."""

    group: IntArray
    scores: FloatArray
    y: npt.NDArray[np.int8]
    counts: IntArray

    @classmethod
    def build(cls, codes: IntArray, counts: IntArray, y: npt.NDArray[np.int8],
              scores: FloatArray, order: IntArray) -> SortedGroups:
        """``order`` sorts the scores (shared by every grouping of an audit)."""
        small = np.int16 if len(counts) < 2**15 else np.int64  # int16 sorts by radix: O(n)
        rows = order[np.argsort(codes[order].astype(small), kind="stable")]
        return cls(group=codes[rows], scores=scores[rows], y=y[rows], counts=counts)

    def slices(self) -> list[slice]:
        bounds = np.r_[0, np.cumsum(self.counts)].tolist()
        return [slice(bounds[k], bounds[k + 1]) for k in range(len(self.counts))]


def grouped_auc(sg: SortedGroups) -> FloatArray:
    """ROC AUC of every group, exactly (Mann-Whitney with ties counted half).

    Returns
    -------
    ndarray of shape (n_groups,)
        NaN for a group with one class.
    """
    g, s, yy = sg.group, sg.scores, sg.y.astype(np.float64)
    n_groups = len(sg.counts)
    if len(g) == 0:
        return np.full(n_groups, np.nan)
    # Blocks of equal (group, score): ties inside a block count half.
    start = np.empty(len(g), dtype=bool)
    start[0] = True
    np.not_equal(g[1:], g[:-1], out=start[1:])
    start[1:] |= s[1:] != s[:-1]
    first_row = np.flatnonzero(start)
    block_group = g[first_row]
    pos = np.add.reduceat(yy, first_row)
    neg = np.diff(np.r_[first_row, len(g)]) - pos
    before = np.cumsum(neg) - neg
    first = np.flatnonzero(np.r_[True, block_group[1:] != block_group[:-1]])
    neg_before = before - np.repeat(before[first], np.diff(np.r_[first, len(block_group)]))
    u = np.bincount(block_group, weights=pos * (neg_before + 0.5 * neg), minlength=n_groups)
    p = np.bincount(g, weights=yy, minlength=n_groups)
    return _ratio(u.astype(np.float64), p * (sg.counts - p))


def grouped_brier(codes: IntArray, n_groups: int, y: npt.NDArray[np.int8],
                  scores: FloatArray) -> FloatArray:
    """Mean squared error of the probability per group."""
    sq = np.bincount(codes, weights=(scores - y) ** 2, minlength=n_groups).astype(np.float64)
    return _ratio(sq, np.bincount(codes, minlength=n_groups).astype(np.float64))


@dataclass(frozen=True)
class GroupCurve:
    """A reliability curve: mean prediction, observed rate and rows per bin."""

    mean_predicted: tuple[float, ...]
    observed: tuple[float, ...]
    n: tuple[int, ...]


def grouped_ece(sg: SortedGroups, wanted: npt.NDArray[np.bool_]) -> FloatArray:
    """Expected calibration error of the wanted groups (:func:`overblik.models.ece`)."""
    out = np.full(len(sg.counts), np.nan)
    for k, part in enumerate(sg.slices()):
        if wanted[k] and sg.counts[k]:
            out[k] = ece(sg.y[part], sg.scores[part])
    return out


def calibration_curve(y: npt.NDArray[np.int8], proba: FloatArray, *, min_count: int,
                      max_bins: int = 10) -> GroupCurve:
    """Reliability curve on quantile bins as in :func:`overblik.models.ece`.

    Uses ``min(max_bins, n // min_count)`` bins (at least one), so a bin holds about
    ``min_count`` persons or more, and leaves out a bin that ties made smaller than
    ``min_count``: a point on the curve never describes a suppressible cell.
    """
    n_bins = max(1, min(max_bins, len(y) // max(min_count, 1)))
    edges = np.quantile(proba, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], proba)  # the rule of ece / calibration_curve
    count = np.bincount(bins, minlength=n_bins)
    keep = count >= max(min_count, 1)
    mean_p = np.bincount(bins, weights=proba, minlength=n_bins)[keep] / count[keep]
    observed = np.bincount(bins, weights=y.astype(np.float64), minlength=n_bins)[keep] / count[keep]
    return GroupCurve(mean_predicted=tuple(float(v) for v in mean_p),
                      observed=tuple(float(v) for v in observed),
                      n=tuple(int(v) for v in count[keep]))


def grouped_curves(sg: SortedGroups, wanted: npt.NDArray[np.bool_], *, min_count: int
                   ) -> dict[int, GroupCurve]:
    """Reliability curves of the wanted groups, by group code."""
    return {k: calibration_curve(sg.y[part], sg.scores[part], min_count=min_count)
            for k, part in enumerate(sg.slices()) if wanted[k] and sg.counts[k]}


def binned_auc(neg: FloatArray, pos: FloatArray) -> FloatArray:
    """ROC AUC from weighted histograms of the scores over ordered bins (last axis).

    Rows in the same bin count as ties (half a pair).
    """
    before = np.cumsum(neg, axis=-1) - neg
    u = np.sum(pos * (before + 0.5 * neg), axis=-1)
    return _ratio(u, pos.sum(axis=-1) * neg.sum(axis=-1))


def binned_ece(count: FloatArray, ysum: FloatArray, psum: FloatArray,
               n_bins: int = 10) -> FloatArray:
    """ECE from weighted histograms over ordered score bins (last axis).

    The quantile bins of :func:`overblik.models.ece` are approximated by merging the ordered
    histogram bins: a histogram bin joins quantile bin ``floor(n_bins * r)`` where ``r`` is
    the share of rows below its middle.
    """
    total = count.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        middle = (np.cumsum(count, axis=-1) - 0.5 * count) / total
    coarse = np.clip(np.floor(np.nan_to_num(middle) * n_bins), 0, n_bins - 1)
    gap = np.cumsum(ysum - psum, axis=-1)
    ends = np.stack([(coarse <= j).sum(axis=-1) - 1 for j in range(n_bins)], axis=-1)
    at_end = np.take_along_axis(gap, np.maximum(ends, 0), axis=-1)
    at_end = np.where(ends >= 0, at_end, 0.0)
    per_bin = np.diff(at_end, axis=-1, prepend=0.0)
    return _ratio(np.abs(per_bin).sum(axis=-1), total[..., 0])
