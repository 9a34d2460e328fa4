"""The Poisson bootstrap: coverage, agreement with a row-level bootstrap, and its helpers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from overblik.fairness import audit
from overblik.fairness._bootstrap import bootstrap_metrics, percentile_interval, score_bins
from overblik.fairness._group_metrics import (
    METRICS,
    SortedGroups,
    binned_auc,
    binned_ece,
    grouped_auc,
)
from overblik.fairness._groups import build_groups
from overblik.models import ece

# A known population: group B (30%) has a higher base rate; score = outcome signal + noise.
SHARE_B, BASE = 0.3, {"A": 0.25, "B": 0.40}
SHIFT, NOISE, THRESHOLD = 1.0, 1.0, 0.8


def _draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    b = rng.random(n) < SHARE_B
    y = (rng.random(n) < np.where(b, BASE["B"], BASE["A"])).astype(int)
    s = SHIFT * y + NOISE * rng.normal(size=n)
    return y, s, pd.DataFrame({"g": np.where(b, "B", "A")})


def _truth() -> dict[tuple[str, str], float]:
    """Population selection rate and TPR per group, in closed form."""
    tpr = 1 - norm.cdf((THRESHOLD - SHIFT) / NOISE)
    fpr = 1 - norm.cdf(THRESHOLD / NOISE)
    return {(g, "selection_rate"): p * tpr + (1 - p) * fpr for g, p in BASE.items()} | {
        (g, "tpr"): tpr for g in BASE}


def test_intervals_cover_the_population_value() -> None:
    truth = _truth()
    rng = np.random.default_rng(7)
    reps, hits = 200, dict.fromkeys(truth, 0)
    diff_hits = 0
    true_diff = truth[("B", "selection_rate")] - truth[("A", "selection_rate")]
    for rep in range(reps):
        y, s, sens = _draw(1500, rng)
        res = audit(y, s, sens, threshold=THRESHOLD, n_boot=200, seed=rep,
                    intersections=False, reference={"g": "A"})
        for g in res.groups:
            for metric in ("selection_rate", "tpr"):
                iv = g.metrics[metric]
                hits[(g.group, metric)] += iv.ci_low <= truth[(g.group, metric)] <= iv.ci_high
        d = next(d for d in res.disparities if d.metric == "selection_rate")
        diff_hits += d.difference.ci_low <= true_diff <= d.difference.ci_high
    coverage = {k: v / reps for k, v in hits.items()} | {"difference": diff_hits / reps}
    print("coverage of 95% intervals:", coverage)
    assert all(0.90 <= c <= 0.99 for c in coverage.values()), coverage


def _row_bootstrap(y, s, groups, names, n_boot, rng):
    """Reference: exact metrics on row-level Poisson(1) resamples."""
    out = {name: {"auc": [], "ece": [], "selection_rate": []} for name in names}
    for _ in range(n_boot):
        rows = np.repeat(np.arange(len(y)), rng.poisson(1.0, len(y)))
        for name in names:
            r = rows[groups[rows] == name]
            out[name]["auc"].append(roc_auc_score(y[r], s[r]))
            out[name]["ece"].append(ece(y[r], s[r]))
            out[name]["selection_rate"].append(np.mean(s[r] >= 0.3))
    return out


def test_binned_intervals_match_a_row_level_bootstrap() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    origin = rng.choice(["danish", "immigrant"], n, p=[0.8, 0.2])
    latent = -1.5 + 0.5 * (origin == "immigrant") + rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(int)
    s = 1 / (1 + np.exp(-(latent + 0.7 * rng.normal(size=n))))
    res = audit(y, s, pd.DataFrame({"origin": origin}), threshold=0.3, n_boot=1000, seed=3)
    ref = _row_bootstrap(y, s, origin, ["danish", "immigrant"], 300, rng)
    for g in res.groups:
        for metric, draws in ref[g.group].items():
            low, high = np.quantile(draws, [0.025, 0.975])
            iv = g.metrics[metric]
            width = high - low
            # Monte Carlo error of 300 and 1000 resamples is a few % of the width.
            assert abs(iv.ci_low - low) < 0.2 * width, (g.group, metric, iv, low, high)
            assert abs(iv.ci_high - high) < 0.2 * width, (g.group, metric, iv, low, high)
        sd_rate = np.std(ref[g.group]["selection_rate"])
        iv = g.metrics["selection_rate"]
        assert (iv.ci_high - iv.ci_low) / (2 * 1.96 * sd_rate) == pytest.approx(1, abs=0.12)


def test_resamples_reproduce_exact_rates_and_share_draws() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    sens = pd.DataFrame({"a": rng.choice(list("xy"), n), "b": rng.choice(list("pqr"), n)})
    y = rng.integers(0, 2, n).astype(np.int8)
    s = rng.random(n)
    pred = s >= 0.5
    index = build_groups(sens)
    draws = bootstrap_metrics(y, pred, s, index, n_boot=64, seed=0)
    assert draws.values.shape == (64, index.n_groups, len(METRICS))
    # Observed sizes in: the exact rates come out.
    overall = draws.binned_point[0]
    assert overall[METRICS.index("selection_rate")] == pytest.approx(pred.mean(), abs=1e-12)
    assert overall[METRICS.index("brier")] == pytest.approx(np.mean((s - y) ** 2), abs=1e-12)
    # One resample for all groups: the overall selection rate is the weighted mean of the
    # groups of any attribute, in every resample.
    sel = METRICS.index("selection_rate")
    g = index.groupings[1]
    counts_share = []
    for k in range(len(g.names)):
        counts_share.append(draws.values[:, g.offset + k, sel])
    spread = np.ptp(draws.values[:, 0, sel])
    assert spread > 0  # the resamples differ
    low = np.min(np.stack(counts_share), axis=0)
    high = np.max(np.stack(counts_share), axis=0)
    assert np.all(low <= draws.values[:, 0, sel] + 1e-12)
    assert np.all(draws.values[:, 0, sel] <= high + 1e-12)


def test_percentile_interval_ignores_undefined_resamples() -> None:
    rng = np.random.default_rng(0)
    d = rng.normal(size=(1000, 4))
    d[rng.random(d.shape) < 0.2] = np.nan
    d[:, 2] = np.nan
    d[:700, 3] = np.inf  # e.g. a ratio over a zero reference
    low, high = percentile_interval(d, 0.9)
    clean = d[:, :2]
    expected = [np.quantile(c[np.isfinite(c)], [0.05, 0.95]) for c in clean.T]
    np.testing.assert_allclose(low[:2], [e[0] for e in expected], atol=1e-12)
    np.testing.assert_allclose(high[:2], [e[1] for e in expected], atol=1e-12)
    assert np.isnan(low[2]) and np.isnan(high[3])  # all or most undefined: no interval


def test_binned_auc_is_exact_when_bins_are_the_distinct_scores() -> None:
    rng = np.random.default_rng(2)
    s = rng.integers(0, 10, 500) / 10
    y = (rng.random(500) < 0.2 + 0.5 * s).astype(int)
    bins, z = score_bins(s)
    assert z == len(np.unique(s))
    neg = np.bincount(bins, weights=1 - y, minlength=z)
    pos = np.bincount(bins, weights=y, minlength=z)
    assert binned_auc(neg, pos) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_grouped_auc_matches_sklearn_per_group_with_ties() -> None:
    rng = np.random.default_rng(4)
    n = 2000
    codes = rng.integers(0, 5, n)
    s = np.round(rng.random(n), 2)  # many ties
    y = (rng.random(n) < 0.3 + 0.3 * s).astype(np.int8)
    counts = np.bincount(codes, minlength=5)
    sg = SortedGroups.build(codes, counts, y, s, np.argsort(s, kind="stable"))
    auc = grouped_auc(sg)
    for k in range(5):
        assert auc[k] == pytest.approx(roc_auc_score(y[codes == k], s[codes == k]), abs=1e-12)


def test_binned_ece_approximates_ece_with_fine_bins() -> None:
    rng = np.random.default_rng(6)
    p = rng.random(20000)
    y = (rng.random(20000) < np.clip(p + 0.1, 0, 1)).astype(int)
    bins, z = score_bins(p, 64)
    count = np.bincount(bins, minlength=z).astype(float)
    ysum = np.bincount(bins, weights=y, minlength=z)
    psum = np.bincount(bins, weights=p, minlength=z)
    assert binned_ece(count, ysum, psum) == pytest.approx(ece(y, p), abs=0.01)
