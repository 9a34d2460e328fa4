"""Allocation bench: 1,000,000 citizens × 3 programmes must solve within a minute.

Prints, for the same problem: the LP/MILP allocation (``overblik.models`` ``allocate``,
HiGHS), with and without a minimum share for a small group, against a greedy peer (rank
citizens by their best effect and fill places down the list: what a municipality does
without an optimiser). Benefit is shown against the LP bound (no allocation can do better).
``BENCH_ALLOCATION_CITIZENS`` changes the size.
"""

from __future__ import annotations

import os
import time

import numpy as np

from overblik.models._allocation import allocate, allocate_by_rank, allocation_benefit
from tests.perf._measure import print_table

CITIZENS = int(os.environ.get("BENCH_ALLOCATION_CITIZENS", "1000000"))
LIMIT_SECONDS = 60.0


def test_one_million_citizens_three_programmes_within_a_minute() -> None:
    rng = np.random.default_rng(0)
    n = CITIZENS
    need = rng.gamma(2.0, 1.0, size=n)
    effects = np.column_stack([
        0.02 * need + rng.normal(0, 0.02, n),                        # aligned with need
        0.08 * np.exp(-((need - 2.0) ** 2)) + rng.normal(0, 0.02, n),  # helps the middle
        rng.normal(0.0, 0.02, n),                                     # helps nobody on average
    ])
    groups = rng.choice(["a", "b", "c"], size=n, p=[0.8, 0.15, 0.05])
    places = np.array([n // 50, n // 40, n // 100])
    costs = np.array([3.0, 1.0, 0.5])
    budget = float(0.8 * (places * costs).sum())
    rows, slow = [], []
    greedy_began = time.perf_counter()
    greedy = allocate_by_rank(np.argsort(-effects.max(axis=1), kind="stable"), n=n,
                              places=places, costs=costs, budget=budget)
    greedy_seconds = time.perf_counter() - greedy_began
    for label, kwargs in (("LP/MILP (HiGHS)", {}),
                          ("LP/MILP, group c >= 8% of places",
                           {"groups": groups, "min_share": {"c": 0.08}})):
        result = allocate(effects, places=places, costs=costs, budget=budget, **kwargs)
        rows.append([label, f"{result.seconds:.1f}", f"{result.expected_benefit:,.1f}",
                     f"{result.expected_benefit / result.upper_bound:.4f}", result.method,
                     f"{result.n_candidates:,}", f"{greedy_seconds / result.seconds:.2f}x"])
        if result.seconds > LIMIT_SECONDS:
            slow.append(f"{label}: {result.seconds:.1f} s")
        assert (result.places_used <= places).all() and result.cost <= budget
    rows.append(["greedy by best effect (peer)", f"{greedy_seconds:.1f}",
                 f"{allocation_benefit(greedy, effects):,.1f}", "", "", "", "1.00x"])
    print_table(f"Allocation: {n:,} citizens x 3 programmes, {places.sum():,} places "
                f"(limit {LIMIT_SECONDS:.0f} s)",
                ["policy", "seconds", "benefit", "of LP bound", "method", "candidates",
                 "speed vs greedy"], rows)
    assert not slow, f"over a minute: {slow}"
