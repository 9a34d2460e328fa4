"""Uplift evaluation on held-out rows: curves, RATE with bootstrap intervals and the
doubly-robust policy value, checked against known effects."""

from __future__ import annotations

import numpy as np
import pytest

from overblik.models._dr_learner import DRScores, dr_scores
from overblik.models._uplift import (
    policy_value,
    qini_curve,
    qini_curve_observed,
    rate,
    uplift_metrics,
)
from tests.models.test_effects import simulate


def _oracle_scores(tau: np.ndarray, seed: int = 0, noise: float = 1.0) -> DRScores:
    """Scores of a randomised trial with known nuisances: phi = tau + noise exactly."""
    rng = np.random.default_rng(seed)
    n = len(tau)
    mu0 = rng.normal(size=n)
    t = rng.binomial(1, 0.5, size=n)
    y = mu0 + t * tau + rng.normal(scale=noise, size=n)
    e = np.full(n, 0.5)
    gamma1 = mu0 + tau + t * (y - mu0 - tau) / e
    gamma0 = mu0 + (1 - t) * (y - mu0) / (1 - e)
    return DRScores(mu0=mu0, mu1=mu0 + tau, propensity=e, gamma0=gamma0, gamma1=gamma1,
                    trimmed=np.zeros(n, dtype=bool))


@pytest.fixture(scope="module")
def trial() -> tuple[np.ndarray, DRScores]:
    rng = np.random.default_rng(1)
    tau = np.where(rng.random(6000) < 0.3, 1.0, 0.0)  # 30 % gain 1, the rest nothing
    return tau, _oracle_scores(tau)


def test_qini_curve_of_the_true_effect(trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    curve = qini_curve(tau, scores, n_points=11)
    assert curve.share[0] == 0.0 and curve.share[-1] == 1.0
    assert curve.gain[0] == 0.0
    assert curve.gain[-1] == pytest.approx(scores.phi.mean())
    # The top 30 % hold every gainer: the uplift there is about 1, and the gain is flat after.
    assert curve.uplift[3] == pytest.approx(1.0, abs=0.15)
    assert curve.gain[3] == pytest.approx(0.3, abs=0.05)
    assert np.all(curve.gain[3:] - curve.gain[3] < 0.06)
    assert curve.area() > 0.08
    random = qini_curve(np.random.default_rng(2).random(len(tau)), scores)
    assert abs(random.area()) < 0.03


def test_constant_score_is_exactly_random(trial: tuple[np.ndarray, DRScores]) -> None:
    _, scores = trial
    constant = np.zeros(len(scores.phi))
    curve = qini_curve(constant, scores)
    np.testing.assert_allclose(curve.gain, curve.random_gain(), atol=1e-12)
    assert rate(constant, scores, n_bootstrap=20).estimate == pytest.approx(0.0, abs=1e-12)


def test_rate_separates_good_random_and_reversed_rankings(
        trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    good = rate(tau, scores, n_bootstrap=100)
    noise = rate(np.random.default_rng(3).random(len(tau)), scores, n_bootstrap=100)
    reverse = rate(-tau, scores, n_bootstrap=100)
    assert good.ci_low > 0
    assert noise.covers(0.0)
    assert reverse.ci_high < 0
    # Exact AUTOC of the true ranking with a share p of gainers: TOC(q) = 1 - p up to
    # q = p, then p/q - p; the integral over q is p log(1/p).
    p = tau.mean()
    exact = p * np.log(1 / p)
    assert good.covers(exact), (good, exact)
    # The Qini-weighted RATE is the area between the Qini curve and random targeting.
    qini = rate(tau, scores, target="QINI", n_bootstrap=20)
    assert qini.estimate == pytest.approx(qini_curve(tau, scores, n_points=6001).area(),
                                          abs=2e-3)


def test_rate_bootstrap_by_person_is_wider_for_duplicated_rows(
        trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    half = DRScores(*(np.tile(getattr(scores, f)[:3000], 2) for f in
                      ("mu0", "mu1", "propensity", "gamma0", "gamma1", "trimmed")))
    score = np.tile(tau[:3000], 2)
    plain = rate(score, half, n_bootstrap=100)
    grouped = rate(score, half, n_bootstrap=100, groups=np.tile(np.arange(3000), 2))
    assert grouped.se > 1.2 * plain.se


def test_policy_value_at_a_budget(trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    pv = policy_value(tau, scores, budget=0.2)
    assert pv.n_treated == 1200
    # Treating the top 20 % (all gainers) gains 0.2 per row; random would gain 0.2 * 0.3.
    assert pv.gain.covers(0.2)
    assert pv.gain_vs_random.covers(0.2 - 0.2 * 0.3)
    assert pv.gain_per_treated.covers(1.0)
    assert pv.value.estimate == pytest.approx(scores.gamma0.mean() + pv.gain.estimate)
    worst = policy_value(-tau, scores, budget=0.2)
    assert worst.gain.covers(0.0) and worst.gain_vs_random.ci_high < 0
    metrics = pv.as_metrics("mentor_")
    assert metrics["mentor_gain"] == pv.gain.estimate and "mentor_value_ci_low" in metrics
    with pytest.raises(ValueError, match=r"budget=1\.5"):
        policy_value(tau, scores, budget=1.5)


def test_ties_at_the_cut_share_the_places(trial: tuple[np.ndarray, DRScores]) -> None:
    """A constant effect model ranks no one: by row order its "top 20 %" beat random by
    +0.19 in a training run. Rows tied at the cut now share its places: a constant score
    is exactly random, and any tie is the average of its two tie-breaks."""
    tau, scores = trial
    n = len(tau)
    constant = policy_value(np.zeros(n), scores, budget=0.2)
    assert constant.gain_vs_random.estimate == pytest.approx(0.0, abs=1e-12)
    assert constant.gain.estimate == pytest.approx(0.2 * scores.phi.mean())
    # Two rows tied at the cut of four places: each tie-break gives one of them the place.
    score = np.r_[np.full(3, 3.0), 2.0, 2.0, np.zeros(n - 5)]
    phi = np.r_[1.0, 1.0, 1.0, 4.0, 0.0, np.zeros(n - 5)]
    shared = policy_value(score, phi, budget=4 / n)
    first = policy_value(np.r_[score[:4], 1.9, score[5:]], phi, budget=4 / n)
    second = policy_value(np.r_[score[:3], 1.9, score[4:]], phi, budget=4 / n)
    assert shared.gain.estimate == pytest.approx(
        (first.gain.estimate + second.gain.estimate) / 2)
    assert shared.gain_per_treated.estimate == pytest.approx((3 + 2) / 4)


def test_observed_qini_agrees_with_dr_in_a_randomised_trial() -> None:
    rng = np.random.default_rng(4)
    n = 8000
    tau = np.where(rng.random(n) < 0.3, 1.0, 0.0)
    t = rng.binomial(1, 0.5, size=n)
    y = rng.normal(size=n) + t * tau
    observed = qini_curve_observed(tau, t, y, n_points=11)
    assert observed.gain[3] == pytest.approx(0.3, abs=0.06)
    assert observed.gain[-1] == pytest.approx(0.3, abs=0.06)


def test_evaluates_a_learnt_ranking_on_held_out_rows() -> None:
    from overblik.models._dr_learner import DRLearner

    train, test = simulate(3000, seed=21), simulate(3000, seed=22)
    model = DRLearner(n_folds=3, n_bootstrap=0).fit(train.X, train.T, train.y)
    held_out = dr_scores(test.X, test.T, test.y, n_folds=3)
    learnt, truth = model.effect(test.X), test.tau
    metrics = uplift_metrics(learnt, held_out, n_bootstrap=50)
    assert metrics["autoc_ci_low"] > 0
    assert metrics["policy_gain_vs_random_at_20pct_ci_low"] > 0
    oracle = uplift_metrics(truth, held_out, n_bootstrap=50)
    assert oracle["autoc"] > 0.7 * metrics["autoc"]


def test_bad_inputs_are_refused(trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    with pytest.raises(ValueError, match="one value per row"):
        qini_curve(tau[:10], scores)
    bad = tau.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="row 5"):
        rate(bad, scores)
    with pytest.raises(ValueError, match="target="):
        rate(tau, scores, target="AUC")  # type: ignore[arg-type]


def test_plots_draw_curves_overlap_and_effects(trial: tuple[np.ndarray, DRScores]) -> None:
    from overblik.models import plot_effect_distribution, plot_overlap, plot_uplift_curves

    tau, scores = trial
    curve = qini_curve(tau, scores)
    fig = plot_uplift_curves({"true effect": (curve.share, curve.gain)})
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()] == ["true effect", "random"]
    overlap = plot_overlap(np.linspace(0.001, 0.999, 200), np.arange(200) % 2,
                           trim=(0.01, 0.99))
    assert len(overlap.axes[0].patches) > 0 and len(overlap.axes[0].get_lines()) == 2
    # Propensities all below 0.2 fill the axis (they were five bins of a 0-1 axis).
    rare = plot_overlap(np.linspace(0.02, 0.18, 200), np.arange(200) % 2, trim=(0.01, 0.99))
    low, high = rare.axes[0].get_xlim()
    assert 0.0 <= low < 0.02 and 0.18 < high < 0.2
    assert len(rare.axes[0].get_lines()) == 0  # neither bound lies in that range
    assert "each curve's ranking" in ax.get_xlabel()
    trimmed = np.arange(len(tau)) < 100
    effects = plot_effect_distribution(tau, ate=float(tau.mean()), trimmed=trimmed)
    labels = effects.axes[0].get_legend_handles_labels()[1]
    assert {"kept rows (n=5,900)", "trimmed rows (n=100)", f"ATE {tau.mean():.4g}"} <= set(labels)


def test_rate_checks_its_person_groups(trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    n = len(tau)
    for groups in (np.arange(10), np.arange(2 * n)):  # shorter, longer
        with pytest.raises(ValueError, match=rf"groups must be .* \({n}\), got shape"):
            rate(tau, scores, n_bootstrap=5, groups=groups)
    with pytest.raises(ValueError, match=r"groups has 1 different label.*at least 2"):
        rate(tau, scores, n_bootstrap=5, groups=np.zeros(n))
    with pytest.raises(ValueError, match="at least 2"):
        policy_value(tau, scores, budget=0.2, groups=np.zeros(n))


def test_empty_rankings_and_degenerate_curves_are_refused() -> None:
    with pytest.raises(ValueError, match="score has no rows"):
        rate([], [], n_bootstrap=5)
    with pytest.raises(ValueError, match="score has no rows"):
        qini_curve([], [])
    with pytest.raises(ValueError, match="n_points=0: a curve needs at least its two ends"):
        qini_curve([1.0, 0.0], [0.1, 0.2], n_points=0)
    with pytest.raises(TypeError, match=r"n_bootstrap=2\.5"):
        rate([1.0, 0.0], [0.1, 0.2], n_bootstrap=2.5)  # type: ignore[arg-type]


def test_observed_qini_validates_treatment_and_outcome() -> None:
    rng = np.random.default_rng(2)
    s = rng.normal(size=200)
    t = rng.integers(0, 2, 200)
    y = rng.normal(size=200)
    with pytest.raises(ValueError, match="y has a missing or infinite value at row 2"):
        qini_curve_observed(s, t, np.where(np.arange(200) == 2, np.nan, y))
    with pytest.raises(ValueError, match="T must be 0/1"):
        qini_curve_observed(s, t * 2, y)
    with pytest.raises(ValueError, match=r"^T must be .* row of score \(200\), got shape \(199,"):
        qini_curve_observed(s, t[:-1], y)
    with pytest.raises(ValueError, match=r"^y must be .* row of score \(200\), got shape \(199,"):
        qini_curve_observed(s, t, y[:-1])


def test_policy_value_of_pseudo_outcomes_alone(trial: tuple[np.ndarray, DRScores]) -> None:
    tau, scores = trial
    full = policy_value(tau, scores, budget=0.2)
    alone = policy_value(tau, scores.phi, budget=0.2)
    assert alone.gain == full.gain and alone.gain_vs_random == full.gain_vs_random
    assert alone.gain_per_treated == full.gain_per_treated
    assert np.isnan(alone.value.estimate)  # the value needs gamma0 and gamma1
