"""T-learner and X-learner baselines: they recover a simple effect, follow scikit-learn
conventions, and lose to the DR learner where the doubly-robust correction matters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression

from overblik.models import RiskBasedLearner
from overblik.models._meta_learners import TLearner, XLearner
from tests.models.test_effects import Sim, simulate


@pytest.fixture(scope="module")
def sim() -> Sim:
    return simulate(4000, seed=11)


@pytest.mark.parametrize("cls", [TLearner, XLearner])
def test_recovers_the_effect_with_default_models(sim: Sim, cls: type) -> None:
    model = cls().fit(sim.X, sim.T, sim.y)
    tau_hat = model.effect(sim.X)
    assert tau_hat.shape == (4000,)
    assert abs(tau_hat.mean() - sim.ate) < 0.25
    assert np.corrcoef(tau_hat, sim.tau)[0, 1] > 0.6
    naive = sim.y[sim.T == 1].mean() - sim.y[sim.T == 0].mean()
    assert abs(tau_hat.mean() - sim.ate) < 0.2 * abs(naive - sim.ate)


def test_linear_models_recover_a_linear_effect_exactly(sim: Sim) -> None:
    t = TLearner(outcome_model=LinearRegression()).fit(sim.X, sim.T, sim.y)
    x = XLearner(outcome_model=LinearRegression(), effect_model=LinearRegression(),
                 propensity_model=LogisticRegression()).fit(sim.X, sim.T, sim.y)
    for model in (t, x):
        assert np.sqrt(np.mean((model.effect(sim.X) - sim.tau) ** 2)) < 0.1


def test_binary_outcomes_use_probabilities() -> None:
    sim = simulate(3000, seed=12, binary=True)
    for model in (TLearner(), XLearner()):
        tau_hat = model.fit(sim.X, sim.T, sim.y).effect(sim.X)
        assert np.all(np.abs(tau_hat) <= 1.0)
        assert abs(tau_hat.mean() - sim.ate) < 0.08


@pytest.mark.parametrize("cls", [TLearner, XLearner])
def test_scikit_learn_conventions(sim: Sim, cls: type) -> None:
    est = cls(random_state=3)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.effect(sim.X)
    est.fit(sim.X[:1000], sim.T[:1000], sim.y[:1000])
    learned = {k for k in vars(est) if k not in est.get_params()}
    assert learned and all(k.endswith("_") for k in learned), sorted(learned)
    with pytest.raises(ValueError, match="X has 3 features"):
        est.effect(sim.X[:5, :3])


@pytest.mark.parametrize("cls", [TLearner, XLearner])
def test_bad_treatment_is_refused(sim: Sim, cls: type) -> None:
    with pytest.raises(ValueError, match="value 2 at row 0"):
        cls().fit(sim.X[:10], np.full(10, 2), sim.y[:10])


def _one_class_arm(arm: int, value: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Arm ``arm``'s outcomes are all ``value``; the other arm's are 1 with chance 0.6 (0.4
    when treated). Returns X, T, y and the difference in mean outcome (the true effect: T is
    random)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3))
    T = rng.integers(0, 2, 400)
    other = (rng.random(400) < (0.6 if arm == 0 else 0.4)).astype(float)
    y = np.where(np.equal(T, arm), value, other)
    return X, T, y, float(y[T == 1].mean() - y[T == 0].mean())


@pytest.mark.parametrize("cls", [TLearner, XLearner, RiskBasedLearner])
@pytest.mark.parametrize(("arm", "value"), [(0, 1.0), (1, 1.0), (0, 0.0), (1, 0.0)])
def test_an_arm_with_one_outcome_value_keeps_the_sign_of_the_effect(
        cls: type, arm: int, value: float) -> None:
    # LightGBM fitted on one class gives class 1 a probability of ~1e-15 whichever class it
    # saw: an arm of all 1s read as all 0s and flipped the effect's sign.
    X, T, y, truth = _one_class_arm(arm, value)
    mean = float(cls().fit(X, T, y).effect(X).mean())
    assert np.sign(mean) == np.sign(truth)
    assert abs(mean - truth) < 0.1
