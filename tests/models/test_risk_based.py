"""Risk-based learner, S-learner and averaged effects: they recover effects that act on a
hazard, follow scikit-learn conventions and refuse what they cannot model."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression

from overblik.models import AveragedEffects, RiskBasedLearner, SLearner, TLearner


@dataclass(frozen=True)
class HazardSim:
    X: np.ndarray
    T: np.ndarray
    y: np.ndarray
    tau: np.ndarray  # true effect on P(y = 1)


def hazard_sim(n: int, seed: int, *, event: int = 1, ratio: float | None = None) -> HazardSim:
    """Confounded treatment that multiplies the hazard of ``y = event`` (like the synthetic
    municipality's programmes): by ``ratio`` for everyone, or, when None, by an inverted U in
    the baseline log hazard (largest for a middling baseline, as the mentor programme's)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    log_h0 = -1.2 + 0.9 * X[:, 0] + 0.4 * X[:, 1]
    T = (rng.random(n) < 1.0 / (1.0 + np.exp(-(-1.0 + 0.8 * X[:, 0])))).astype(np.int_)
    multiplier = (np.full(n, ratio) if ratio is not None
                  else 1.0 + 1.5 * np.exp(-0.5 * ((log_h0 + 1.2) / 0.7) ** 2))
    q0 = 1.0 - np.exp(-np.exp(log_h0))
    q1 = 1.0 - np.exp(-np.exp(log_h0) * multiplier)
    q = np.where(T == 1, q1, q0)
    event_happens = rng.random(n) < q
    y = (event_happens if event == 1 else ~event_happens).astype(np.int_)
    tau = (q1 - q0) if event == 1 else -(q1 - q0)
    return HazardSim(X=X, T=T, y=y, tau=tau)


def _pehe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def smooth() -> lgb.LGBMClassifier:
    """The effect rides on the baseline's log cumulative hazard, where a flexible model's
    noise is large at small risks: on a few thousand rows, a smooth baseline does better."""
    return lgb.LGBMClassifier(n_estimators=150, num_leaves=4, learning_rate=0.05,
                              random_state=0, verbose=-1)


def test_proportional_hazards_recover_the_hazard_ratio() -> None:
    sim = hazard_sim(6000, seed=1, ratio=2.0)
    # A huge penalty pins the slopes at 0: one hazard ratio for everyone.
    model = RiskBasedLearner(alpha=1e6, baseline_model=smooth()).fit(sim.X, sim.T, sim.y)
    ratio = np.exp(model.log_hazard_ratio(sim.X))
    assert np.allclose(ratio, ratio[0], rtol=0.01) and 1.7 < ratio[0] < 2.3
    assert _pehe(model.effect(sim.X), sim.tau) < 0.03


def test_effect_varying_with_risk_beats_the_t_learner() -> None:
    sim = hazard_sim(8000, seed=2)
    fit, test = slice(0, 6000), slice(6000, None)
    risk = RiskBasedLearner(baseline_model=smooth()).fit(sim.X[fit], sim.T[fit], sim.y[fit])
    t = TLearner().fit(sim.X[fit], sim.T[fit], sim.y[fit])
    tau_hat = risk.effect(sim.X[test])
    assert _pehe(tau_hat, sim.tau[test]) < 0.5 * _pehe(t.effect(sim.X[test]), sim.tau[test])
    assert np.corrcoef(tau_hat, sim.tau[test])[0, 1] > 0.85
    # The inverted U: a middling baseline gains more than either end.
    x0 = sim.X[test][:, 0]
    middle, low = tau_hat[np.abs(x0) < 0.3].mean(), tau_hat[x0 < -1.5].mean()
    assert middle > low + 0.1


def test_a_programme_that_prevents_the_event() -> None:
    """``event=0``: the programme halves the hazard of ``y = 0`` (a placement)."""
    sim = hazard_sim(6000, seed=3, event=0, ratio=0.5)
    model = RiskBasedLearner(event=0).fit(sim.X, sim.T, sim.y)
    tau_hat = model.effect(sim.X)
    assert (sim.tau > 0).all() and tau_hat.mean() > 0
    assert abs(tau_hat.mean() - sim.tau.mean()) < 0.03
    assert np.corrcoef(tau_hat, sim.tau)[0, 1] > 0.8


def test_s_learner_nonnegative_never_ranks_below_zero() -> None:
    sim = hazard_sim(5000, seed=4)
    free = SLearner(random_state=1).fit(sim.X, sim.T, sim.y).effect(sim.X)
    constrained = SLearner(nonnegative=True, random_state=1).fit(sim.X, sim.T, sim.y)
    tau_hat = constrained.effect(sim.X)
    assert (tau_hat >= 0).all() and (free < 0).any()
    assert abs(tau_hat.mean() - sim.tau.mean()) < 0.05
    assert np.corrcoef(tau_hat, sim.tau)[0, 1] > 0.5


def test_averaged_effects_is_the_mean_of_its_members() -> None:
    sim = hazard_sim(3000, seed=5)
    avg = AveragedEffects([RiskBasedLearner(), SLearner(nonnegative=True)], n_seeds=2,
                          random_state=7).fit(sim.X, sim.T, sim.y)
    assert [m.random_state for m in avg.fitted_] == [7, 8, 7, 8]
    members = np.mean([m.effect(sim.X) for m in avg.fitted_], axis=0)
    assert np.allclose(avg.effect(sim.X), members)
    # The seeds differ, so the members do too (the average is not one model four times).
    assert not np.allclose(avg.fitted_[2].effect(sim.X), avg.fitted_[3].effect(sim.X))


@pytest.mark.parametrize("make", [lambda: RiskBasedLearner(random_state=3),
                                  lambda: SLearner(random_state=3),
                                  lambda: AveragedEffects([SLearner()], n_seeds=1)])
def test_scikit_learn_conventions(make: Callable[[], Any]) -> None:
    sim = hazard_sim(1500, seed=6)
    est = make()
    assert repr(clone(est)) == repr(est)
    with pytest.raises(NotFittedError):
        est.effect(sim.X)
    est.fit(sim.X, sim.T, sim.y)
    learned = {k for k in vars(est) if k not in est.get_params()}
    assert learned and all(k.endswith("_") for k in learned), sorted(learned)
    with pytest.raises(ValueError, match="X has 3 features"):
        est.effect(sim.X[:5, :3])


def test_refuses_what_it_cannot_model() -> None:
    sim = hazard_sim(500, seed=7)
    with pytest.raises(ValueError, match=r"0/1 outcome.*DRLearner"):
        RiskBasedLearner().fit(sim.X, sim.T, sim.y + 0.5)
    with pytest.raises(ValueError, match="event=2"):
        RiskBasedLearner(event=2).fit(sim.X, sim.T, sim.y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one estimator"):
        AveragedEffects([]).fit(sim.X, sim.T, sim.y)
    with pytest.raises(TypeError, match=r"degree=2\.5: give a whole number"):
        RiskBasedLearner(degree=2.5).fit(sim.X, sim.T, sim.y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_seeds=0"):
        AveragedEffects([SLearner()], n_seeds=0).fit(sim.X, sim.T, sim.y)
    with pytest.raises(ValueError, match="nonnegative=True needs a LightGBM outcome model"):
        SLearner(nonnegative=True, outcome_model=LinearRegression()).fit(sim.X, sim.T, sim.y)


def test_s_learner_refuses_an_arm_too_small_to_split_on() -> None:
    # 30 treated rows, 40 rows a leaf: the treatment could never be split on, and every
    # effect came out exactly 0 although the treated do much better here.
    rng = np.random.default_rng(9)
    X = rng.normal(size=(400, 3))
    T = np.zeros(400, dtype=int)
    T[:30] = 1
    y = 1.0 * T + X[:, 0] + rng.normal(0, 0.1, 400)
    with pytest.raises(ValueError, match="the treated arm has 30 rows, fewer than the outcome "
                                         "model's 40 rows a leaf"):
        SLearner().fit(X, T, y)
    small_leaves = lgb.LGBMRegressor(min_child_samples=10, n_estimators=100, verbose=-1)
    tau = SLearner(outcome_model=small_leaves).fit(X, T, y).effect(X)
    assert 0.5 < float(np.mean(tau)) < 1.5


def test_effects_of_a_dataframe_raise_no_feature_name_warning() -> None:
    sim = hazard_sim(600, seed=8)
    X = pd.DataFrame(sim.X, columns=[f"f{i}" for i in range(sim.X.shape[1])])
    model = RiskBasedLearner().fit(X, sim.T, sim.y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scikit-learn's "X does not have valid feature names"
        effect = model.effect(X)
        ratio = model.log_hazard_ratio(X)
    assert effect.shape == ratio.shape == (600,)
    assert np.isfinite(effect).all() and np.isfinite(ratio).all()
