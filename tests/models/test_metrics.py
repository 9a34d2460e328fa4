"""Metrics: by hand on tiny examples, and equal to scikit-learn where it has them."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from overblik.models import ece, expected_hits, precision_recall_at_k, risk_metrics


def _calibrated_bins() -> tuple[np.ndarray, np.ndarray]:
    """Three probability levels whose rows have exactly that share of positives."""
    p = np.repeat([0.1, 0.5, 0.8], [100, 40, 50])
    y = np.concatenate([np.r_[np.ones(10), np.zeros(90)], np.r_[np.ones(20), np.zeros(20)],
                        np.r_[np.ones(40), np.zeros(10)]])
    return y, p


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_ece_is_zero_when_perfectly_calibrated(strategy: str) -> None:
    y, p = _calibrated_bins()
    assert ece(y, p, strategy=strategy) == pytest.approx(0.0, abs=1e-12)  # type: ignore[arg-type]


def test_ece_is_large_when_miscalibrated() -> None:
    y, p = _calibrated_bins()
    # Each level's rate is off by the same 0.3 in one direction or the other.
    shifted = np.where(p < 0.5, p + 0.3, p - 0.3)
    assert ece(y, shifted) == pytest.approx(0.3)
    assert ece(y, np.full_like(p, 0.9)) > 0.5


def test_ece_agrees_with_sklearn_calibration_curve() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 6, size=3000)
    y = (rng.random(3000) < np.clip(1.3 * p, 0, 1)).astype(int)
    for strategy in ("uniform", "quantile"):
        prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
        edges = (np.linspace(0, 1, 11) if strategy == "uniform"
                 else np.quantile(p, np.linspace(0, 1, 11)))
        counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=10)
        weights = counts[counts > 0] / len(p)
        expected = float(np.sum(weights * np.abs(prob_true - prob_pred)))
        assert ece(y, p, strategy=strategy) == pytest.approx(expected)  # type: ignore[arg-type]


def test_precision_recall_at_k_by_hand() -> None:
    y = [1, 0, 1, 0, 0]
    score = [0.9, 0.8, 0.7, 0.1, 0.2]
    assert precision_recall_at_k(y, score, 1) == (1.0, 0.5)
    assert precision_recall_at_k(y, score, 2) == (0.5, 0.5)
    assert precision_recall_at_k(y, score, 3) == pytest.approx((2 / 3, 1.0))
    assert precision_recall_at_k(y, score, 5) == (0.4, 1.0)


def test_ties_at_the_cut_count_in_expectation_whatever_the_row_order() -> None:
    y = np.array([1, 0, 0, 0, 1])
    score = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    # Two places among four tied rows holding one positive: 0.5 expected hits.
    assert precision_recall_at_k(y, score, 2) == (0.25, 0.25)
    for order in ([3, 1, 0, 2, 4], [0, 1, 2, 3, 4], [4, 0, 3, 2, 1]):
        assert precision_recall_at_k(y[order], score[order], 2) == (0.25, 0.25)
    assert expected_hits(y, score).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0, 2.0]


def test_precision_recall_at_k_match_sklearn_without_ties() -> None:
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.1).astype(int)
    score = rng.random(500) + 0.5 * y
    for k in (1, 17, 50, 500):
        top = np.zeros(500, dtype=int)
        top[np.argsort(-score)[:k]] = 1
        precision, recall = precision_recall_at_k(y, score, k)
        assert precision == pytest.approx(precision_score(y, top))
        assert recall == pytest.approx(recall_score(y, top))


def test_risk_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    p = rng.beta(1, 20, size=4000)
    y = (rng.random(4000) < p).astype(int)
    m = risk_metrics(y, p, k=100)
    assert m.roc_auc == pytest.approx(roc_auc_score(y, p))
    assert m.pr_auc == pytest.approx(average_precision_score(y, p))
    assert m.brier == pytest.approx(brier_score_loss(y, p))
    assert m.ece == pytest.approx(ece(y, p))
    assert (m.precision_at_k, m.recall_at_k) == precision_recall_at_k(y, p, 100)
    assert m.n == 4000 and m.base_rate == pytest.approx(y.mean())
    d = m.as_dict()
    assert list(d) == ["roc_auc", "pr_auc", "brier", "ece", "precision_at_k", "recall_at_k",
                       "n", "base_rate"]
    assert all(isinstance(v, float) for v in d.values())


def test_risk_metrics_with_one_class_are_nan_not_an_error() -> None:
    m = risk_metrics([0, 0, 0], [0.1, 0.2, 0.3], k=1)
    assert math.isnan(m.roc_auc) and math.isnan(m.pr_auc) and math.isnan(m.recall_at_k)
    assert m.precision_at_k == 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [(lambda: ece([0, 2], [0.1, 0.2]), "0/1; value 2 at position 1"),
     (lambda: ece([0, 1], [0.1, 1.2]), "probabilities in"),
     (lambda: ece([0, 1], [0.1]), "shape"),
     (lambda: ece([0, 1], [0.1, 0.2], n_bins=0), "n_bins"),
     (lambda: precision_recall_at_k([0, 1], [0.1, 0.2], 3), "k must be"),
     (lambda: precision_recall_at_k([0, 1], [np.nan, 0.2], 1), "missing value at position 0")],
)
def test_bad_input_names_the_problem(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
