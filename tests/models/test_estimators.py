"""Risk estimators: scikit-learn's estimator checks, accuracy against a known truth on a
later date, the calibration holdout, and the booster contract that serving relies on."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from overblik.models import (
    HeuristicRisk,
    LightGBMRisk,
    LogisticRisk,
    TemporalSplitter,
    ece,
    fit_calibration,
    split_masks,
)
from overblik.models._calibration import holdout_folds
from tests.models._panel import FEATURES, Panel, make_panel

# Small and single-threaded: the suite shares two cores with benchmarks.
FAST_LGB = {"n_estimators": 150, "learning_rate": 0.08, "n_jobs": 1}


@parametrize_with_checks([
    HeuristicRisk(column="x0"),
    LogisticRisk(),
    # The full suite, on small data: leaves of 5 rows instead of 50, few rounds.
    LightGBMRisk(n_estimators=20, min_child_samples=5, n_jobs=1),
])
def test_sklearn_estimator_checks(estimator: BaseEstimator, check: Callable[..., None]) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def panel() -> Panel:
    return make_panel(persons=4000, dates=6, intercept=-3.0, seed=2)


@pytest.fixture(scope="module")
def fitted(panel: Panel) -> dict[str, object]:
    """Each model trained on the earlier dates and scored on the later test date."""
    split = TemporalSplitter(horizon_days=180, n_splits=1).split(panel.as_of)[0]
    train, test = split_masks(panel.as_of, split)
    models = {
        "lightgbm": LightGBMRisk(**FAST_LGB),  # type: ignore[arg-type]
        "logistic": LogisticRisk(),
        "heuristic": HeuristicRisk(column="count_a"),
    }
    out: dict[str, object] = {"train": train, "test": test}
    for name, model in models.items():
        model.fit(panel.X[train], panel.y[train], groups=panel.person[train],
                  as_of=panel.as_of[train])
        out[name] = model
        out[f"{name}_p"] = model.predict_proba(panel.X[test])[:, 1]
    return out


def _truth_ece(p_true: np.ndarray, p: np.ndarray) -> float:
    """ECE against the known probabilities instead of labels: no label noise."""
    edges = np.quantile(p, np.linspace(0, 1, 11))
    b = np.searchsorted(edges[1:-1], p)
    return float(np.abs(np.bincount(b, p_true, 10) - np.bincount(b, p, 10)).sum() / len(p))


def test_lightgbm_is_near_the_oracle_on_a_later_date(panel: Panel, fitted: dict) -> None:
    test = fitted["test"]
    y, p_true = panel.y[test], panel.p[test]
    oracle = roc_auc_score(y, p_true)
    auc = {name: roc_auc_score(y, fitted[f"{name}_p"])
           for name in ("lightgbm", "logistic", "heuristic")}
    assert auc["lightgbm"] >= oracle - 0.03
    # The truth is non-linear, so the trees beat the linear baseline; both beat one column.
    assert auc["lightgbm"] > auc["logistic"] > auc["heuristic"]


@pytest.mark.parametrize("name", ["lightgbm", "logistic", "heuristic"])
def test_calibration_transfers_to_a_later_date(panel: Panel, fitted: dict, name: str) -> None:
    test = fitted["test"]
    p = fitted[f"{name}_p"]
    assert _truth_ece(panel.p[test], p) <= 0.015
    # Against labels the oracle itself has sampling noise; stay close to it.
    assert ece(panel.y[test], p) <= ece(panel.y[test], panel.p[test]) + 0.01
    assert abs(p.mean() - panel.p[test].mean()) <= 0.01


def test_predict_proba_is_the_calibrated_raw_score(panel: Panel, fitted: dict) -> None:
    X = panel.X[fitted["test"]].iloc[:200]
    for name in ("lightgbm", "logistic", "heuristic"):
        model = fitted[name]
        proba = model.predict_proba(X)
        assert proba.shape == (200, 2)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_allclose(proba[:, 1], model.calibrate(model.predict_raw(X)))
        assert set(model.predict(X)) <= {0, 1}


def test_booster_explains_the_score_for_serving(panel: Panel, fitted: dict) -> None:
    model: LightGBMRisk = fitted["lightgbm"]  # type: ignore[assignment]
    X = panel.X[fitted["test"]].iloc[:100]
    booster = model.booster_
    # Trimmed to the rounds used, so explanations cover exactly the score.
    assert booster.num_trees() == model.best_iteration_
    assert model.best_iteration_ == round(np.mean(model.fold_best_iterations_))
    assert booster.feature_name() == FEATURES
    # TreeSHAP contributions (what shap.TreeExplainer computes) add up to the raw log-odds.
    contrib = booster.predict(X.to_numpy(), pred_contrib=True)
    raw = 1.0 / (1.0 + np.exp(-contrib.sum(axis=1)))
    np.testing.assert_allclose(raw, model.predict_raw(X), rtol=1e-6)
    np.testing.assert_allclose(model.calibrate(raw), model.predict_proba(X)[:, 1], rtol=1e-6)
    assert model.feature_importances_.shape == (len(FEATURES),)
    assert model.feature_importances_[FEATURES.index("noise_e")] < max(
        model.feature_importances_)
    # Every training row was calibrated out of fold.
    assert model.n_calibration_rows_ == int(fitted["train"].sum())


def test_holdout_folds_keep_a_person_on_one_side() -> None:
    rng = np.random.default_rng(3)
    person = np.repeat(np.arange(300), 4)
    y = (rng.random(1200) < 0.05).astype(int)
    folds = holdout_folds(y, fraction=0.25, kind="groups", crossfit=True, groups=person,
                          as_of=None, random_state=0)
    assert len(folds) == 4
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(1200))
    owners = [set(person[f]) for f in folds]
    assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])
    # Stratified: persons with a positive are spread evenly.
    positives = [len({p for p in o if y[person == p].any()}) for o in owners]
    assert max(positives) - min(positives) <= 1
    single = holdout_folds(y, fraction=0.25, kind="groups", crossfit=False, groups=person,
                           as_of=None, random_state=0)
    assert len(single) == 1 and len(set(person[single[0]])) == 75


def test_latest_as_of_holdout(panel: Panel) -> None:
    X, y = panel.X.iloc[:2000], panel.y[:2000]
    with pytest.raises(ValueError, match="pass as_of= to fit"):
        LogisticRisk(calibration_holdout="latest_as_of").fit(X, y)
    model = LogisticRisk(calibration_holdout="latest_as_of").fit(X, y, as_of=panel.as_of[:2000])
    latest = panel.as_of[:2000] == panel.as_of[:2000].max()
    assert model.n_calibration_rows_ == int(latest.sum())


def test_too_few_positives_to_calibrate_is_a_clear_error() -> None:
    X = pd.DataFrame({"a": np.arange(40.0)})
    y = np.r_[1, np.zeros(39, dtype=int)]
    with pytest.raises(ValueError, match=r"only class \[0\].*calibration='none'"):
        LogisticRisk().fit(X, y)
    assert LogisticRisk(calibration="none").fit(X, y).n_calibration_rows_ == 0


def test_lightgbm_takes_column_names_lightgbm_itself_refuses(panel: Panel) -> None:
    X = panel.X.iloc[:3000].rename(columns={"count_a": 'odd:name[1]{"x"}'})
    model = LightGBMRisk(n_estimators=10, n_jobs=1, calibration="sigmoid").fit(
        X, panel.y[:3000], groups=panel.person[:3000])
    assert list(model.feature_names_in_) == list(X.columns)
    assert model.predict_proba(X).shape == (3000, 2)


def test_same_seed_same_model(panel: Panel) -> None:
    X, y, g = panel.X.iloc[:3000], panel.y[:3000], panel.person[:3000]
    a = LightGBMRisk(n_estimators=20, n_jobs=1).fit(X, y, groups=g).predict_proba(X)
    b = clone(LightGBMRisk(n_estimators=20, n_jobs=1)).fit(X, y, groups=g).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_logistic_logs_only_count_like_columns(panel: Panel) -> None:
    model = LogisticRisk(calibration="none").fit(panel.X.iloc[:3000], panel.y[:3000])
    assert dict(zip(FEATURES, model.log_columns_.tolist(), strict=True)) == {
        "count_a": True, "count_b": True, "level_c": False, "level_d": False,
        "noise_e": False}


def test_heuristic_is_a_monotone_map_of_one_column(panel: Panel, fitted: dict) -> None:
    model: HeuristicRisk = fitted["heuristic"]  # type: ignore[assignment]
    grid = pd.DataFrame(np.zeros((8, len(FEATURES))), columns=FEATURES)
    grid["count_a"] = np.arange(8.0)
    grid["level_c"] = np.nan  # other columns may be missing
    p = model.predict_proba(grid)[:, 1]
    assert np.all(np.diff(p) >= 0) and p[-1] > p[0]
    np.testing.assert_array_equal(model.predict_raw(grid), grid["count_a"].to_numpy())
    with pytest.raises(ValueError, match="column 'siloes' is not in X"):
        HeuristicRisk(column="siloes").fit(panel.X, panel.y)
    grid.loc[0, "count_a"] = np.nan
    with pytest.raises(ValueError, match="'count_a' has 1 missing value"):
        model.predict_proba(grid)


def test_centred_isotonic_is_strictly_increasing_and_near_identity_when_calibrated() -> None:
    rng = np.random.default_rng(4)
    raw = rng.beta(1, 8, size=20000)
    y = (rng.random(20000) < raw).astype(int)
    cmap = fit_calibration("isotonic", raw, y)
    assert np.all(np.diff(cmap.knots_x) > 0) and np.all(np.diff(cmap.knots_y) > 0)
    inner = (raw > cmap.knots_x[0]) & (raw < cmap.knots_x[-1])
    mapped = cmap(raw)
    # Distinct scores inside the knots stay distinct: no ties to cost AUC or top-k.
    assert len(np.unique(mapped[inner])) == len(np.unique(raw[inner]))
    assert ece(y, mapped) <= 0.01 and abs(mapped.mean() - y.mean()) < 0.002


def test_sigmoid_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(5)
    z = rng.normal(-2.0, 1.5, size=40000)
    y = (rng.random(40000) < 1 / (1 + np.exp(-z))).astype(int)
    overconfident = 1 / (1 + np.exp(-2.0 * z))
    cmap = fit_calibration("sigmoid", overconfident, y)
    assert cmap.coef == pytest.approx(0.5, abs=0.03)
    assert cmap.intercept == pytest.approx(0.0, abs=0.05)


@pytest.mark.parametrize("kind", ["isotonic", "sigmoid"])
def test_calibration_refuses_missing_scores_and_a_length_mismatch(kind: str) -> None:
    raw = np.linspace(0.05, 0.95, 50)
    y = np.arange(50) % 2
    with pytest.raises(ValueError, match="raw has a missing or infinite value at row 0"):
        fit_calibration(kind, np.r_[np.nan, raw[1:]], y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"y must be .* row of raw \(50\), got shape \(40,\)"):
        fit_calibration(kind, raw, y[:40])  # type: ignore[arg-type]


def test_lightgbm_refuses_column_names_that_collide_once_sanitised() -> None:
    rng = np.random.default_rng(9)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a:b", "a,b", "c"])
    y = (rng.random(200) < 0.3).astype(int)
    with pytest.raises(ValueError, match="columns 'a:b' and 'a,b' of X both become 'a_b'"):
        LightGBMRisk(n_estimators=5, n_jobs=1).fit(X, y)
    # Distinct once sanitised: fitted, under LightGBM's names.
    fitted = LightGBMRisk(n_estimators=5, n_jobs=1).fit(X.set_axis(["a:b", "ab", "c"], axis=1), y)
    assert fitted.booster_.feature_name() == ["a_b", "ab", "c"]
