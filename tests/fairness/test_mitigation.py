"""Mitigation comparison on small data: the threshold optimizer narrows the gap it targets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
)
from matplotlib.figure import Figure

from overblik.fairness import MitigationReport, compare_mitigations, decide, plot_tradeoff
from overblik.fairness._mitigation import disparities
from overblik.features import InputError
from overblik.models import LogisticRisk


def _data(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, pd.Series]:
    rng = np.random.default_rng(seed)
    a = pd.Series(rng.choice(["danish", "immigrant"], n, p=[0.7, 0.3]), name="origin")
    immigrant = (a == "immigrant").to_numpy()
    x1 = rng.normal(size=n) + 0.8 * immigrant  # the need differs by group
    X = pd.DataFrame({"x1": x1, "x2": rng.normal(size=n), "x3": rng.normal(size=n)})
    X.loc[X.index[:20], "x3"] = np.nan  # the models must cope with gaps
    y = (rng.random(n) < 1 / (1 + np.exp(-(-1.0 + x1 + 0.5 * X["x2"])))).astype(int)
    return X, y.to_numpy(), a


@pytest.fixture(scope="module")
def split() -> tuple:
    X_tr, y_tr, a_tr = _data(1500, 0)
    X_te, y_te, a_te = _data(1000, 1)
    return X_tr, y_tr, a_tr, X_te, y_te, a_te


@pytest.fixture(scope="module")
def report(split: tuple) -> MitigationReport:
    X_tr, y_tr, a_tr, X_te, y_te, a_te = split
    model = LogisticRisk(random_state=0).fit(X_tr, y_tr)  # fitted: used as is
    return compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te, a_te,
                               methods=("threshold_optimizer",), seed=0)


def test_threshold_optimizer_narrows_the_selection_gap(report: MitigationReport) -> None:
    plain = report.option("unmitigated", "")
    fair = report.option("threshold_optimizer", "demographic_parity")
    assert plain.disparities["demographic_parity"] > 0.15  # the planted gap
    assert fair.disparities["demographic_parity"] < 0.5 * plain.disparities["demographic_parity"]
    assert np.isnan(fair.auc) and 0.5 < plain.auc < 1
    tpr = report.option("threshold_optimizer", "true_positive_rate_parity")
    assert tpr.disparities["true_positive_rate_parity"] < plain.disparities[
        "true_positive_rate_parity"]


def test_the_model_as_audited_comes_first_with_the_audits_decisions(split: tuple) -> None:
    """The options decide at the balanced-accuracy threshold; the audit's rule (top 100
    here) selects another share, and the board compared the report with the wrong row."""
    X_tr, y_tr, a_tr, X_te, y_te, a_te = split
    model = LogisticRisk(random_state=0).fit(X_tr, y_tr)
    proba = model.predict_proba(X_te)[:, 1]
    chosen, rule = decide(proba, None, 100)
    assert rule == "top 100" and chosen.sum() == 100
    report = compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te, a_te,
                                 methods=("threshold_optimizer",), seed=0, audited=chosen)
    first = report.options[0]
    assert (first.option, first.method) == ("as audited", "as_audited")
    assert first.selection_rate == pytest.approx(0.1)
    assert first.selection_rate != pytest.approx(report.option("unmitigated", "").selection_rate)
    assert first.disparities["demographic_parity"] == pytest.approx(
        demographic_parity_difference(y_te, chosen.astype(int), sensitive_features=a_te))
    with pytest.raises(InputError, match="audited has 99 rows but the test features have 1000"):
        compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te, a_te,
                            methods=("threshold_optimizer",), audited=chosen[:99])


def test_table_has_one_row_per_option(report: MitigationReport) -> None:
    table = report.table()
    assert list(table.columns) == [
        "option", "method", "criterion", "auc", "balanced_accuracy", "accuracy",
        "selection_rate", "demographic_parity_difference", "equalized_odds_difference",
        "true_positive_rate_parity_difference"]
    assert len(table) == 1 + 3
    assert table["selection_rate"].between(0, 1).all()
    assert report.attribute == "origin" and report.n_test == 1000


def test_exponentiated_gradient_runs_with_an_unfitted_model(split: tuple) -> None:
    X_tr, y_tr, a_tr, X_te, y_te, a_te = split
    rep = compare_mitigations(LogisticRisk(random_state=0), X_tr, y_tr, a_tr, X_te, y_te, a_te,
                              criteria=("demographic_parity",),
                              methods=("exponentiated_gradient",), eg_max_iter=8, seed=0)
    eg = rep.option("exponentiated_gradient", "demographic_parity")
    assert 0.5 < eg.auc < 1 and 0 < eg.selection_rate < 1
    assert eg.disparities["demographic_parity"] < rep.option(
        "unmitigated", "").disparities["demographic_parity"]
    assert list(rep.table().columns)[-1] == "demographic_parity_difference"


def test_disparities_agree_with_fairlearn() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 500).astype(np.int8)
    pred = rng.integers(0, 2, 500)
    a = pd.Series(rng.choice(list("abc"), 500))
    mine = disparities(y, pred, a)
    assert mine["demographic_parity"] == pytest.approx(
        demographic_parity_difference(y, pred, sensitive_features=a), abs=1e-12)
    assert mine["equalized_odds"] == pytest.approx(
        equalized_odds_difference(y, pred, sensitive_features=a), abs=1e-12)
    assert mine["true_positive_rate_parity"] == pytest.approx(
        equal_opportunity_difference(y, pred, sensitive_features=a), abs=1e-12)


def test_tradeoff_plot_has_a_panel_per_criterion(report: MitigationReport) -> None:
    fig = plot_tradeoff(report)
    assert isinstance(fig, Figure)
    axes = [ax for ax in fig.axes if ax.collections]
    assert len(axes) == 3
    assert all(len(ax.collections) == len(report.options) for ax in axes)


def test_bad_input(split: tuple) -> None:
    X_tr, y_tr, a_tr, X_te, y_te, a_te = split
    model = LogisticRisk(random_state=0)
    with pytest.raises(InputError, match="criteria"):
        compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te, a_te,
                            criteria=("equal_outcomes",))
    with pytest.raises(InputError, match=r"A_test has groups \['refugee'\]"):
        compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te,
                            a_te.where(a_te.index > 5, "refugee"))
    with pytest.raises(InputError, match="y_test has 999 rows"):
        compare_mitigations(model, X_tr, y_tr, a_tr, X_te, y_te[:-1], a_te)


def test_a_group_with_one_outcome_is_refused_by_name(split: tuple) -> None:
    """fairlearn's 'Degenerate labels' traceback, after the model was registered, left a
    version without an audit; now the comparison says why it cannot be made."""
    X_tr, y_tr, a_tr, X_te, y_te, a_te = split
    y_one = np.where(a_tr.to_numpy() == "immigrant", 0, y_tr)
    model = LogisticRisk(random_state=0).fit(X_tr, y_tr)
    with pytest.raises(InputError, match=r"groups \['immigrant'\] have only one outcome"):
        compare_mitigations(model, X_tr, y_one, a_tr, X_te, y_te, a_te,
                            methods=("threshold_optimizer",), seed=0)


def test_the_tradeoff_plot_speaks_the_pages_language(report: MitigationReport) -> None:
    """The Danish page showed the English plot ("unmitigated", "balanced accuracy")."""
    def words(fig: Figure) -> str:
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        texts += [ax.get_xlabel() for ax in fig.axes] + [ax.get_ylabel() for ax in fig.axes]
        return " | ".join([*texts, fig.get_suptitle()])

    da, en = words(plot_tradeoff(report, "da")), words(plot_tradeoff(report, "en"))
    assert "uden afbødning" in da and "balanceret træfsikkerhed" in da
    assert "herkomst" in da and "demografisk paritet" in da
    assert "unmitigated" not in da and "balanced accuracy" not in da
    assert "unmitigated" in en and "balanced accuracy" in en and "origin" in en
