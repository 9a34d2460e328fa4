"""The doubly-robust learner: recovers known effects under confounding, intervals cover the
truth, trimming reconciles, scikit-learn conventions, the multi-programme wrapper, and
LaLonde's job-training experiment recovered from observational comparison data."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, LogisticRegression

from overblik.models._dr_learner import DRLearner, MultiProgrammeEffects, dr_scores
from overblik.models._meta_learners import TLearner
from tests.models.test_effects import Sim, simulate

# Small and quick: three folds, ten bootstrap fits of the effect model.
FAST = {"n_folds": 3, "n_bootstrap": 10}


@pytest.fixture(scope="module")
def sim() -> Sim:
    return simulate(4000, seed=0)


@pytest.fixture(scope="module")
def fitted(sim: Sim) -> DRLearner:
    return DRLearner(**FAST).fit(sim.X, sim.T, sim.y)  # type: ignore[arg-type]


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_recovers_heterogeneous_effect_better_than_naive_difference(sim: Sim,
                                                                     fitted: DRLearner) -> None:
    tau_hat = fitted.effect(sim.X)
    naive = fitted.naive_difference_
    # Confounding by x0 pushes the naive difference far above the true average effect.
    assert naive - sim.ate > 1.0
    assert _rmse(tau_hat, sim.tau) < 0.5 * _rmse(np.full_like(sim.tau, naive), sim.tau)
    # It finds the heterogeneity too, not just the average (PEHE below the effect's SD).
    assert _rmse(tau_hat, sim.tau) < 0.6 * sim.tau.std()
    assert np.corrcoef(tau_hat, sim.tau)[0, 1] > 0.8
    assert fitted.final_rounds_ is not None and fitted.final_rounds_ > 0


def test_average_effect_intervals_cover_the_truth(sim: Sim, fitted: DRLearner) -> None:
    assert fitted.ate_.covers(sim.ate), (fitted.ate_, sim.ate)
    assert fitted.att_.covers(sim.att), (fitted.att_, sim.att)
    assert not fitted.ate_.covers(fitted.naive_difference_)
    assert 0.0 < fitted.ate_.se < 0.2


def test_binary_outcome_intervals_cover_the_truth_in_repeated_simulations() -> None:
    # 95 % intervals: at least 8 of 10 independent simulations must cover (the chance of
    # 7 or fewer is about 1 % for exact intervals).
    covered_ate = covered_att = 0
    for seed in range(10):
        sim = simulate(3000, seed=seed, binary=True)
        model = DRLearner(n_folds=3, n_bootstrap=0, random_state=seed).fit(sim.X, sim.T, sim.y)
        covered_ate += model.ate_.covers(sim.ate)
        covered_att += model.att_.covers(sim.att)
        assert model.naive_difference_ > sim.ate  # confounded upwards
    assert covered_ate >= 8 and covered_att >= 8, (covered_ate, covered_att)


def test_individual_intervals_bracket_the_effect(sim: Sim, fitted: DRLearner) -> None:
    low, high = fitted.effect_interval(sim.X[:200])
    mid = fitted.effect(sim.X[:200])
    assert np.all(low <= mid) and np.all(mid <= high)
    wider_low, wider_high = fitted.effect_interval(sim.X[:200], alpha=0.01)
    assert np.all(wider_high - wider_low > high - low)


def test_trimming_counts_reconcile() -> None:
    sim = simulate(3000, seed=3, confounding=2.5)
    model = DRLearner(trim=(0.1, 0.9), **FAST).fit(sim.X, sim.T, sim.y)  # type: ignore[arg-type]
    kept = ~model.trimmed_
    report = model.overlap_
    assert report.trimmed == int(model.trimmed_.sum()) > 0.05 * 3000
    assert report.trimmed_treated == int((model.trimmed_ & (sim.T == 1)).sum())
    assert report.n == 3000 and report.n_treated == int(sim.T.sum())
    assert report.trimmed_share == pytest.approx(model.trimmed_.mean())
    assert np.array_equal(model.trimmed_, (model.propensity_ < 0.1) | (model.propensity_ > 0.9))
    assert model.ate_.estimate == pytest.approx(model.pseudo_outcome_[kept].mean())
    assert any("poor overlap" in w for w in report.warnings)
    # Trimmed rows still get effects (flagged as extrapolations by is_trimmed).
    assert np.isfinite(model.effect(sim.X[model.trimmed_])).all()
    flagged = model.is_trimmed(sim.X)
    assert flagged.dtype == bool and flagged.any()


def test_scikit_learn_conventions(sim: Sim, fitted: DRLearner) -> None:
    est = DRLearner(n_folds=4, trim=(0.02, 0.98), random_state=7)
    copy = clone(est)
    assert copy.get_params() == est.get_params()
    assert copy.set_params(n_folds=3).n_folds == 3
    with pytest.raises(NotFittedError):
        est.effect(sim.X)
    learned = {k for k in vars(fitted) if k not in fitted.get_params()}
    assert learned and all(k.endswith("_") for k in learned), sorted(learned)
    assert fitted.n_features_in_ == 4
    # Refit of a clone with the same seed gives the same effects.
    again = clone(fitted).fit(sim.X, sim.T, sim.y)
    np.testing.assert_allclose(again.effect(sim.X[:50]), fitted.effect(sim.X[:50]))


def test_dataframes_keep_feature_names_and_custom_models_work(sim: Sim) -> None:
    X = pd.DataFrame(sim.X, columns=["a", "b", "c", "d"])
    model = DRLearner(outcome_model=LinearRegression(), propensity_model=LogisticRegression(),
                      final_model=LinearRegression(), n_folds=3, n_bootstrap=5)
    model.fit(X, sim.T, sim.y)
    assert list(model.feature_names_in_) == ["a", "b", "c", "d"]
    assert model.final_rounds_ is None
    # Correct linear models: the linear effect 1 + x2 is recovered almost exactly.
    assert _rmse(model.effect(X), sim.tau) < 0.15
    assert model.ate_.covers(sim.ate)


def test_no_bootstrap_gives_effects_but_no_intervals(sim: Sim) -> None:
    model = DRLearner(n_folds=3, n_bootstrap=0).fit(sim.X[:1500], sim.T[:1500], sim.y[:1500])
    assert model.effect(sim.X[:10]).shape == (10,)
    with pytest.raises(ValueError, match="n_bootstrap >= 2"):
        model.effect_interval(sim.X[:10])


@pytest.mark.parametrize(("params", "match"), [
    ({"trim": (0.6, 0.4)}, "trim="), ({"n_bootstrap": 1}, "n_bootstrap=1"),
    ({"alpha": 0.0}, "alpha=0.0"), ({"n_folds": 1}, "at least 2 folds")])
def test_bad_parameters_are_refused(sim: Sim, params: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DRLearner(**params).fit(sim.X[:300], sim.T[:300], sim.y[:300])  # type: ignore[arg-type]


def test_person_groups_widen_the_interval_of_repeated_rows(sim: Sim) -> None:
    # Every person appears twice (identical rows): clustering by person must count them once.
    X, T, y = (np.concatenate([a[:1500], a[:1500]]) for a in (sim.X, sim.T, sim.y))
    person = np.tile(np.arange(1500), 2)
    plain = DRLearner(n_folds=3, n_bootstrap=0).fit(X, T, y)
    grouped = DRLearner(n_folds=3, n_bootstrap=0).fit(X, T, y, groups=person)
    assert grouped.ate_.se > 1.2 * plain.ate_.se


def test_dr_scores_of_held_out_rows(sim: Sim) -> None:
    scores = dr_scores(sim.X[:2000], sim.T[:2000], sim.y[:2000], n_folds=3)
    assert scores.phi.shape == (2000,)
    assert abs(scores.phi[~scores.trimmed].mean() - sim.tau[:2000].mean()) < 0.25
    assert np.all((scores.propensity > 0) & (scores.propensity < 1))


def test_multi_programme_effects_per_contrast() -> None:
    rng = np.random.default_rng(5)
    n = 4500
    X = rng.normal(size=(n, 3))
    # Three arms by a confounded multinomial choice; "b" has no effect at all.
    logits = np.column_stack([np.zeros(n), 0.8 * X[:, 0] - 0.5, -0.8 * X[:, 0] - 0.5])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    arm = (rng.random(n)[:, None] > p.cumsum(axis=1)).sum(axis=1)
    labels = np.array(["none", "a", "b"])[arm]
    tau_a = 1.0 + 0.5 * X[:, 1]
    y = 2.0 * X[:, 0] + (labels == "a") * tau_a + rng.normal(size=n)
    model = MultiProgrammeEffects(learner=DRLearner(**FAST))  # type: ignore[arg-type]
    model.fit(X, labels, y, groups=np.arange(n))
    assert model.programmes_ == ["a", "b"]
    effects = model.effect(X)
    assert effects.shape == (n, 2)
    low, high = model.effect_interval(X[:20])
    assert low.shape == high.shape == (20, 2)
    assert model.ate_["a"].covers(float(tau_a.mean()))
    assert model.ate_["b"].covers(0.0)
    assert model.overlap_["a"].n == int(np.isin(labels, ["a", "none"]).sum())
    frame = model.effect_frame(X[:5])
    assert list(frame.columns) == ["programme", "row", "effect", "ci_low", "ci_high",
                                   "trimmed"]
    assert len(frame) == 10
    assert frame["programme"].tolist()[:2] == ["a", "b"] and frame["row"].tolist()[:2] == [0, 0]
    # What MLflow and serving do: pickle, load, score a DataFrame row by row.
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(loaded.effect(X[:5]), effects[:5])
    with pytest.raises(ValueError, match=r"\['b'\] not in programmes"):
        MultiProgrammeEffects(programmes=["a"]).fit(X, labels, y)
    with pytest.raises(ValueError, match="control label 'nobody'"):
        MultiProgrammeEffects(control="nobody").fit(X, labels, y)


def test_lalonde_nsw_against_cps_controls_recovers_the_experimental_effect() -> None:
    """LaLonde (1986), "Evaluating the Econometric Evaluations of Training Programs with
    Experimental Data", American Economic Review 76(4); Dehejia & Wahba (1999) subsample,
    as shipped in ``causaldata.nsw_mixtape``.

    The randomised experiment (NSW: 185 treated, 260 randomised controls) gives an effect
    of the job-training programme on 1978 earnings of 6,349.14 - 4,554.80 = $1,794.34 for
    the treated. Replacing the randomised controls with 15,992 CPS respondents
    (``causaldata.cps_mixtape``), the naive difference is about -$8,498; the DR learner's
    ATT interval must cover $1,794.34.
    """
    from causaldata import cps_mixtape, nsw_mixtape

    nsw = nsw_mixtape.load_pandas().data
    cps = cps_mixtape.load_pandas().data
    experimental = float(nsw.loc[nsw.treat == 1, "re78"].mean()
                         - nsw.loc[nsw.treat == 0, "re78"].mean())
    assert experimental == pytest.approx(1794.34, abs=0.01)
    data = pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True)
    data["u74"] = (data.re74 == 0).astype(float)
    data["u75"] = (data.re75 == 0).astype(float)
    covariates = ["age", "educ", "black", "hisp", "marr", "nodegree", "re74", "re75", "u74",
                  "u75"]
    model = DRLearner(n_bootstrap=0, random_state=0)
    model.fit(data[covariates], data.treat, data.re78)
    assert model.naive_difference_ == pytest.approx(-8498, abs=1)
    assert model.att_.covers(experimental), model.att_
    assert not model.att_.covers(model.naive_difference_)
    # Most CPS respondents look nothing like NSW trainees: trimmed, with a warning.
    assert model.overlap_.trimmed > 10_000
    assert any("poor overlap" in w for w in model.overlap_.warnings)


def test_effect_contributions_sum_to_the_effect() -> None:
    """The reasons behind an effect add up to it, for a tree model and for a constant."""
    rng = np.random.default_rng(3)
    n = 4000
    X = rng.normal(size=(n, 3))
    t = rng.integers(0, 2, size=n)
    y = (rng.random(n) < 0.3 + 0.2 * t * (X[:, 0] > 0)).astype(int)
    learner = DRLearner(n_bootstrap=3, random_state=0).fit(X, t, y)
    contrib = learner.effect_contributions(X[:50])
    assert contrib.shape == (50, 4)
    np.testing.assert_allclose(contrib.sum(axis=1), learner.effect(X[:50]), atol=1e-9)
    if learner.final_rounds_:
        # The effect depends on feature 0 only: it carries the most of the reasons.
        assert np.abs(contrib[:, 0]).mean() > np.abs(contrib[:, 1:3]).mean(axis=0).max()
    labels = np.where(t == 1, "a", "none")
    multi = MultiProgrammeEffects(learner=DRLearner(n_bootstrap=0, random_state=0,
                                                    final_model=DummyRegressor(),
                                                    risk_stage=False))
    multi.fit(X, labels, y)
    flat = multi.effect_contributions(X[:5])["a"]
    np.testing.assert_allclose(flat[:, :3], 0.0)
    np.testing.assert_allclose(flat[:, 3], multi.effect(X[:5])[:, 0])


def _three_arms(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 2))
    labels = np.array(["none", "a", "b"])[rng.integers(0, 3, n)]
    y = X[:, 0] + (labels == "a") + rng.normal(size=n)
    return X, labels, y


def _fast_multi(**params: object) -> MultiProgrammeEffects:
    return MultiProgrammeEffects(learner=TLearner(outcome_model=LinearRegression()),
                                 **params)  # type: ignore[arg-type]


def test_multi_programme_labels_keep_their_type() -> None:
    X, labels, y = _three_arms()
    coded = np.select([labels == "a", labels == "b"], [1, 2], 0)
    by_name = _fast_multi().fit(X, labels, y)
    by_code = _fast_multi(control=0).fit(X, coded, y)
    assert by_code.programmes_ == [1, 2]
    np.testing.assert_array_equal(by_code.effect(X), by_name.effect(X))
    with pytest.raises(ValueError, match=r"control label 'none' \(T's labels are \[0, 1, 2\]"):
        _fast_multi().fit(X, coded, y)


def test_multi_programme_refuses_missing_labels_and_short_inputs() -> None:
    X, labels, y = _three_arms()
    missing = labels.astype(object)
    missing[7] = None
    with pytest.raises(ValueError, match="T has a missing label at row 7"):
        _fast_multi().fit(X, missing, y)
    nan = np.where(labels == "a", np.nan, np.select([labels == "b"], [2.0], 0.0))
    with pytest.raises(ValueError, match="T has a missing label at row"):
        _fast_multi(control=0.0).fit(X, nan, y)
    with pytest.raises(ValueError, match=r"y must be one-dimensional with one value per row "
                                         r"of X \(300\), got shape \(295,\)"):
        _fast_multi().fit(X, labels, y[:-5])
    with pytest.raises(ValueError, match=r"groups must be .* \(300\), got shape \(295,\)"):
        _fast_multi().fit(X, labels, y, groups=np.arange(295))


@pytest.mark.parametrize(("groups", "match"), [
    (np.array(["p1", "p2", "p3", None] * 75, dtype=object), "missing label at row 3"),
    (np.column_stack([np.arange(300), np.arange(300)]), r"got shape \(300, 2\)"),
    (np.arange(300) % 3, "3 persons for 5 cross-fitting folds")])
def test_bad_person_groups_are_refused(sim: Sim, groups: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        DRLearner().fit(sim.X[:300], sim.T[:300], sim.y[:300], groups=groups)


@pytest.mark.parametrize("params", [{"n_bootstrap": 2.5}, {"n_folds": 2.5}])
def test_fractional_counts_are_refused(sim: Sim, params: dict[str, object]) -> None:
    with pytest.raises(TypeError, match=f"{next(iter(params))}=2.5: give a whole number"):
        DRLearner(**params).fit(sim.X[:300], sim.T[:300], sim.y[:300])  # type: ignore[arg-type]


def test_as_many_persons_as_folds_is_enough(sim: Sim) -> None:
    # The effect model's tuning uses 3 folds: with 2 persons it keeps the constant.
    model = DRLearner(n_folds=2, n_bootstrap=0).fit(sim.X[:400], sim.T[:400], sim.y[:400],
                                                     groups=np.arange(400) % 2)
    assert model.final_rounds_ == 0
    assert np.ptp(model.effect(sim.X[:50])) == 0.0


def test_the_effects_average_to_the_ate_over_the_kept_rows() -> None:
    """The bagged effect models' centre drifted from the ATE by bootstrap noise: a constant
    effect model gave every citizen +0.079 where the ATE was -0.028 (opposite signs in one
    report). The effects now average to the ATE over the kept rows, and the reasons still
    add up to each effect."""
    rng = np.random.default_rng(4)
    n = 1500
    X = rng.normal(size=(n, 3))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = X[:, 0] + rng.normal(scale=3.0, size=n)  # no effect, heavy noise
    learner = DRLearner(n_bootstrap=5, random_state=0).fit(X, t, y)
    kept = ~learner.trimmed_
    effect = learner.effect(X)
    assert effect[kept].mean() == pytest.approx(learner.ate_.estimate, abs=1e-9)
    mean, low, high = learner.effect_and_interval(X)
    np.testing.assert_allclose(mean, effect)
    assert (low <= mean).all() and (mean <= high).all()
    np.testing.assert_allclose(learner.effect_contributions(X).sum(axis=1), effect, atol=1e-9)


def test_treated_outcome_is_the_outcome_model_of_the_treated() -> None:
    """What judges an allocation of untreated citizens: E[Y | X, T = 1] from the training
    rows' fold models, close to the truth where the treated are many enough."""
    rng = np.random.default_rng(6)
    n = 4000
    X = rng.normal(size=(n, 3))
    t = (rng.uniform(size=n) < 1 / (1 + np.exp(-X[:, 0]))).astype(int)
    y = 2.0 * X[:, 1] + t * (1.0 + X[:, 2]) + rng.normal(scale=0.5, size=n)
    learner = DRLearner(n_bootstrap=0, random_state=0).fit(X, t, y)
    new = rng.normal(size=(500, 3))
    predicted = learner.treated_outcome(new)
    truth = 2.0 * new[:, 1] + 1.0 + new[:, 2]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.95
    assert np.abs(predicted - truth).mean() < 0.3
