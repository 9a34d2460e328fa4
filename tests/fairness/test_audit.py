"""The audit's numbers, suppression, JSON and every bad-input path."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_negative_rate,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import precision_score, roc_auc_score

from overblik.fairness import METRICS, AuditResult, audit, render_report
from overblik.fairness._groups import MAX_GROUPS
from overblik.features import InputError
from overblik.models import ece

RATES = {"selection_rate": selection_rate, "tpr": true_positive_rate,
         "fpr": false_positive_rate, "fnr": false_negative_rate,
         "ppv": lambda y, p: precision_score(y, p, zero_division=np.nan), "count": count}


def _cohort(n: int = 4000, seed: int = 11) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """A scored cohort with group effects on both the outcome and the score."""
    rng = np.random.default_rng(seed)
    sens = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "origin": rng.choice(["danish", "immigrant", "descendant"], n, p=[0.75, 0.15, 0.10]),
        "age_band": rng.choice(["18-24", "25-34", "35-49", "50-64"], n),
    })
    need = -1.2 + 0.6 * (sens["origin"] != "danish") + 0.3 * (sens["sex"] == "M")
    latent = need.to_numpy() + rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(int)
    # The score over-rates immigrants a little: a disparity to find.
    score = 1 / (1 + np.exp(-(latent + rng.normal(scale=0.8, size=n)
                              + 0.4 * (sens["origin"] == "immigrant").to_numpy())))
    return y, score, sens


@pytest.fixture(scope="module")
def cohort() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    return _cohort()


@pytest.fixture(scope="module")
def result(cohort: tuple[np.ndarray, np.ndarray, pd.DataFrame]) -> AuditResult:
    y, s, sens = cohort
    return audit(y, s, sens, threshold=0.4, n_boot=200, seed=1,
                 reference={"origin": "danish"})


def _group(result: AuditResult, attribute: str, group: str):
    return next(g for g in result.groups if g.attribute == attribute and g.group == group)


@pytest.mark.parametrize("rule", [{"threshold": 0.4}, {"top_k": 1000}])
def test_rates_agree_with_fairlearn_metricframe(cohort, rule) -> None:
    y, s, sens = cohort
    res = audit(y, s, sens, n_boot=0, reference={"origin": "danish", "sex": "F"}, **rule)
    if "threshold" in rule:
        pred = (s >= 0.4).astype(int)
    else:
        pred = np.zeros(len(s), dtype=int)
        pred[np.argsort(-s, kind="stable")[:1000]] = 1
    assert pred.sum() == (1000 if "top_k" in rule else pred.sum())
    for attribute in (["sex"], ["origin"], ["age_band"], ["sex", "origin"]):
        frame = MetricFrame(metrics=RATES, y_true=y, y_pred=pred,
                            sensitive_features=sens[attribute])
        by_group = frame.by_group
        name = "&".join(attribute)
        for key, row in by_group.iterrows():
            label = "&".join(key) if isinstance(key, tuple) else str(key)
            g = _group(res, name, label)
            assert g.n == row["count"]
            for metric in ("selection_rate", "tpr", "fpr", "fnr", "ppv"):
                assert g.metrics[metric].value == pytest.approx(row[metric], abs=1e-9)
        if name in ("sex", "origin"):
            ref = res.references[name]
            assert ref == {"sex": "F", "origin": "danish"}[name]
            for d in res.disparities:
                if d.attribute != name or d.metric not in ("selection_rate", "tpr", "fpr"):
                    continue
                mine, theirs = by_group.loc[d.group, d.metric], by_group.loc[ref, d.metric]
                assert d.difference.value == pytest.approx(mine - theirs, abs=1e-9)
                assert d.ratio.value == pytest.approx(mine / theirs, abs=1e-9)
    assert res.overall["selection_rate"].value == pytest.approx(pred.mean(), abs=1e-12)


def test_score_metrics_are_exact_per_group(cohort, result: AuditResult) -> None:
    y, s, sens = cohort
    for g in result.groups:
        if "&" in g.attribute:
            continue
        rows = (sens[g.attribute] == g.group).to_numpy()
        assert g.metrics["auc"].value == pytest.approx(roc_auc_score(y[rows], s[rows]), abs=1e-12)
        assert g.metrics["ece"].value == pytest.approx(ece(y[rows], s[rows]), abs=1e-12)
        assert g.metrics["brier"].value == pytest.approx(np.mean((s[rows] - y[rows]) ** 2))
        assert g.metrics["base_rate"].value == pytest.approx(y[rows].mean())
        for m in METRICS:
            iv = g.metrics[m]
            assert iv.ci_low <= iv.value + 1e-9 <= iv.ci_high + 2e-9, (g.group, m, iv)


def test_rates_of_a_few_cases_get_honest_intervals() -> None:
    """A district with one placed child (not selected) against one with two (both
    selected): the bootstrap alone said TPR 100 % [100; 100] and a difference of -100 pp
    [-100; -100], "beyond the limit", from three children. The Wilson interval of 2 of 2
    (95 %: 34.2 % to 100 %) and Newcombe's for the difference (reaching above 0) instead;
    and no interval of a share leaves [0, 1] (AUC intervals read 1.009 and 1.017)."""
    rng = np.random.default_rng(3)
    n = 200
    district = np.array(["A"] * 100 + ["B"] * 100)
    y = np.zeros(n, dtype=int)
    y[[0]] = 1  # A: one positive
    y[[100, 101]] = 1  # B: two positives
    score = rng.uniform(0.0, 0.3, n)
    score[[100, 101]] = 0.9  # B's positives selected, A's not
    res = audit(y, score, pd.DataFrame({"district": district}), threshold=0.5, n_boot=300,
                seed=1, reference={"district": "B"}, intersections=False)
    tpr_b = _group(res, "district", "B").metrics["tpr"]
    assert tpr_b.value == 1.0
    assert tpr_b.ci_low == pytest.approx(0.3424, abs=1e-3) and tpr_b.ci_high == 1.0
    tpr_a = _group(res, "district", "A").metrics["tpr"]
    assert tpr_a.value == 0.0 and tpr_a.ci_low == 0.0 and tpr_a.ci_high == pytest.approx(
        0.7935, abs=1e-3)
    d = next(d for d in res.disparities if d.metric == "tpr" and d.group == "A").difference
    assert d.value == -1.0 and d.ci_low == -1.0 and d.ci_high > 0.0
    for g in res.groups:
        for m in g.metrics.values():
            assert not math.isfinite(m.ci_low) or 0.0 <= m.ci_low <= m.ci_high <= 1.0
    for d in res.disparities:
        iv = d.difference
        assert not math.isfinite(iv.ci_low) or -1.0 <= iv.ci_low <= iv.ci_high <= 1.0


def test_auc_counts_ties_half() -> None:
    y = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    s = np.array([0.2, 0.2, 0.5, 0.5, 0.1, 0.9, 0.5, 0.9])
    sens = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 4})
    res = audit(y, s, sens, threshold=0.5, n_boot=0, min_count=1)
    for g in res.groups:
        rows = (sens["g"] == g.group).to_numpy()
        assert g.metrics["auc"].value == pytest.approx(roc_auc_score(y[rows], s[rows]))


def test_disparities_reference_the_largest_group_by_default(cohort) -> None:
    y, s, sens = cohort
    res = audit(y, s, sens, threshold=0.4, n_boot=50)
    assert res.references["origin"] == "danish"
    pair = res.references["sex&origin"]
    sizes = pd.Series(1, index=sens.index).groupby([sens["sex"], sens["origin"]]).sum()
    assert pair == "&".join(sizes.idxmax())
    groups = {(d.attribute, d.group) for d in res.disparities}
    assert ("origin", "immigrant") in groups and ("origin", "danish") not in groups
    # The planted over-rating of immigrants is found, with an interval clear of zero.
    d = next(d for d in res.disparities if d.attribute == "origin" and d.group == "immigrant"
             and d.metric == "selection_rate")
    assert d.difference.ci_low > 0 and d.ratio.ci_low > 1


def test_an_intersection_is_compared_with_its_attributes_references() -> None:
    """origin=danish and district=D10 are the references: origin & district compares with
    danish & D10, not with the largest cell (danish in D02, where few are selected: every
    gap against it was the district's); a reference cell below min_count falls back to the
    largest."""
    rng = np.random.default_rng(5)
    n = 6000
    sens = pd.DataFrame({
        "origin": rng.choice(["danish", "immigrant"], n, p=[0.8, 0.2]),
        "district": rng.choice(["D02", "D10", "D11"], n, p=[0.5, 0.3, 0.2])})
    s = rng.uniform(size=n) * np.where(sens["district"] == "D02", 0.5, 1.0)
    y = (rng.uniform(size=n) < s).astype(int)
    reference = {"origin": "danish", "district": "D10"}
    res = audit(y, s, sens, threshold=0.7, n_boot=0, reference=reference)
    assert res.references["origin&district"] == "danish&D10"
    gaps = {d.group: d.difference.value for d in res.disparities
            if d.attribute == "origin&district" and d.metric == "selection_rate"}
    # Danish in D11 is selected like danish in D10; against danish & D02 it read +20 pp.
    assert abs(gaps["danish&D11"]) < 0.05
    assert "danish&D10" not in gaps and "danish&D02" in gaps
    explicit = audit(y, s, sens, threshold=0.7, n_boot=0,
                     reference={**reference, "origin&district": "danish&D02"})
    assert explicit.references["origin&district"] == "danish&D02"
    small = audit(y, s, sens, threshold=0.7, n_boot=0, min_count=2000, reference=reference)
    assert small.references["origin&district"] == "danish&D02"  # the largest cell


def test_top_k_breaks_ties_by_row_position() -> None:
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.5])
    sens = pd.DataFrame({"g": list("aabbab")})
    res = audit(y, s, sens, top_k=3, n_boot=0, min_count=1)
    # Selected: row 1 (0.9), then rows 0 and 2 of the four tied at 0.5.
    assert res.decision == "top 3" and res.top_k == 3 and res.threshold is None
    assert _group(res, "g", "a").metrics["selection_rate"].value == pytest.approx(2 / 3)
    assert _group(res, "g", "b").metrics["selection_rate"].value == pytest.approx(1 / 3)


def test_small_groups_are_suppressed_everywhere(cohort) -> None:
    y, s, sens = cohort
    sens = sens.copy()
    sens.loc[:6, "origin"] = "refugee"  # 7 persons: below min_count
    res = audit(y, s, sens, threshold=0.4, n_boot=50, min_count=20)
    g = _group(res, "origin", "refugee")
    assert g.suppressed and g.metrics == {} and g.n == 0
    assert not any(d.group == "refugee" or "refugee" in d.group.split("&")
                   for d in res.disparities)
    assert not any("refugee" in c.group for c in res.calibration)
    assert all(not g.suppressed for g in res.groups if g.attribute == "sex")
    doc = res.to_json()
    entry = next(e for e in doc["groups"] if e["group"] == "refugee")
    assert entry == {"attribute": "origin", "group": "refugee", "n": None, "suppressed": True,
                     "protects": False, "metrics": {}}
    table = res.group_table()
    rows = table[table["group"] == "refugee"]
    assert rows["n"].isna().all() and rows["value"].isna().all() and rows["suppressed"].all()
    # Intersections with the small group are suppressed too.
    assert all(g.suppressed for g in res.groups if "refugee" in g.group.split("&"))


def test_no_small_intersection_can_be_worked_out_by_subtraction() -> None:
    """Immigrants in D12 are 5: shown, Danish and descendants in D12 and the D12 total gave
    their size and, through the rates, how many were selected. Every line of a two-way
    table (one district, or one origin) now hides none or at least two cells; the cells
    hidden only for this say so; the attributes themselves are untouched."""
    rng = np.random.default_rng(8)
    n = 6000
    origin = rng.choice(["danish", "descendant", "immigrant"], n, p=[0.8, 0.12, 0.08])
    district = rng.choice(["D10", "D11", "D12"], n)
    in_d12 = np.flatnonzero((district == "D12") & (origin == "immigrant"))
    origin[in_d12[5:]] = "danish"  # 5 immigrants left in D12
    sens = pd.DataFrame({"origin": origin, "district": district})
    s = rng.uniform(size=n)
    y = (rng.uniform(size=n) < s).astype(int)
    res = audit(y, s, sens, threshold=0.5, n_boot=0, min_count=20,
                reference={"origin": "danish", "district": "D10"})
    cells = {g.group: g for g in res.groups if g.attribute == "origin&district"}
    assert cells["immigrant&D12"].suppressed and not cells["immigrant&D12"].protects
    for value, position in [(v, 0) for v in ("danish", "descendant", "immigrant")] + [
            (v, 1) for v in ("D10", "D11", "D12")]:
        line = [g for name, g in cells.items() if name.split("&")[position] == value]
        assert sum(g.suppressed for g in line) != 1, value
    protecting = [g for g in cells.values() if g.protects]
    assert protecting and all(g.suppressed and g.n == 0 and g.metrics == {}
                              for g in protecting)
    assert not cells["danish&D10"].suppressed  # the reference stays
    assert not any(g.suppressed for g in res.groups if "&" not in g.attribute)
    html = render_report(res)
    assert "suppressed to protect a smaller intersection" in html
    assert "undertrykt for at beskytte en mindre krydsgruppe" in html


def test_suppressed_reference_gives_no_disparities() -> None:
    rng = np.random.default_rng(3)
    y, s = rng.integers(0, 2, 60), rng.random(60)
    sens = pd.DataFrame({"g": ["big"] * 50 + ["small"] * 10})
    res = audit(y, s, sens, threshold=0.5, n_boot=20, reference={"g": "small"})
    assert res.references["g"] == "small" and res.disparities == ()


def test_missing_values_form_their_own_group(cohort) -> None:
    y, s, sens = cohort
    sens = sens.copy()
    sens["origin"] = sens["origin"].astype(object)
    sens.loc[sens.index[:300], "origin"] = None
    res = audit(y, s, sens, threshold=0.4, n_boot=0)
    g = _group(res, "origin", "(missing)")
    assert g.n == 300 and not g.suppressed
    assert g.metrics["selection_rate"].value == pytest.approx((s[:300] >= 0.4).mean())


def test_json_follows_the_schema(result: AuditResult) -> None:
    doc = result.to_json()
    text = json.dumps(doc, allow_nan=False)  # NaN would not be valid JSON
    assert json.loads(text) == doc
    assert set(doc) == {"n", "decision", "min_count", "n_boot", "confidence", "overall",
                        "groups", "disparities"}
    assert doc["decision"] == "score >= 0.4" and doc["n"] == 4000 and doc["n_boot"] == 200
    assert set(doc["overall"]) == set(METRICS)
    g = doc["groups"][0]
    assert set(g) == {"attribute", "group", "n", "suppressed", "protects", "metrics"}
    assert set(g["metrics"]) == set(METRICS)
    assert set(g["metrics"]["tpr"]) == {"value", "ci_low", "ci_high"}
    d = doc["disparities"][0]
    assert set(d) == {"attribute", "group", "reference", "metric", "difference", "ratio"}
    for entry in doc["groups"]:
        for m in ("selection_rate", "tpr", "fpr", "fnr", "ppv", "base_rate"):
            v = entry["metrics"][m]["value"]
            assert v is None or 0.0 <= v <= 1.0
    attributes = {e["attribute"] for e in doc["groups"]}
    assert {"sex", "origin", "age_band", "sex&origin", "sex&age_band",
            "origin&age_band"} == attributes


def test_tables_are_long_and_complete(result: AuditResult) -> None:
    table = result.group_table()
    assert list(table.columns) == ["attribute", "group", "n", "suppressed", "metric", "value",
                                   "ci_low", "ci_high"]
    assert len(table) == len(result.groups) * len(METRICS)
    dt = result.disparity_table()
    assert len(dt) == len(result.disparities)
    assert {"difference", "difference_ci_low", "ratio", "ratio_ci_high"} <= set(dt.columns)


def test_calibration_curves_have_no_small_bins(result: AuditResult) -> None:
    assert result.calibration
    for c in result.calibration:
        assert min(c.n) >= result.min_count
        assert len(c.mean_predicted) == len(c.observed) == len(c.n)
        assert all(0 <= v <= 1 for v in c.observed)


def test_intersections_can_be_left_out(cohort) -> None:
    y, s, sens = cohort
    res = audit(y, s, sens, threshold=0.4, n_boot=0, intersections=False)
    assert {g.attribute for g in res.groups} == {"sex", "origin", "age_band"}


def test_scores_that_are_not_probabilities_have_no_calibration(cohort) -> None:
    y, s, sens = cohort
    res = audit(y, 10 * s - 2, sens[["sex"]], threshold=2.0, n_boot=20)
    g = _group(res, "sex", "F")
    assert math.isnan(g.metrics["ece"].value) and math.isnan(g.metrics["brier"].ci_low)
    assert not math.isnan(g.metrics["auc"].value) and res.calibration == ()


def test_progress_is_reported(cohort) -> None:
    y, s, sens = cohort
    calls: list[tuple[str, int, int]] = []
    audit(y, s, sens, threshold=0.4, n_boot=30, progress=lambda *a: calls.append(a))
    assert ("bootstrap", 30, 30) in calls


def test_same_seed_same_intervals(cohort) -> None:
    y, s, sens = cohort
    a = audit(y, s, sens[["origin"]], threshold=0.4, n_boot=50, seed=5).to_json()
    b = audit(y, s, sens[["origin"]], threshold=0.4, n_boot=50, seed=5).to_json()
    c = audit(y, s, sens[["origin"]], threshold=0.4, n_boot=50, seed=6).to_json()
    assert a == b and a != c


# --- bad input: one clear error naming the thing ----------------------------------------

Y = np.array([0, 1, 0, 1, 1, 0])
S = np.array([0.1, 0.8, 0.3, 0.6, 0.9, 0.2])
A = pd.DataFrame({"sex": list("FMFMFM")})


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"scores": S[:5]}, "scores has 5 rows but y_true has 6"),
    ({"sensitive": A.iloc[:4]}, "sensitive has 4 rows but y_true has 6"),
    ({"y_true": np.array([0, 1, 2, 1, 1, 0])}, "y_true: value 2 at row 2"),
    ({"y_true": np.array([0, 1, np.nan, 1, 1, 0])}, "y_true: value nan at row 2"),
    ({"y_true": np.array(["no", "yes"] * 3)}, "y_true: value 'no' at row 0"),
    ({"scores": np.array(["a"] * 6)}, "scores must be numbers"),
    ({"scores": np.array([0.1, None, 0.3, 0.6, 0.9, 0.2], dtype=object)}, "scores: row 1"),
    ({"scores": np.array([0.1, np.nan, 0.3, 0.6, 0.9, 0.2])}, "scores: row 1 is nan"),
    ({"threshold": 0.5, "top_k": 2}, "exactly one decision rule"),
    ({"threshold": None}, "exactly one decision rule"),
    ({"threshold": None, "top_k": 0}, "top_k=0"),
    ({"threshold": None, "top_k": 7}, "between 1 and the number of rows (6)"),
    ({"y_true": [], "scores": [], "sensitive": A.iloc[:0]}, "y_true has no rows"),
    ({"sensitive": A.assign(origin=[None] * 6)}, "sensitive column 'origin' is missing for "
                                                 "every row"),
    ({"sensitive": A.iloc[:, :0]}, "sensitive has no columns"),
    ({"sensitive": A.assign(g=pd.Series([1, "1", 2, "2", 1, 2], dtype=object))},
     "sensitive column 'g' holds 1 (int) and '1' (str), which read the same"),
    ({"reference": {"origin": "danish"}}, "reference names attribute 'origin'"),
    ({"reference": {"sex": "X"}}, "reference sex='X': no row has this value"),
    ({"min_count": 0}, "min_count=0"),
    ({"n_boot": -1}, "n_boot=-1"),
    ({"confidence": 95}, "confidence=95"),
])
def test_bad_input_is_one_clear_error(kwargs: dict, needle: str) -> None:
    args = {"y_true": Y, "scores": S, "sensitive": A, "threshold": 0.5, "n_boot": 0,
            "min_count": 1, **kwargs}
    y, s, a = args.pop("y_true"), args.pop("scores"), args.pop("sensitive")
    with pytest.raises(InputError) as err:
        audit(y, s, a, **args)
    assert needle in str(err.value)


def test_a_measurement_is_refused_not_split_into_tiny_groups() -> None:
    # Age in years has a group per value: every cell would be suppressed as too small and
    # the audit would compare nothing without saying why.
    rng = np.random.default_rng(0)
    n = 600
    age = pd.DataFrame({"age": rng.integers(18, 90, n)})
    with pytest.raises(InputError) as err:
        audit(rng.integers(0, 2, n), rng.random(n), age, threshold=0.5, n_boot=0)
    assert f"sensitive column 'age' has {age['age'].nunique()} distinct values" in str(err.value)
    assert f"at most {MAX_GROUPS}" in str(err.value) and "band" in str(err.value)
    banded = pd.DataFrame({"age": pd.cut(age["age"], [17, 29, 49, 69, 90]).astype(str)})
    result = audit(rng.integers(0, 2, n), rng.random(n), banded, threshold=0.5, n_boot=0)
    assert {g.group for g in result.groups if g.attribute == "age"} == set(banded["age"])
