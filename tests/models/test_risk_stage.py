"""The DR learner's risk stage: it finds effects that vary with baseline risk from few
treated rows, reverts to the constant when there are none, and its share of each effect is
attributed to the features exactly."""

from __future__ import annotations

import numpy as np
import pytest

from overblik.models import DRLearner
from overblik.models._risk_stage import RiskBasis, RiskStage, risk_bases, tune_risk_stage
from tests.models.test_risk_based import _pehe, hazard_sim

MARGIN = RiskBasis("margin", 0.0, 1.0)


def test_ridge_fit_and_the_constant() -> None:
    rng = np.random.default_rng(0)
    r = rng.normal(size=5000)
    phi = 0.1 + 0.05 * r - 0.02 * r ** 2 + rng.normal(0, 0.3, size=5000)
    free = RiskStage.fit(r, phi, alpha=0.0, basis=MARGIN)
    assert free.coef == pytest.approx((0.05, -0.02), abs=0.015)
    assert free.intercept == pytest.approx(0.1, abs=0.02)
    constant = RiskStage.fit(r, phi, alpha=None, basis=MARGIN)
    assert constant.coef == (0.0, 0.0) and constant.intercept == pytest.approx(phi.mean())
    # A heavier penalty shrinks the slopes towards the constant.
    heavy = RiskStage.fit(r, phi, alpha=10.0, basis=MARGIN)
    assert abs(heavy.coef[0]) < abs(free.coef[0]) / 5


def test_cross_validation_picks_the_constant_without_heterogeneity() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(size=4000)
    flat = 0.05 + rng.normal(0, 1.0, size=4000)
    assert tune_risk_stage(r, flat, None, bases=[MARGIN]) is None
    sloped = 0.05 + 0.3 * r + rng.normal(0, 1.0, size=4000)
    assert tune_risk_stage(r, sloped, None, bases=[MARGIN]) is not None


def test_a_hazard_effect_is_fitted_in_the_probability_basis() -> None:
    """A programme that halves a rare event's hazard changes its probability in proportion
    to the probability: cross-validation picks the probability basis, whose fit keeps
    rising with risk, while a quadratic in the log-odds bends back up at the low-risk end
    and ranks some of the least at risk among the first."""
    rng = np.random.default_rng(3)
    r = rng.normal(-4.0, 1.0, size=40_000)  # log-odds of the event; the top 1 % near 10 %
    tau = 0.5 * (1.0 / (1.0 + np.exp(-r)))
    phi = tau + rng.normal(0.0, 0.15, size=len(r))
    bases = [RiskBasis.of("margin", r), RiskBasis.of("probability", r)]
    chosen = tune_risk_stage(r, phi, None, bases=bases)
    assert chosen is not None and chosen[0].kind == "probability"
    grid = np.quantile(r, np.linspace(0.01, 0.99, 200))
    fitted = {b.kind: RiskStage.fit(r, phi, alpha=chosen[1], basis=b).predict(grid)
              for b in bases}
    assert (np.diff(fitted["probability"]) >= 0).all()
    assert (np.diff(fitted["margin"]) < 0).any()  # the bend a log-odds quadratic makes
    # Ranked by the fits, the least at risk (bottom tenth by the true effect) end up above
    # the median under the log-odds quadratic, never under the probability one.
    least = tau <= np.quantile(tau, 0.1)
    above_median = {b.kind: float(np.mean(fit[least] > np.median(fit))) for b in bases
                    for fit in [RiskStage.fit(r, phi, alpha=chosen[1], basis=b).predict(r)]}
    assert above_median["probability"] == 0.0
    assert above_median["margin"] > 0.2, above_median


def test_the_preferred_basis_follows_the_outcome() -> None:
    rare, common = np.linspace(-6.0, -2.0, 100), np.linspace(-1.0, 2.0, 100)
    assert [b.kind for b in risk_bases(rare, logit_margin=True)] == ["probability", "margin"]
    assert [b.kind for b in risk_bases(-rare, logit_margin=True)] == ["probability", "margin"]
    assert [b.kind for b in risk_bases(common, logit_margin=True)] == ["margin", "probability"]
    assert [b.kind for b in risk_bases(rare, logit_margin=False)] == ["margin"]


def test_a_close_call_keeps_the_preferred_basis() -> None:
    """A weak effect of risk in noisy pseudo-outcomes: both bases find it, neither fits it
    clearly better, and the first one given is kept, whichever it is, instead of a coin
    toss between them."""
    rng = np.random.default_rng(0)
    r = rng.normal(0.0, 1.0, size=20_000)
    phi = 0.05 + 0.05 * r + rng.normal(0.0, 1.0, size=len(r))
    margin, probability = RiskBasis.of("margin", r), RiskBasis.of("probability", r)
    for order in ([margin, probability], [probability, margin]):
        chosen = tune_risk_stage(r, phi, None, bases=order)
        assert chosen is not None and chosen[0] == order[0]


@pytest.mark.parametrize("kind", ["margin", "probability"])
def test_attribution_is_exact_and_follows_the_features(kind: str) -> None:
    basis = RiskBasis(kind, 0.2, 1.5) if kind == "margin" else RiskBasis(kind, 0.3, 0.2)
    stage = RiskStage(basis=basis, intercept=0.03, coef=(0.02, -0.01))
    rng = np.random.default_rng(2)
    shap = np.column_stack([rng.normal(0, 1.0, 200), rng.normal(0, 0.1, 200),
                            np.full(200, -0.4)])
    shap[:3, :2] = 0.0  # baseline risk at its expected value: only the constant remains
    parts = stage.attribute(shap)
    np.testing.assert_allclose(parts.sum(axis=1), stage.predict(shap.sum(axis=1)), atol=1e-12)
    np.testing.assert_allclose(parts[:3, :2], 0.0)
    # The feature that moves the baseline more gets the larger share.
    assert np.abs(parts[3:, 0]).mean() > 5 * np.abs(parts[3:, 1]).mean()
    # The slope (the share of a tiny move) is the derivative of the stage.
    r = np.linspace(-2.0, 2.0, 9)
    numeric = (stage.predict(r + 1e-6) - stage.predict(r - 1e-6)) / 2e-6
    np.testing.assert_allclose(stage.slope(r), numeric, rtol=1e-5, atol=1e-9)


def test_dr_learner_finds_risk_driven_effects_from_few_treated_rows() -> None:
    sim = hazard_sim(10000, seed=8)
    fit, test = slice(0, 7000), slice(7000, None)
    with_stage = DRLearner(n_bootstrap=4, random_state=0).fit(
        sim.X[fit], sim.T[fit], sim.y[fit])
    without = DRLearner(n_bootstrap=4, random_state=0, risk_stage=False).fit(
        sim.X[fit], sim.T[fit], sim.y[fit])
    assert with_stage.risk_penalty_ is not None and len(with_stage.risk_stages_) == 4
    assert with_stage.risk_basis_ in ("margin", "probability")
    assert without.risk_stages_ == [] and without.risk_penalty_ is None
    assert without.risk_basis_ is None
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
