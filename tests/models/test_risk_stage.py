"""The DR learner's risk stage: it finds effects that vary with baseline risk from few
treated rows, reverts to the constant when there are none, and its share of each effect is
attributed to the features exactly."""

from __future__ import annotations

import numpy as np
import pytest

from overblik.models import DRLearner
from overblik.models._risk_stage import RiskStage, tune_risk_penalty
from tests.models.test_risk_based import _pehe, hazard_sim


def test_ridge_fit_and_the_constant() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=5000)
    phi = 0.1 + 0.05 * r - 0.02 * r ** 2 + rng.normal(0, 0.3, size=5000)
    free = RiskStage.fit(r, phi, alpha=0.0, centre=0.0, scale=1.0)
    assert free.coef == pytest.approx((0.05, -0.02), abs=0.015)
    assert free.intercept == pytest.approx(0.1, abs=0.02)
    constant = RiskStage.fit(r, phi, alpha=None, centre=0.0, scale=1.0)
    assert constant.coef == (0.0, 0.0) and constant.intercept == pytest.approx(phi.mean())
    # A heavier penalty shrinks the slopes towards the constant.
    heavy = RiskStage.fit(r, phi, alpha=10.0, centre=0.0, scale=1.0)
    assert abs(heavy.coef[0]) < abs(free.coef[0]) / 5


def test_cross_validation_picks_the_constant_without_heterogeneity() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=4000)
    flat = 0.05 + rng.normal(0, 1.0, size=4000)
    assert tune_risk_penalty(r, flat, None, centre=0.0, scale=1.0) is None
    sloped = 0.05 + 0.3 * r + rng.normal(0, 1.0, size=4000)
    assert tune_risk_penalty(r, sloped, None, centre=0.0, scale=1.0) is not None


def test_attribution_is_exact_and_follows_the_features() -> None:
    stage = RiskStage(centre=0.2, scale=1.5, intercept=0.03, coef=(0.02, -0.01))
    rng = np.random.default_rng(2)
    shap = np.column_stack([rng.normal(0, 1.0, 200), rng.normal(0, 0.1, 200),
                            np.full(200, -0.4)])
    shap[:3, :2] = 0.0  # baseline risk at its expected value: only the constant remains
    parts = stage.attribute(shap)
    np.testing.assert_allclose(parts.sum(axis=1), stage.predict(shap.sum(axis=1)), atol=1e-12)
    np.testing.assert_allclose(parts[:3, :2], 0.0)
    # The feature that moves the baseline more gets the larger share.
    assert np.abs(parts[3:, 0]).mean() > 5 * np.abs(parts[3:, 1]).mean()


def test_dr_learner_finds_risk_driven_effects_from_few_treated_rows() -> None:
    sim = hazard_sim(10000, seed=8)
    fit, test = slice(0, 7000), slice(7000, None)
    with_stage = DRLearner(n_bootstrap=4, random_state=0).fit(
        sim.X[fit], sim.T[fit], sim.y[fit])
    without = DRLearner(n_bootstrap=4, random_state=0, risk_stage=False).fit(
        sim.X[fit], sim.T[fit], sim.y[fit])
    assert with_stage.risk_penalty_ is not None and len(with_stage.risk_stages_) == 4
    assert without.risk_stages_ == [] and without.risk_penalty_ is None
    tau = sim.tau[test]
    gain = _pehe(without.effect(sim.X[test]), tau) - _pehe(with_stage.effect(sim.X[test]), tau)
    assert gain > 0.005, gain
    assert np.corrcoef(with_stage.effect(sim.X[test]), tau)[0, 1] > 0.7
    # The average effect comes from the pseudo-outcomes alone: the stage does not move it.
    assert with_stage.ate_ == without.ate_
    contrib = with_stage.effect_contributions(sim.X[test][:200])
    np.testing.assert_allclose(contrib.sum(axis=1), with_stage.effect(sim.X[test][:200]),
                               atol=1e-9)
    # Baseline risk is driven by features 0 and 1 (0 most): so are the reasons.
    share = np.abs(contrib[:, :-1]).mean(axis=0)
    assert share[0] > share[1] > share[2:].max()
    low, high = with_stage.effect_interval(sim.X[test][:200])
    effect = contrib.sum(axis=1)
    assert (low <= effect + 1e-12).all() and (effect <= high + 1e-12).all()


def test_few_treated_rows_give_the_average_not_noise() -> None:
    """A programme with no heterogeneity and ~150 treated rows among 3,000 (extreme
    propensities, as in a small municipality): the effect model must not turn the
    pseudo-outcomes' noise into individual effects, whatever the seed."""
    rng = np.random.default_rng(9)
    n = 3000
    X = rng.normal(size=(n, 6))
    e = 1.0 / (1.0 + np.exp(-(-3.4 + 1.2 * X[:, 0])))
    T = (rng.random(n) < e).astype(np.int_)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.3 * X[:, 1] + 0.4 * T)))).astype(np.int_)
    assert 100 < T.sum() < 220
    for seed in range(4):
        learner = DRLearner(n_bootstrap=2, random_state=seed).fit(X, T, y)
        effect = learner.effect(X)
        assert learner.risk_penalty_ is None  # under MIN_RISK_STAGE_MINORITY_ROWS
        assert effect.max() - effect.min() < 0.2, (seed, effect.min(), effect.max())
