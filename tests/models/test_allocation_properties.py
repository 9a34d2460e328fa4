"""Allocation under capacity: feasibility and optimality on many seeded random problems.

Every allocation must respect places, budget, one programme per citizen, only-beneficiaries
and every group constraint exactly; and on small problems its benefit must equal the
optimum that scipy's MILP finds on the full, unreduced program (so the candidate reduction
and the LP-then-MILP path lose nothing).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from overblik.models import (
    Allocation,
    allocate,
    allocate_by_rank,
    allocation_benefit,
    compare_policies,
    price_of_fairness,
)
from overblik.models._allocation import as_decimal

SEEDS = range(40)


def _problem(seed: int, n: int = 60, m: int = 3) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    effects = rng.normal(0.02, 0.05, size=(n, m))
    places = rng.integers(1, max(2, n // 4), size=m)
    costs = rng.choice([1.0, 2.0, 3.5], size=m)
    budget = float(rng.uniform(0.3, 1.0) * (places * costs).sum())
    groups = rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1])
    return {"effects": effects, "places": places, "costs": costs, "budget": budget,
            "groups": groups}


def _check_feasible(result: Allocation, p: dict[str, object], threshold: float = 0.0) -> None:
    effects = np.asarray(p["effects"])
    places = np.asarray(p["places"])
    costs = np.asarray(p["costs"])
    a = result.assignment
    assert a.shape == (effects.shape[0],)
    assert set(np.unique(a)) <= {-1, *range(effects.shape[1])}  # one programme at most
    used = np.bincount(a[a >= 0], minlength=effects.shape[1])
    assert (used <= places).all()
    spent = sum(as_decimal(costs[j]) * int(used[j]) for j in range(len(costs)))
    assert spent <= as_decimal(float(p["budget"]))  # exactly, as the decimals they print as
    given = np.flatnonzero(a >= 0)
    assert (effects[given, a[given]] > threshold).all()  # only those expected to benefit
    assert result.expected_benefit == pytest.approx(effects[given, a[given]].sum())
    assert list(result.places_used) == list(used)


def _optimum(p: dict[str, object], min_share: dict[str, float] | None = None,
             max_gap: float | None = None) -> float:
    """The full program (no reduction) solved by scipy's MILP: the reference optimum."""
    e = np.asarray(p["effects"])
    places, costs = np.asarray(p["places"]), np.asarray(p["costs"])
    groups = np.asarray(p["groups"])
    n, m = e.shape
    nv = n * m
    rows, lo, hi = [], [], []
    one = sp.kron(sp.eye(n), np.ones((1, m)))
    rows.append(one); lo += [0] * n; hi += [1] * n  # noqa: E702
    rows.append(sp.kron(np.ones((1, n)), sp.eye(m))); lo += [0] * m; hi += list(places)  # noqa: E702
    rows.append(sp.csr_matrix(np.tile(costs, n)[None, :])); lo += [0]; hi += [p["budget"]]  # noqa: E702
    labels = sorted(set(groups))
    member = {g: np.repeat((groups == g).astype(float), m) for g in labels}
    total = np.ones(nv)
    for g, s in (min_share or {}).items():
        rows.append(sp.csr_matrix((member[g] - s * total)[None, :])); lo += [0]; hi += [np.inf]  # noqa: E702
    if max_gap is not None:
        benef = {g: int(((e.max(axis=1) > 0) & (groups == g)).sum()) for g in labels}
        live = [g for g in labels if benef[g]]
        for i, g in enumerate(live):
            for h in live[i + 1:]:
                row = member[g] / benef[g] - member[h] / benef[h]
                rows.append(sp.csr_matrix(row[None, :])); lo += [-max_gap]; hi += [max_gap]  # noqa: E702
    upper = (e.ravel() > 0).astype(float)
    res = milp(-e.ravel(), constraints=LinearConstraint(sp.vstack(rows).tocsr(), lo, hi),
               integrality=np.ones(nv), bounds=Bounds(np.zeros(nv), upper))
    assert res.success, res.message
    return float(-res.fun)


@pytest.mark.parametrize("seed", SEEDS)
def test_allocation_is_feasible_and_optimal(seed: int) -> None:
    p = _problem(seed)
    result = allocate(p["effects"], places=p["places"], costs=p["costs"], budget=p["budget"])
    _check_feasible(result, p)
    assert result.expected_benefit == pytest.approx(_optimum(p), abs=1e-9)
    assert result.expected_benefit <= result.upper_bound + 1e-9


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_minimum_shares_are_met_exactly(seed: int) -> None:
    p = _problem(seed)
    shares = {"c": 0.2, "b": 0.3}
    result = allocate(p["effects"], places=p["places"], costs=p["costs"], budget=p["budget"],
                      groups=p["groups"], min_share=shares)
    _check_feasible(result, p)
    total = sum(result.group_places.values())
    for g, s in shares.items():
        # exact: integer places against a rational share, no tolerance
        assert Fraction(result.group_places[g]) >= Fraction(s).limit_denominator() * total
    assert result.expected_benefit == pytest.approx(_optimum(p, min_share=shares), abs=1e-7)
    unconstrained = allocate(p["effects"], places=p["places"], costs=p["costs"],
                             budget=p["budget"])
    assert result.expected_benefit <= unconstrained.expected_benefit + 1e-9


@pytest.mark.parametrize("seed", SEEDS[:20])
def test_access_gap_is_met_exactly(seed: int) -> None:
    p = _problem(seed)
    gap = 0.05
    result = allocate(p["effects"], places=p["places"], costs=p["costs"], budget=p["budget"],
                      groups=p["groups"], max_access_gap=gap)
    _check_feasible(result, p)
    rates = [Fraction(result.group_places[g], b)
             for g, b in result.group_beneficiaries.items() if b]
    assert max(rates) - min(rates) <= Fraction(gap).limit_denominator()
    assert result.expected_benefit == pytest.approx(_optimum(p, max_gap=gap), abs=1e-7)


def test_large_problem_reduces_candidates_and_stays_feasible() -> None:
    p = _problem(0, n=50_000, m=3)
    p["places"] = np.array([300, 200, 100])
    result = allocate(p["effects"], places=p["places"], costs=p["costs"], budget=p["budget"],
                      groups=p["groups"], min_share={"c": 0.15})
    _check_feasible(result, p)
    assert result.n_candidates < 50_000 * 3 // 10
    assert result.group_places["c"] >= 0.15 * sum(result.group_places.values())


def test_rank_and_random_policies_never_beat_the_optimum() -> None:
    p = _problem(3, n=400)
    e = np.asarray(p["effects"])
    best = allocate(e, places=p["places"], costs=p["costs"], budget=p["budget"])
    order = np.argsort(-e.max(axis=1))
    ranked = allocate_by_rank(order, n=len(e), places=p["places"], costs=p["costs"],
                              budget=p["budget"])
    used = np.bincount(ranked[ranked >= 0], minlength=e.shape[1])
    assert (used <= np.asarray(p["places"])).all()
    comparison = compare_policies(e, places=p["places"], costs=p["costs"], budget=p["budget"],
                                  risk=e.max(axis=1), true_effects=e)
    assert set(comparison.benefit) == {"effect", "risk", "random", "oracle"}
    assert comparison.benefit["effect"] == pytest.approx(best.expected_benefit)
    for policy, benefit in comparison.benefit.items():
        assert benefit <= comparison.benefit["oracle"] + 1e-9, policy
    assert comparison.share_of_oracle["oracle"] == pytest.approx(1.0)


def test_policies_judged_by_another_set_of_effects() -> None:
    """Without the truth, held-out scores judge every policy (no oracle); shapes must match."""
    p = _problem(4, n=300)
    e = np.asarray(p["effects"])
    judge = e + np.random.default_rng(4).normal(0.0, 0.05, size=e.shape)
    comparison = compare_policies(e, places=p["places"], costs=p["costs"], budget=p["budget"],
                                  risk=e.max(axis=1), judge=judge)
    assert comparison.judged_by == "doubly_robust"
    imputed = compare_policies(e, places=p["places"], costs=p["costs"], budget=p["budget"],
                               risk=e.max(axis=1), judge=judge, judge_kind="imputed")
    assert imputed.judged_by == "imputed" and imputed.benefit == comparison.benefit
    assert "oracle" not in comparison.benefit and comparison.share_of_oracle == {}
    chosen = allocate(e, places=p["places"], costs=p["costs"], budget=p["budget"]).assignment
    assert comparison.benefit["effect"] == pytest.approx(allocation_benefit(chosen, judge))
    with pytest.raises(ValueError, match="one value per citizen and programme"):
        compare_policies(e, places=p["places"], costs=p["costs"], budget=p["budget"],
                         judge=judge[:, :1])


@pytest.mark.parametrize("unit", [1e-300, 1e-12, 0.05, 1.0, 1e15, 1e300])
def test_budget_in_any_unit_gives_the_same_places(unit: float) -> None:
    """Costs and budget in any unit, read as decimals: HiGHS refused costs from 1e15 on (a
    500 from /allocate), tiny units broke the tightening step, and 0.5 // 0.025 = 19.0 in
    binary floating point cut the candidates one place short."""
    e = np.random.default_rng(0).normal(0.05, 0.05, size=(200, 2))
    p = {"effects": e, "places": [20, 20], "costs": [unit, unit / 2], "budget": unit * 10}
    assert as_decimal(unit / 2) * 20 == as_decimal(unit * 10)  # the budget fits 20 exactly
    result = allocate(e, places=p["places"], costs=p["costs"], budget=p["budget"])
    _check_feasible(result, p)
    reference = allocate(e, places=[20, 20], costs=[2.0, 1.0], budget=20.0)
    assert list(result.places_used) == list(reference.places_used) == [0, 20]
    assert result.expected_benefit == reference.expected_benefit


def test_infeasible_share_gives_a_clear_error() -> None:
    p = _problem(1)
    with pytest.raises(ValueError, match="min_share adds up to more than 1"):
        allocate(p["effects"], places=p["places"], costs=p["costs"], budget=p["budget"],
                 groups=p["groups"], min_share={"a": 0.7, "b": 0.7})


def test_price_of_fairness_is_the_benefit_given_up() -> None:
    p = _problem(5, n=200)
    shares = {"c": 0.3}
    prices = price_of_fairness(p["effects"], places=p["places"], costs=p["costs"],
                               budget=p["budget"], groups=p["groups"], min_share=shares,
                               max_access_gap=0.05)
    assert prices["unconstrained"] == pytest.approx(_optimum(p), abs=1e-7)
    assert prices["min_share"] == pytest.approx(_optimum(p, min_share=shares), abs=1e-7)
    for name in ("min_share", "max_access_gap", "both"):
        assert prices[f"price_{name}"] == pytest.approx(prices["unconstrained"] - prices[name])
        assert prices[f"price_{name}"] >= -1e-9
    assert prices["both"] <= min(prices["min_share"], prices["max_access_gap"]) + 1e-9


def test_a_minimum_share_for_a_group_nobody_in_which_benefits_is_refused() -> None:
    p = _problem(5)
    effects = np.asarray(p["effects"]).copy()
    effects[np.asarray(p["groups"]) == "c"] = -0.1  # nobody in "c" is expected to benefit
    args = {"places": p["places"], "costs": p["costs"], "budget": p["budget"],
            "groups": p["groups"]}
    with pytest.raises(ValueError, match=r"no one in group 'c' is expected to benefit, so a "
                                         r"minimum share .* lower beneficiary_threshold"):
        allocate(effects, min_share={"c": 0.1}, **args)  # type: ignore[arg-type]
    # A share of 0 asks nothing; it is met along with the places.
    result = allocate(effects, min_share={"c": 0.0}, **args)  # type: ignore[arg-type]
    assert result.places_used.sum() > 0


@pytest.mark.parametrize(("change", "match"), [
    ({"beneficiary_threshold": float("nan")}, "beneficiary_threshold=nan"),
    ({"budget": "15"}, "budget='15': give a number"),
    ({"budget": None}, "budget=None: give a number"),
    ({"budget": np.array([15.0])}, r"budget=array\(\[15\.\]\): give a number"),
    ({"places": ["3", "5", "2"]}, "places must be 3 whole numbers"),
    ({"costs": ["1", "2", "1"]}, "costs must be 3 finite numbers")])
def test_malformed_allocation_inputs_are_refused(change: dict[str, object], match: str) -> None:
    p = {**_problem(6), **change}
    with pytest.raises(ValueError, match=match):
        allocate(p.pop("effects"), **p)  # type: ignore[arg-type]


@pytest.mark.parametrize(("change", "match"), [
    ({"order": [0, 0, 1]}, "citizen 0 more than once"),
    ({"order": [-1, 0]}, r"index -1, outside 0 \.\. 4"),
    ({"order": [7]}, r"index 7, outside 0 \.\. 4"),
    ({"order": [0.9, 1.7]}, "whole numbers"),
    ({"places": [2.7, 0]}, "places must be 2 whole numbers"),
    ({"places": [-2, 2]}, "places must be 2 whole numbers >= 0"),
    ({"costs": [-1, 1]}, "costs must be 2 finite numbers >= 0"),
    ({"costs": [1]}, "costs must be 2 finite numbers"),
    ({"budget": float("nan")}, "budget=nan")])
def test_allocation_by_rank_refuses_malformed_inputs(change: dict[str, object],
                                                     match: str) -> None:
    args: dict[str, object] = {"order": np.arange(5), "n": 5, "places": [2, 2],
                               "costs": [1, 1], "budget": 10.0, **change}
    with pytest.raises(ValueError, match=match):
        allocate_by_rank(**args)  # type: ignore[arg-type]


def test_compare_policies_needs_one_risk_per_citizen_and_a_finite_judge() -> None:
    p = _problem(7, n=100)
    e = np.asarray(p["effects"])
    args = {"places": p["places"], "costs": p["costs"], "budget": p["budget"]}
    with pytest.raises(ValueError, match=r"risk must be .* \(100\), got shape \(50,\)"):
        compare_policies(e, risk=e[:50, 0], **args)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="risk has a missing or infinite value at row 3"):
        compare_policies(e, risk=np.where(np.arange(100) == 3, np.nan, 1.0),
                         **args)  # type: ignore[arg-type]
    judge = e.copy()
    judge[4, 0] = np.nan
    with pytest.raises(ValueError, match="judge has a missing or infinite value for citizen 4"):
        compare_policies(e, judge=judge, **args)  # type: ignore[arg-type]
