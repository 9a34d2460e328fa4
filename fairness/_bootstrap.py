"""Poisson bootstrap of every group metric at once, without touching rows per resample.

The method
----------
A Poisson bootstrap gives every row a weight ``w_i ~ Poisson(1)``, independently; a
resample's metric is the weighted metric. The rate metrics of any group depend on the
weights only through the weighted counts of the confusion cells of the group, and a group
is a union of *strata*: rows with the same combination of sensitive values (cell), outcome,
decision and score bin. The sum of independent ``Poisson(1)`` weights over a stratum of
``m`` rows is ``Poisson(m)``, so drawing one ``Poisson(m_s)`` per stratum gives the stratum
totals with exactly the distribution the row weights would give them. Every grouping
(attribute, intersection, the whole population) is a sum of the same strata, so all groups
share each resample and differences between groups get joint intervals.

Per resample the weights go through two sparse products: strata -> (cell, feature) and
cells -> groups. The features are the confusion counts (so the rate metrics are the exact
weighted rates of the resample), and for the score metrics a histogram of the scores over
``SCORE_BINS`` global quantile bins for each outcome, the sum of the probabilities per bin
and the sum of squared errors. AUC, Brier and ECE of a resample are computed from those
histograms (rows in one bin count as tied; a row's probability is replaced by its stratum's
mean). The audit moves their intervals by the difference between the exact estimate and the
binned one on the observed rows (``binned_point``).

Cost: ``n_boot x n_strata`` Poisson draws plus the two products; no step is
``n_boot x n_rows``. With 4 attributes of 2, 5, 3 and 12 values there are at most
360 cells, so about 360 x 2 x 32 strata whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from overblik.fairness._group_metrics import METRICS, binned_auc, binned_ece, rates_from_cells
from overblik.fairness._groups import GroupIndex

__all__ = ["SCORE_BINS", "BootstrapDraws", "bootstrap_metrics", "percentile_interval",
           "score_bins"]

SCORE_BINS = 32
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ProgressFn = Callable[[str, int, int], None]
_BUDGET = 8_000_000  # floats per intermediate array of one chunk of resamples


@dataclass(frozen=True)
class BootstrapDraws:
    """Metric values per resample and group.

    Attributes
    ----------
    values : ndarray of shape (n_boot, n_groups, len(METRICS))
    binned_point : ndarray of shape (n_groups, len(METRICS))
        The same computation with every stratum at its observed size: the rate metrics
        equal the exact ones; AUC, Brier and ECE are their binned forms.
    n_strata : int
    """

    values: FloatArray
    binned_point: FloatArray
    n_strata: int


def score_bins(scores: FloatArray, n_bins: int | None = None) -> tuple[IntArray, int]:
    """Ordered bins of the scores: the distinct values when few, else quantile bins."""
    n_bins = SCORE_BINS if n_bins is None else n_bins
    distinct = np.unique(scores)
    if len(distinct) <= n_bins:
        return np.searchsorted(distinct, scores).astype(np.int64), len(distinct)
    edges = np.unique(np.quantile(scores, np.linspace(0.0, 1.0, n_bins + 1))[1:-1])
    return np.searchsorted(edges, scores, side="right").astype(np.int64), len(edges) + 1


def _metrics(groups: FloatArray, z: int) -> FloatArray:
    """Metrics from group features of shape (n_groups, n_features, b) -> (b, n_groups, M)."""
    feats = np.moveaxis(groups, 1, -1)  # (n_groups, b, F)
    neg, pos, psum = feats[..., :z], feats[..., z:2 * z], feats[..., 2 * z:3 * z]
    sq, cells = feats[..., 3 * z], feats[..., 3 * z + 1:]
    n = cells.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        brier = np.where(n > 0, sq / n, np.nan)
    out = np.concatenate([
        rates_from_cells(cells),
        binned_auc(neg, pos)[..., None],
        brier[..., None],
        binned_ece(neg + pos, pos, psum)[..., None],
    ], axis=-1)
    return np.moveaxis(out, 1, 0)


def bootstrap_metrics(y: npt.NDArray[np.int8], predicted: npt.NDArray[np.bool_],
                      scores: FloatArray, index: GroupIndex, *, n_boot: int, seed: int,
                      progress: ProgressFn | None = None) -> BootstrapDraws:
    """Draw ``n_boot`` Poisson resamples and compute every metric of every group.

    Parameters
    ----------
    y, predicted, scores : ndarray of shape (n,)
        Outcomes (0/1), decisions and scores of the rows.
    index : GroupIndex
        Cells of the rows and the groups made of them.
    n_boot : int
        Resamples (0: only ``binned_point``).
    seed : int
    progress : callable, optional
        ``progress("bootstrap", done, n_boot)`` after each chunk of resamples.

    Returns
    -------
    BootstrapDraws
    """
    bins, z = score_bins(scores)
    n_feat = 3 * z + 5
    cell_of = index.cell
    code = ((cell_of * 2 + y) * 2 + predicted) * z + bins
    strata, inverse, size = np.unique(code, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    mean_p = np.bincount(inverse, weights=scores) / size
    mean_sq = np.bincount(inverse, weights=(scores - y) ** 2) / size
    s_bin = strata % z
    rest = strata // z
    s_pred, s_y, s_cell = rest % 2, (rest // 2) % 2, rest // 4
    base = s_cell * n_feat
    n_strata = len(strata)
    rows = np.concatenate([base + s_y * z + s_bin, base + 2 * z + s_bin, base + 3 * z,
                           base + 3 * z + 1 + 2 * s_y + s_pred])
    values = np.concatenate([np.ones(n_strata), mean_p, mean_sq, np.ones(n_strata)])
    cols = np.tile(np.arange(n_strata), 4)
    to_cells = sp.csr_matrix((values, (rows, cols)), shape=(index.n_cells * n_feat, n_strata))
    membership = index.membership

    def run(weights: FloatArray) -> FloatArray:
        b = weights.shape[1]
        per_cell = np.asarray(to_cells @ weights).reshape(index.n_cells, n_feat * b)
        per_group = np.asarray(membership @ per_cell).reshape(index.n_groups, n_feat, b)
        return _metrics(per_group, z)

    binned_point = run(size[:, None].astype(np.float64))[0]
    widest = max(index.n_cells, index.n_groups) * n_feat + n_strata
    chunk = int(max(1, min(256, _BUDGET // widest)))
    out = np.empty((n_boot, index.n_groups, len(METRICS)))
    rng = np.random.default_rng(seed)
    lam = size.astype(np.float64)[:, None]
    for lo in range(0, n_boot, chunk):
        hi = min(lo + chunk, n_boot)
        weights = rng.poisson(lam, size=(n_strata, hi - lo)).astype(np.float64)
        out[lo:hi] = run(weights)
        if progress is not None:
            progress("bootstrap", hi, n_boot)
    return BootstrapDraws(values=out, binned_point=binned_point, n_strata=n_strata)


def percentile_interval(draws: FloatArray, confidence: float, *, min_valid: float = 0.5
                        ) -> tuple[FloatArray, FloatArray]:
    """Percentile interval over the first axis, from the resamples where it is defined.

    Linear interpolation between order statistics (numpy's default quantile). NaN where
    fewer than ``min_valid`` of the resamples give a finite value (e.g. a TPR of a group
    with one positive, which a third of the resamples leave without one).
    """
    if draws.shape[0] == 0:
        nan = np.full(draws.shape[1:], np.nan)
        return nan, nan.copy()
    finite = np.isfinite(draws)
    ordered = np.sort(np.where(finite, draws, np.nan), axis=0)  # NaN sorts last
    valid = finite.sum(axis=0)
    alpha = (1.0 - confidence) / 2.0

    def quantile(q: float) -> FloatArray:
        pos = q * np.maximum(valid - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(valid - 1, 0))
        a = np.take_along_axis(ordered, lo[None], axis=0)[0]
        b = np.take_along_axis(ordered, hi[None], axis=0)[0]
        return np.asarray(a + (pos - lo) * (b - a), dtype=np.float64)

    enough = (valid > 0) & (valid >= min_valid * draws.shape[0])
    return (np.where(enough, quantile(alpha), np.nan),
            np.where(enough, quantile(1.0 - alpha), np.nan))
