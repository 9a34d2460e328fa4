"""Shared pieces of the effect estimators: intervals, input checks, folds, standard errors,
the effect model's tuning, and the simulation the estimator tests use."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from scipy.special import expit

from overblik.models._effects import (
    Interval,
    beats_the_constant,
    check_outcome,
    check_treatment,
    cluster_se,
    crossfit_folds,
    final_leaf_rows,
    tune_final_rounds,
    z_value,
)


@dataclass(frozen=True)
class Sim:
    """Simulated observational data with known effects."""

    X: npt.NDArray[np.float64]
    T: npt.NDArray[np.int_]
    y: npt.NDArray[np.float64]
    tau: npt.NDArray[np.float64]
    propensity: npt.NDArray[np.float64]

    @property
    def ate(self) -> float:
        return float(self.tau.mean())

    @property
    def att(self) -> float:
        return float(self.tau[self.T == 1].mean())


def simulate(n: int, seed: int, *, binary: bool = False, confounding: float = 1.0,
             heterogeneous: bool = True) -> Sim:
    """Confounded treatment: ``x0`` raises both the chance of treatment and the outcome.

    Effect ``1 + x2`` (continuous; ``0.15 + 0.1 * x2`` clipped to [0, 0.3] for 0/1
    outcomes); the naive difference is biased upwards by ``x0``.
    """
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    e = expit(confounding * (1.2 * X[:, 0] - 0.6 * X[:, 1]) - 0.3)
    T = rng.binomial(1, e)
    slope = 1.0 if heterogeneous else 0.0
    if binary:
        tau = np.clip(0.15 + 0.1 * slope * X[:, 2], 0.0, 0.3)
        p0 = expit(-0.5 + 1.0 * X[:, 0] + 0.5 * X[:, 1]) * 0.7
        y = rng.binomial(1, p0 + T * tau).astype(np.float64)
    else:
        tau = 1.0 + slope * X[:, 2]
        y = 2.0 * X[:, 0] + X[:, 1] + 0.5 * X[:, 3] + T * tau + rng.normal(size=n)
    return Sim(X=X, T=T.astype(np.int_), y=y, tau=tau, propensity=e)


def test_interval_normal_and_covers() -> None:
    iv = Interval.normal(1.0, 0.5)
    assert iv.ci_low == pytest.approx(1.0 - 1.959964 * 0.5, abs=1e-5)
    assert iv.ci_high == pytest.approx(1.0 + 1.959964 * 0.5, abs=1e-5)
    assert iv.covers(1.9) and not iv.covers(2.0)
    assert iv.as_dict() == {"estimate": 1.0, "ci_low": iv.ci_low, "ci_high": iv.ci_high,
                            "se": 0.5}
    assert Interval.normal(0.0, 1.0, alpha=0.1).ci_high == pytest.approx(1.644854, abs=1e-5)


def test_z_value_refuses_bad_levels() -> None:
    with pytest.raises(ValueError, match=r"alpha=1\.5"):
        z_value(1.5)


def test_check_treatment_accepts_bools_and_names_the_bad_row() -> None:
    assert check_treatment([True, False, True], 3).tolist() == [1, 0, 1]
    assert check_treatment(np.array([1.0, 0.0]), 2).tolist() == [1, 0]
    with pytest.raises(ValueError, match="value 2 at row 2"):
        check_treatment([0, 1, 2], 3)
    with pytest.raises(ValueError, match="got values such as"):
        check_treatment(["a", "b"], 2)
    with pytest.raises(ValueError, match="all 3 rows are 1"):
        check_treatment([1, 1, 1], 3)
    with pytest.raises(ValueError, match="one value per row"):
        check_treatment([0, 1], 3)


def test_check_outcome_names_missing_rows() -> None:
    with pytest.raises(ValueError, match="row 1"):
        check_outcome([0.0, np.nan, 1.0], 3)


def test_crossfit_folds_partition_rows_and_keep_persons_together() -> None:
    rng = np.random.default_rng(0)
    person = np.repeat(np.arange(300), 3)
    T = rng.binomial(1, 0.3, size=900)
    folds = crossfit_folds(T, n_folds=4, groups=person, random_state=0)
    rows = np.sort(np.concatenate(folds))
    assert rows.tolist() == list(range(900))
    for fold in folds:
        others = np.setdiff1d(np.arange(900), fold)
        assert not set(person[fold]) & set(person[others])
        assert 0.15 < T[fold].mean() < 0.45  # stratified: both arms in every fold
    no_groups = crossfit_folds(T, n_folds=5, groups=None, random_state=0)
    assert sorted(len(f) for f in no_groups) == [180] * 5


def test_crossfit_folds_need_rows_in_both_arms() -> None:
    with pytest.raises(ValueError, match="only 2 treated rows for 3"):
        crossfit_folds(np.array([1, 1, 0, 0, 0, 0]), n_folds=3, groups=None, random_state=0)
    with pytest.raises(ValueError, match="at least 2 folds"):
        crossfit_folds(np.array([1, 0]), n_folds=1, groups=None, random_state=0)


def test_cluster_se_equals_plain_se_for_singletons_and_grows_with_clusters() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=400)
    plain = cluster_se(x, None)
    assert plain == pytest.approx(x.std(ddof=1) / np.sqrt(400))
    # Singleton clusters: k/(k-1) correction gives the same as the plain formula.
    assert cluster_se(x, np.arange(400)) == pytest.approx(plain, rel=1e-9)
    # Perfectly correlated pairs: the clustered SE is about sqrt(2) larger.
    doubled = np.repeat(x[:200], 2)
    ratio = cluster_se(doubled, np.repeat(np.arange(200), 2)) / cluster_se(doubled, None)
    assert ratio == pytest.approx(np.sqrt(2), rel=0.05)


def test_tuning_finds_heterogeneity_only_when_there_is_some() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(4000, 3))
    noise = rng.normal(scale=3.0, size=4000)
    # Noise only: (nearly) the constant, for every seed of the folds (the one-standard-error
    # gate; a round or two at learning rate 0.03 moves the effect by a hundredth of the noise).
    assert max(tune_final_rounds(X, 0.5 + noise, None, random_state=s) for s in range(4)) < 3
    strong = 2.0 * (X[:, 0] > 0) + noise
    assert tune_final_rounds(X, strong, None, random_state=0) > 50


def test_the_gate_and_the_leaf_size() -> None:
    rng = np.random.default_rng(5)
    phi = rng.normal(scale=3.0, size=3000)
    constant = np.zeros(3000)
    assert not beats_the_constant(phi, constant, rng.normal(scale=0.3, size=3000), None)
    signal = rng.normal(size=3000)
    assert beats_the_constant(signal + phi, constant, signal, None)
    # Leaves hold 50 rows of the smaller arm on average, never fewer than 200 rows.
    assert final_leaf_rows(3000, 0.05) == 1000
    assert final_leaf_rows(3000) == 200 and final_leaf_rows(100_000) == 2000
    assert final_leaf_rows(100_000, 0.01) == 5000
