"""Allocation of scarce programme places to citizens, as a linear / mixed-integer program.

The problem
-----------
Given estimated effects ``E`` (n citizens x m programmes; positive = helps), each
programme's places ``P_j`` and cost ``c_j``, a total budget ``B``, choose ``x_ij`` in {0, 1}
to maximise ``sum E_ij x_ij`` subject to

- at most one programme per citizen: ``sum_j x_ij <= 1``;
- places: ``sum_i x_ij <= P_j``; budget: ``sum_ij c_j x_ij <= B``;
- only citizens expected to benefit get a place: ``x_ij = 0`` unless
  ``E_ij > beneficiary_threshold``;
- optional group constraints (``groups``: one label per citizen):

  * ``min_share[g]``: group ``g`` gets at least that share of the places given,
    ``A_g >= s_g * sum_h A_h`` with ``A_g`` the places given to group ``g``;
  * ``max_access_gap``: among those expected to benefit (``max_j E_ij > threshold``;
    ``N_g`` of them in group ``g``), the access rates ``A_g / N_g`` of any two groups differ
    by at most the gap.

How it is solved (scipy's HiGHS, no hand-made solver)
-----------------------------------------------------
1. **Exact reduction of the candidates.** Let ``K`` be the most places that can be given
   (``sum P_j``, and ``B / min c_j`` when costs are positive). In some optimal solution,
   citizen ``i`` can only get programme ``j`` if fewer than ``K`` citizens *of the same
   group* have a larger effect of ``j``: otherwise one of those is without a place (at most
   ``K - 1`` places are given to others), and swapping ``i`` for them keeps every
   constraint (same programme, so same cost; same group, so the same group counts) and does
   not lower the benefit. So only the top ``K`` per (group, programme) enter the program:
   with few places, a million citizens become a few hundred thousand variables.
2. **LP relaxation** with HiGHS (``scipy.optimize.linprog(method="highs")``). Without group
   constraints the matrix is that of a transportation problem with one extra (budget)
   row, and the vertex HiGHS returns is integral or has a handful of fractional entries.
3. If any entry is fractional, the same program is solved as a **MILP**
   (``scipy.optimize.milp``, HiGHS branch-and-cut).
4. **Exact check.** The rounded solution is checked with exact rational arithmetic
   (places, budget, shares, access gaps; costs and budget read as the decimals they print
   as, so 20 places at 0.05 fit a budget of 1.0); the share rows are written with integer
   coefficients (``q A_g - p sum A``, for ``s_g = p / q``) so the solver's tolerance cannot
   break them. If the budget or a gap row is broken by the solver's tolerance (1e-7), that
   row is tightened by the excess and the program solved again.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from numbers import Real
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from overblik.models._effects import check_numbers, check_whole

__all__ = ["Allocation", "PolicyComparison", "allocate", "allocate_by_rank",
           "allocation_benefit", "compare_policies", "price_of_fairness"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_MAX_DENOMINATOR = 10**6
_MAX_TIGHTEN = 5
EXACT_MILP_CANDIDATES = 100_000  # up to this many candidate pairs the MILP is exact
# What experiment files and /allocate accept: far above any municipality's numbers, and
# small enough that places times costs stay finite.
MAX_PLACES = 1_000_000
MAX_COST = 1e9
MAX_BUDGET = 1e15
Method = Literal["lp", "lp+milp", "milp", "none"]


@dataclass(frozen=True)
class Allocation:
    """An allocation of places and what it achieves.

    Attributes
    ----------
    assignment
        Per citizen, the programme index (column of ``effects``) or -1 for none.
    expected_benefit
        Sum of the effects of the assigned places (under the effects it was computed from).
    places_used
        Places given per programme.
    cost
        Total cost.
    group_places, group_beneficiaries
        Per group: places given, and citizens expected to benefit.
    status
        ``"optimal"``, or the solver's message when it stopped early.
    method
        ``"lp"`` (the relaxation was integral: optimal), ``"lp+milp"`` (the few fractional
        citizens re-solved as a MILP, the rest kept: at most ``upper_bound -
        expected_benefit`` from the optimum), ``"milp"`` (the whole program as a MILP), or
        ``"none"`` (nothing to give).
    upper_bound
        The LP relaxation's benefit: no allocation can do better.
    n_candidates
        Variables in the reduced program.
    seconds
        Wall time of the solve.
    """

    assignment: IntArray
    expected_benefit: float
    places_used: IntArray
    cost: float
    group_places: dict[Hashable, int] = field(default_factory=dict)
    group_beneficiaries: dict[Hashable, int] = field(default_factory=dict)
    status: str = "optimal"
    method: Method = "lp"
    upper_bound: float = float("nan")
    n_candidates: int = 0
    seconds: float = 0.0

    @property
    def group_shares(self) -> dict[Hashable, float]:
        """Per group: share of the places given (0 when none are given)."""
        total = sum(self.group_places.values())
        return {g: (a / total if total else 0.0) for g, a in self.group_places.items()}

    @property
    def group_access(self) -> dict[Hashable, float]:
        """Per group: places given / citizens expected to benefit (NaN with none)."""
        return {g: (self.group_places[g] / b if b else float("nan"))
                for g, b in self.group_beneficiaries.items()}

    def benefit_under(self, effects: npt.ArrayLike) -> float:
        """Total benefit of this assignment under other effects (e.g. the true ones)."""
        return allocation_benefit(self.assignment, effects)


def allocation_benefit(assignment: npt.ArrayLike, effects: npt.ArrayLike) -> float:
    """``sum_i effects[i, assignment[i]]`` over assigned citizens."""
    a = np.asarray(assignment, dtype=np.int64)
    e = np.asarray(effects, dtype=np.float64)
    given = np.flatnonzero(a >= 0)
    return float(e[given, a[given]].sum())


@dataclass(frozen=True)
class _Problem:
    effects: FloatArray
    places: IntArray
    costs: FloatArray
    budget: float
    group_code: IntArray  # 0..G-1
    group_labels: list[Hashable]
    min_share: dict[int, Fraction]
    max_access_gap: Fraction | None
    threshold: float

    @property
    def cost_unit(self) -> float:
        """The budget row's unit: the power of two nearest the largest cost (1 when every
        place is free); dividing by a power of two is exact, so the row keeps its ties."""
        largest = float(self.costs.max())
        return math.ldexp(1.0, math.frexp(largest)[1]) if largest > 0 else 1.0


def as_decimal(x: float) -> Fraction:
    """A cost or budget as the decimal it prints as, exactly: 20 places at 0.05 cost 1.0
    (in binary floating point they would cost a hair more and break a budget of 1.0)."""
    return Fraction(repr(float(x)))


def _check_effects(effects: npt.ArrayLike, name: str = "effects") -> FloatArray:
    """Finite effects of shape (citizens, programmes); one-dimensional: one programme."""
    e = np.asarray(effects, dtype=np.float64)
    if e.ndim == 1:
        e = e[:, None]
    if e.ndim != 2 or e.shape[1] == 0:
        raise ValueError(f"{name} must have shape (citizens, programmes), got {e.shape}")
    if not np.isfinite(e).all():
        i = int(np.flatnonzero(~np.isfinite(e).all(axis=1))[0])
        raise ValueError(f"{name} has a missing or infinite value for citizen {i}")
    return e


def _is_number(x: object) -> bool:
    return isinstance(x, Real) and not isinstance(x, bool)


def _check_capacity(places: npt.ArrayLike, costs: npt.ArrayLike, budget: float, m: int
                    ) -> tuple[IntArray, FloatArray, float]:
    """Places and costs of ``m`` programmes, and the budget, checked."""
    p = np.asarray(places)
    if (p.dtype.kind not in "iuf" or p.shape != (m,) or (p < 0).any()
            or not np.all(np.equal(np.mod(p, 1), 0))):
        raise ValueError(f"places must be {m} whole numbers >= 0 (one per programme), got "
                         f"{p.tolist()}")
    c = np.asarray(costs)
    if (c.dtype.kind not in "iuf" or c.shape != (m,) or not np.isfinite(c).all()
            or (c < 0).any()):
        raise ValueError(f"costs must be {m} finite numbers >= 0 (one per programme), got "
                         f"{c.tolist()}")
    # Only a number: an array budget would be compared row by row in the program.
    if not _is_number(budget) or math.isnan(budget) or budget < 0:
        raise ValueError(f"budget={budget!r}: give a number >= 0 (math.inf for no budget)")
    return p.astype(np.int64), c.astype(np.float64), float(budget)


def _check(effects: npt.ArrayLike, places: npt.ArrayLike, costs: npt.ArrayLike,
           budget: float, groups: npt.ArrayLike | None,
           min_share: Mapping[Hashable, float] | None, max_access_gap: float | None,
           threshold: float) -> _Problem:
    e = _check_effects(effects)
    n, m = e.shape
    p, c, budget = _check_capacity(places, costs, budget, m)
    if not _is_number(threshold) or math.isnan(threshold):
        raise ValueError(f"beneficiary_threshold={threshold!r}: give a number (0: everyone "
                         "with a positive effect may get a place)")
    if groups is None:
        code = np.zeros(n, dtype=np.int64)
        labels: list[Hashable] = ["all"]
        if min_share or max_access_gap is not None:
            raise ValueError("min_share and max_access_gap need groups= (one label per "
                             "citizen)")
    else:
        g = pd.Series(np.asarray(groups, dtype=object) if not hasattr(groups, "dtype")
                      else groups)
        if len(g) != n or g.isna().any():
            raise ValueError(f"groups must have one label per citizen ({n}) and no missing "
                             f"labels, got {len(g)} labels with {int(g.isna().sum())} missing")
        codes, uniques = pd.factorize(g, sort=True)
        code = codes.astype(np.int64)
        labels = list(uniques)
    shares: dict[int, Fraction] = {}
    for label, s in (min_share or {}).items():
        if label not in labels:
            raise ValueError(f"min_share names group {label!r}, which no citizen has; groups "
                             f"are {labels[:10]}")
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"min_share[{label!r}]={s}: give a share between 0 and 1")
        shares[labels.index(label)] = Fraction(float(s)).limit_denominator(_MAX_DENOMINATOR)
    if sum(shares.values(), Fraction(0)) > 1:
        raise ValueError(f"min_share adds up to more than 1 ({float(sum(shares.values()))}): "
                         "the groups cannot all get their share")
    gap = None
    if max_access_gap is not None:
        if not 0.0 <= max_access_gap <= 1.0:
            raise ValueError(f"max_access_gap={max_access_gap}: give a rate difference "
                             "between 0 and 1")
        gap = Fraction(float(max_access_gap))
    prob = _Problem(e, p, c, budget, code, labels, shares, gap, float(threshold))
    _check_shares_can_be_met(prob)
    return prob


def _check_shares_can_be_met(prob: _Problem) -> None:
    """Refuse a minimum share for a group nobody in which is expected to benefit: only
    they get places, so the share could only be met by giving no place at all."""
    benef = _beneficiaries(prob)
    for g, share in prob.min_share.items():
        if share > 0 and benef[g] == 0:
            raise ValueError(f"no one in group {prob.group_labels[g]!r} is expected to "
                             "benefit, so a minimum share for it can only be met by giving "
                             "no places: remove it or lower beneficiary_threshold")


def _candidates(prob: _Problem) -> tuple[IntArray, IntArray]:
    """(citizen, programme) pairs that can be in an optimal solution (module step 1)."""
    e = prob.effects
    m = e.shape[1]
    cap = int(prob.places.sum())
    positive = prob.costs[prob.costs > 0]
    if len(positive) == len(prob.costs) and math.isfinite(prob.budget):
        # In decimals: 0.5 // 0.025 is 19.0 in binary floating point, one place short.
        cap = min(cap, int(as_decimal(prob.budget) // as_decimal(positive.min())))
    rows: list[IntArray] = []
    cols: list[IntArray] = []
    if cap <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(prob.group_code, kind="stable")
    bounds = np.searchsorted(prob.group_code[order], np.arange(len(prob.group_labels) + 1))
    for j in range(m):
        if prob.places[j] == 0 or prob.costs[j] > prob.budget:
            continue
        for g in range(len(prob.group_labels)):
            members = order[bounds[g]: bounds[g + 1]]
            members = members[e[members, j] > prob.threshold]
            if len(members) > cap:
                top = np.argpartition(-e[members, j], cap - 1)[:cap]
                members = members[top]
            rows.append(members)
            cols.append(np.full(len(members), j, dtype=np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols)


def _beneficiaries(prob: _Problem) -> IntArray:
    benefit = prob.effects.max(axis=1) > prob.threshold
    return np.bincount(prob.group_code[benefit], minlength=len(prob.group_labels))


def _build(prob: _Problem, ci: IntArray, cj: IntArray, budget_rhs: float,
           gap_rhs: dict[tuple[int, int], float]
           ) -> tuple[FloatArray, sp.csr_matrix, FloatArray, FloatArray, FloatArray]:
    """Objective, rows ``lo <= A v <= hi`` and upper bounds of the reduced program.

    The variables are the candidate pairs ``x`` and, with group constraints, one count
    ``A_g`` per group (``A_g = sum of x in g``); the share and gap rows are written on the
    counts, so each touches a few variables instead of every candidate (dense rows slow
    the interior-point solver down by orders of magnitude).
    """
    nv = len(ci)
    m = prob.effects.shape[1]
    n_groups = len(prob.group_labels) if (prob.min_share or gap_rhs) else 0
    width = nv + n_groups
    rows: list[sp.coo_matrix] = []
    lo: list[FloatArray] = []
    hi: list[FloatArray] = []
    cols = np.arange(nv)

    def add(data: npt.ArrayLike, r: npt.ArrayLike, c: npt.ArrayLike, k: int,
            low: FloatArray, high: FloatArray) -> None:
        rows.append(sp.coo_matrix((np.asarray(data, dtype=np.float64), (r, c)),
                                  shape=(k, width)))
        lo.append(low)
        hi.append(high)

    # One place per citizen (only citizens with two or more candidate programmes need it).
    _, inv, count = np.unique(ci, return_inverse=True, return_counts=True)
    multi = count[inv] > 1
    if multi.any():
        _, row = np.unique(inv[multi], return_inverse=True)
        k = int(row.max()) + 1
        add(np.ones(int(multi.sum())), row, cols[multi], k, np.full(k, -np.inf), np.ones(k))
    add(np.ones(nv), cj, cols, m, np.full(m, -np.inf), prob.places.astype(np.float64))
    if math.isfinite(budget_rhs):
        # In units of about the largest cost: HiGHS refuses coefficients from 1e15 on as infinite,
        # and badly scaled rows lose precision; the row's solutions are the same.
        unit = prob.cost_unit
        add(prob.costs[cj] / unit, np.zeros(nv, dtype=np.int64), cols, 1,
            np.array([-np.inf]), np.array([budget_rhs / unit]))
    if n_groups:
        gcode = prob.group_code[ci]
        # A_g - sum_{v in g} x_v = 0
        add(np.concatenate([-np.ones(nv), np.ones(n_groups)]),
            np.concatenate([gcode, np.arange(n_groups)]),
            np.concatenate([cols, nv + np.arange(n_groups)]), n_groups,
            np.zeros(n_groups), np.zeros(n_groups))
        counts = nv + np.arange(n_groups)
        for g, share in prob.min_share.items():
            # q * A_g - p * sum_h A_h >= 0: integer coefficients, exact for integral x.
            coef = np.full(n_groups, -float(share.numerator))
            coef[g] += share.denominator
            add(coef, np.zeros(n_groups, dtype=np.int64), counts, 1, np.array([0.0]),
                np.array([np.inf]))
        benef = _beneficiaries(prob)
        for (g, h), rhs in gap_rhs.items():
            # A_g / N_g - A_h / N_h <= gap
            add([1.0 / benef[g], -1.0 / benef[h]], [0, 0], [nv + g, nv + h], 1,
                np.array([-np.inf]), np.array([rhs]))
    A = sp.vstack(rows, format="csr")
    upper = np.concatenate([np.ones(nv), np.full(n_groups, np.inf)])
    objective = np.concatenate([-prob.effects[ci, cj], np.zeros(n_groups)])
    return objective, A, np.concatenate(lo), np.concatenate(hi), upper


def _solve(c: FloatArray, A: sp.csr_matrix, lo: FloatArray, hi: FloatArray, upper: FloatArray,
           time_limit: float | None) -> tuple[FloatArray, str, Method, float]:
    """LP relaxation first; a MILP where it is fractional. Returns x, status, method and
    the LP bound (the best benefit any allocation can reach)."""
    finite_hi = np.isfinite(hi)
    finite_lo = np.isfinite(lo)
    limit: dict[str, Any] = {} if time_limit is None else {"time_limit": time_limit}
    # Interior point with crossover (a vertex), without presolve: measured 2 s against 45 s
    # for presolve + dual simplex on 100k citizens, whose presolve stalls on the many
    # near-duplicate columns of an assignment problem.
    eq = lo == hi
    A_ub = sp.vstack([A[finite_hi & ~eq], -A[finite_lo & ~eq]], format="csr")
    b_ub = np.concatenate([hi[finite_hi & ~eq], -lo[finite_lo & ~eq]])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A[eq] if eq.any() else None,
                  b_eq=hi[eq] if eq.any() else None,
                  bounds=np.column_stack([np.zeros(len(c)), upper]), method="highs-ipm",
                  options={"presolve": False, **limit})
    if res.x is None:
        raise RuntimeError(f"HiGHS found no allocation: {res.message}")
    x = np.asarray(res.x, dtype=np.float64)
    bound = -float(res.fun)
    status = "optimal" if res.status == 0 else str(res.message)
    frac = np.abs(x - np.round(x)) > 1e-6
    if not frac.any():
        return np.round(x), status, "lp", bound
    # Fractional entries. Up to EXACT_MILP_CANDIDATES candidate pairs, the whole (reduced)
    # program as a MILP: the optimum. Beyond, a MILP over the LP's support (every pair the
    # relaxation uses; the rest fixed at 0): small (about the number of places), always
    # feasible (giving nobody a place meets every row), within ``bound - benefit`` of the
    # optimum -- the seeded property tests found such gaps, hence the exact MILP first.
    binary = np.isfinite(upper)  # the candidate pairs; the group counts follow from them
    support = (x > 1e-6) | ~binary
    full = (Bounds(np.zeros(len(c)), upper), "milp")
    restricted = (Bounds(np.zeros(len(c)), np.where(support, upper, 0.0)), "lp+milp")
    attempts = [full, restricted] if binary.sum() <= EXACT_MILP_CANDIDATES else \
        [restricted, full]
    for bounds, method in attempts:
        mres = milp(c, integrality=binary.astype(np.int64), bounds=bounds,
                    constraints=LinearConstraint(A, lo, hi),
                    options={"mip_rel_gap": 1e-6, **limit})
        if mres.x is not None:
            return (np.round(np.asarray(mres.x, dtype=np.float64)),
                    "optimal" if mres.status == 0 else str(mres.message),
                    method, bound)  # type: ignore[return-value]
    raise RuntimeError(f"HiGHS found no integral allocation: {mres.message}")


def _violations(prob: _Problem, assignment: IntArray
                ) -> tuple[Fraction, dict[tuple[int, int], Fraction]]:
    """Exact excess over the budget and over each gap (0 when met), and checks the rest."""
    m = prob.effects.shape[1]
    given = assignment >= 0
    used = np.bincount(assignment[given], minlength=m)
    if (used > prob.places).any():
        raise AssertionError("allocation breaks places")  # integral rows: cannot happen
    spent = sum((as_decimal(prob.costs[j]) * int(used[j]) for j in range(m)), Fraction(0))
    budget_excess = (max(Fraction(0), spent - as_decimal(prob.budget))
                     if math.isfinite(prob.budget) else Fraction(0))
    a = np.bincount(prob.group_code[given], minlength=len(prob.group_labels))
    total = int(a.sum())
    for g, s in prob.min_share.items():
        if Fraction(int(a[g])) < s * total:
            raise AssertionError("allocation breaks a share")  # integral rows: cannot happen
    gaps: dict[tuple[int, int], Fraction] = {}
    if prob.max_access_gap is not None:
        benef = _beneficiaries(prob)
        for g, h in _gap_pairs(benef):
            diff = Fraction(int(a[g]), int(benef[g])) - Fraction(int(a[h]), int(benef[h]))
            gaps[(g, h)] = max(Fraction(0), diff - prob.max_access_gap)
    return budget_excess, gaps


def _gap_pairs(benef: IntArray) -> list[tuple[int, int]]:
    have = [g for g in range(len(benef)) if benef[g] > 0]
    return [(g, h) for g in have for h in have if g != h]


def allocate(effects: npt.ArrayLike, *, places: npt.ArrayLike, costs: npt.ArrayLike,
             budget: float, groups: npt.ArrayLike | None = None,
             min_share: Mapping[Hashable, float] | None = None,
             max_access_gap: float | None = None, beneficiary_threshold: float = 0.0,
             time_limit: float | None = None) -> Allocation:
    """The allocation with the largest expected total benefit (see the module docstring).

    Parameters
    ----------
    effects : array-like of shape (n, m)
        Expected benefit of each programme for each citizen (positive = helps).
    places : array-like of shape (m,)
        Whole numbers of places per programme.
    costs : array-like of shape (m,)
        Cost of one place per programme.
    budget : float
        Total budget (``math.inf`` for none).
    groups : array-like of shape (n,), optional
        Group label of each citizen (needed by the group constraints).
    min_share : mapping of group -> share, optional
        Least share of the places given that goes to the group.
    max_access_gap : float, optional
        Largest difference between groups' access rates among those expected to benefit.
        0 demands exactly equal access rates: with groups of unequal sizes that may allow
        only a few places (or none).
    beneficiary_threshold : float, default 0
        A citizen is expected to benefit from a programme when its effect is above this;
        nobody else gets a place.
    time_limit : float, optional
        Seconds HiGHS may use per solve.

    Returns
    -------
    Allocation

    Raises
    ------
    ValueError
        On malformed inputs, shares that cannot all be met, or a minimum share for a group
        in which no one is expected to benefit.
    """
    began = time.perf_counter()
    prob = _check(effects, places, costs, budget, groups, min_share, max_access_gap,
                  beneficiary_threshold)
    n, m = prob.effects.shape
    benef = _beneficiaries(prob)
    ci, cj = _candidates(prob)
    assignment = np.full(n, -1, dtype=np.int64)
    status: str = "optimal"
    method: Method = "none"
    bound = 0.0
    if len(ci):
        budget_rhs = prob.budget
        gap_rhs = ({pair: float(prob.max_access_gap) for pair in _gap_pairs(benef)}
                   if prob.max_access_gap is not None else {})
        for _ in range(_MAX_TIGHTEN):
            c, A, lo, hi, upper = _build(prob, ci, cj, budget_rhs, gap_rhs)
            v, status, method, bound = _solve(c, A, lo, hi, upper, time_limit)
            x = v[: len(ci)]
            chosen = np.flatnonzero(x > 0.5)
            assignment[:] = -1
            assignment[ci[chosen]] = cj[chosen]
            budget_excess, gap_excess = _violations(prob, assignment)
            if budget_excess == 0 and not any(gap_excess.values()):
                break
            # The solver's tolerance let a row through by a hair: tighten it and resolve.
            if budget_excess:
                # By more than HiGHS's feasibility tolerance (1e-7) in the row's unit; a step
                # in absolute terms would overshoot a budget in small units.
                budget_rhs -= float(budget_excess) + 1e-6 * prob.cost_unit
            for pair, excess in gap_excess.items():
                if excess:
                    gap_rhs[pair] = max(0.0, gap_rhs[pair] - float(excess) - 1e-12)
        else:
            raise RuntimeError("the allocation still breaks the budget or an access gap "
                               "after tightening; report this problem")
    given = assignment >= 0
    used = np.bincount(assignment[given], minlength=m).astype(np.int64)
    a = np.bincount(prob.group_code[given], minlength=len(prob.group_labels))
    return Allocation(
        assignment=assignment,
        expected_benefit=allocation_benefit(assignment, prob.effects),
        places_used=used,
        cost=float(math.fsum(float(prob.costs[j]) * int(used[j]) for j in range(m))),
        group_places={lbl: int(a[k]) for k, lbl in enumerate(prob.group_labels)},
        group_beneficiaries={lbl: int(benef[k]) for k, lbl in enumerate(prob.group_labels)},
        status=status, method=method, upper_bound=bound, n_candidates=len(ci),
        seconds=time.perf_counter() - began)


def _check_order(order: npt.ArrayLike, n: int) -> IntArray:
    """Citizen indices in ``0 .. n - 1``, each at most once."""
    o = np.asarray(order)
    if o.ndim != 1 or (o.size and o.dtype.kind not in "iu"):
        raise ValueError(f"order must be citizen indices (whole numbers), got {o.dtype} "
                         f"values of shape {o.shape}")
    outside = (o < 0) | (o >= n)
    if outside.any():
        raise ValueError(f"order has index {o[outside][0]}, outside 0 .. {n - 1} (n={n})")
    values, counts = np.unique(o, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"order has citizen {values[counts > 1][0]} more than once: give "
                         "each citizen once")
    return o.astype(np.int64)


def allocate_by_rank(order: npt.ArrayLike, *, n: int, places: npt.ArrayLike,
                     costs: npt.ArrayLike, budget: float, random_state: int = 0) -> IntArray:
    """Fill places down a ranking, each citizen to a programme drawn by places left.

    What a municipality does without effect estimates: rank citizens (by risk, or at
    random), and offer the next one a place in some programme with room, until places or
    budget run out.

    Parameters
    ----------
    order : array-like of int
        Citizen indices (``0 .. n - 1``, each at most once), best first.
    n : int
        Number of citizens.
    places, costs, budget
        As in :func:`allocate`.
    random_state : int, default 0

    Returns
    -------
    ndarray of shape (n,)
        Programme index per citizen, -1 for none.
    """
    n = check_whole(n, "n", minimum=0)
    ranked = _check_order(order, n)
    left, c, money = _check_capacity(places, costs, budget, np.size(places))
    rng = np.random.default_rng(random_state)
    out = np.full(n, -1, dtype=np.int64)
    for i in ranked:
        ok = (left > 0) & (c <= money + 1e-12)
        if not ok.any():
            break
        weights = np.where(ok, left, 0).astype(np.float64)
        j = int(rng.choice(len(left), p=weights / weights.sum()))
        out[i] = j
        left[j] -= 1
        money -= c[j]
    return out


@dataclass(frozen=True)
class PolicyComparison:
    """Benefit of allocation policies, judged by one set of effects.

    ``benefit[name]`` is the total benefit of the policy's places under ``judged_by``
    effects: the truth on synthetic data; doubly-robust scores of held-out rows (unbiased
    per row, noisy); imputed effects of held-out untreated rows (the outcome predicted with
    the programme by models fitted on other rows, minus the outcome observed without it);
    or the estimates themselves, which flatters the estimate-based policy.
    ``share_of_oracle`` is set when the truth is known.
    """

    benefit: dict[str, float]
    places: dict[str, int]
    judged_by: Literal["truth", "doubly_robust", "imputed", "estimates"]

    @property
    def share_of_oracle(self) -> dict[str, float]:
        """Benefit as a share of the oracle's (empty without the truth)."""
        oracle = self.benefit.get("oracle")
        if not oracle:
            return {}
        return {k: v / oracle for k, v in self.benefit.items()}

    def as_rows(self) -> list[dict[str, object]]:
        """One dict per policy (for tables and MLflow)."""
        shares = self.share_of_oracle
        return [{"policy": k, "benefit": v, "places": self.places[k],
                 "share_of_oracle": shares.get(k, float("nan"))}
                for k, v in self.benefit.items()]


def compare_policies(estimated: npt.ArrayLike, *, places: npt.ArrayLike, costs: npt.ArrayLike,
                     budget: float, risk: npt.ArrayLike | None = None,
                     true_effects: npt.ArrayLike | None = None,
                     judge: npt.ArrayLike | None = None,
                     judge_kind: Literal["doubly_robust", "imputed"] = "doubly_robust",
                     random_state: int = 0) -> PolicyComparison:
    """Allocate by estimated effect, by risk, at random and (with the truth) as the oracle.

    Parameters
    ----------
    estimated : array-like of shape (n, m)
        Estimated effects (the LP allocates by these).
    places, costs, budget
        As in :func:`allocate`.
    risk : array-like of shape (n,), optional
        Risk score (higher = more at risk): the ``risk`` policy fills places from the top.
    true_effects : array-like of shape (n, m), optional
        The truth (synthetic data): judges every policy and gives the ``oracle`` policy.
    judge : array-like of shape (n, m), optional
        Without the truth: what judges the policies instead of the estimates, e.g. the
        doubly-robust scores of held-out rows (each row's score per programme).
    judge_kind : {"doubly_robust", "imputed"}, default "doubly_robust"
        What ``judge`` holds (see :class:`PolicyComparison`).
    random_state : int, default 0
    """
    est = _check_effects(estimated, "estimated")
    n = len(est)
    judged_by: Literal["truth", "doubly_robust", "imputed", "estimates"] = "estimates"
    judging = est
    if true_effects is not None:
        judged_by, judging = "truth", _check_effects(true_effects, "true_effects")
    elif judge is not None:
        judged_by, judging = judge_kind, _check_effects(judge, "judge")
    if judging.shape != est.shape:
        raise ValueError(f"the effects judging the policies have shape {judging.shape}, the "
                         f"estimates {est.shape}: give one value per citizen and programme")
    assignments: dict[str, IntArray] = {
        "effect": allocate(est, places=places, costs=costs, budget=budget).assignment}
    if risk is not None:
        order = np.argsort(-check_numbers(risk, n, "risk", rows="estimated"), kind="stable")
        assignments["risk"] = allocate_by_rank(order, n=n, places=places, costs=costs,
                                               budget=budget, random_state=random_state)
    perm = np.random.default_rng(random_state).permutation(n)
    assignments["random"] = allocate_by_rank(perm, n=n, places=places, costs=costs,
                                             budget=budget, random_state=random_state + 1)
    if true_effects is not None:
        assignments["oracle"] = allocate(judging, places=places, costs=costs,
                                         budget=budget).assignment
    return PolicyComparison(
        benefit={k: allocation_benefit(a, judging) for k, a in assignments.items()},
        places={k: int((a >= 0).sum()) for k, a in assignments.items()},
        judged_by=judged_by)


def price_of_fairness(effects: npt.ArrayLike, *, places: npt.ArrayLike, costs: npt.ArrayLike,
                      budget: float, groups: npt.ArrayLike,
                      min_share: Mapping[Hashable, float] | None = None,
                      max_access_gap: float | None = None, beneficiary_threshold: float = 0.0,
                      ) -> dict[str, float]:
    """Expected benefit given up for each group constraint, alone and together.

    Returns
    -------
    dict
        ``unconstrained`` (benefit), and for ``min_share``, ``max_access_gap`` and ``both``
        (those given) the benefit with the constraint and ``price_<name>`` = unconstrained
        minus constrained (>= 0 up to solver tolerance).
    """
    common: dict[str, Any] = {"places": places, "costs": costs, "budget": budget,
                              "groups": groups, "beneficiary_threshold": beneficiary_threshold}
    base = allocate(effects, **common).expected_benefit
    out = {"unconstrained": base}
    variants: list[tuple[str, dict[str, Any]]] = []
    if min_share:
        variants.append(("min_share", {"min_share": min_share}))
    if max_access_gap is not None:
        variants.append(("max_access_gap", {"max_access_gap": max_access_gap}))
    if min_share and max_access_gap is not None:
        variants.append(("both", {"min_share": min_share, "max_access_gap": max_access_gap}))
    for name, extra in variants:
        value = allocate(effects, **common, **extra).expected_benefit
        out[name] = value
        out[f"price_{name}"] = base - value
    return out
