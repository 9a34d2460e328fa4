"""Who gets places, per group, against who needs them.

An allocation of programme places is judged for fairness the way a risk model is: by
group. For every protected attribute and group the table shows the group's share of the
citizens in need (those with the bad outcome), its share of those expected to benefit, its
share of the places, and the share of its own citizens in need who got a place. A group
whose share of places is far below its share of need is being left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.fairness._groups import check_aligned

__all__ = ["PlacesGroup", "PlacesReport", "places_by_group"]


@dataclass(frozen=True)
class PlacesGroup:
    """One group's need, expected benefit and places (counts; shares over all groups)."""

    attribute: str
    group: str
    n: int
    in_need: int
    expected_to_benefit: int
    places: int
    places_in_need: int  # places given to the group's citizens in need
    suppressed: bool


@dataclass(frozen=True)
class PlacesReport:
    """Places against need for every group of every attribute."""

    groups: tuple[PlacesGroup, ...]
    total_in_need: int
    total_places: int
    min_count: int
    programmes: tuple[str, ...]

    def table(self) -> pd.DataFrame:
        """One row per group; a suppressed group has ``n`` and every number missing, and a
        share of fewer than ``min_count`` persons (its denominator) is missing."""
        records = []
        totals = {g.attribute: (sum(x.in_need for x in self.groups if x.attribute == g.attribute),
                                sum(x.expected_to_benefit for x in self.groups
                                    if x.attribute == g.attribute),
                                sum(x.places for x in self.groups if x.attribute == g.attribute))
                  for g in self.groups}
        few = self.min_count

        def share(part: int, whole: int) -> float:
            # A share of fewer than min_count persons tells about individuals (1 of the 8
            # children in need lives in D05): not shown, like a small group.
            return np.nan if whole < few else _share(part, whole)

        for g in self.groups:
            need, benefit, places = totals[g.attribute]
            hidden = g.suppressed
            records.append({
                "attribute": g.attribute, "group": g.group,
                "n": pd.NA if hidden else g.n,
                "need_share": np.nan if hidden else share(g.in_need, need),
                "benefit_share": np.nan if hidden else share(g.expected_to_benefit, benefit),
                "place_share": np.nan if hidden else share(g.places, places),
                "in_need_place_rate": np.nan if hidden else share(g.places_in_need,
                                                                  g.in_need),
            })
        frame = pd.DataFrame.from_records(
            records, columns=["attribute", "group", "n", "need_share", "benefit_share",
                              "place_share", "in_need_place_rate"])
        return frame.astype({"n": "Int64"})

    def group(self, attribute: str, group: str) -> PlacesGroup:
        """The row of one group."""
        for g in self.groups:
            if g.attribute == attribute and g.group == group:
                return g
        raise KeyError(f"no group {attribute}={group!r} in the places report")


def _share(part: int, whole: int) -> float:
    return float(part) / whole if whole else float("nan")


def places_by_group(assignment: npt.ArrayLike, in_need: npt.ArrayLike,
                    expected_to_benefit: npt.ArrayLike, sensitive: pd.DataFrame, *,
                    programmes: Sequence[str] = (), min_count: int = 20) -> PlacesReport:
    """Count need, expected benefit and places per group of every sensitive attribute.

    Parameters
    ----------
    assignment : array-like of shape (n,)
        Programme index given to each citizen, -1 for none (``Allocation.assignment``).
    in_need : array-like of bool, shape (n,)
        The citizen had the bad outcome (or is otherwise counted as in need).
    expected_to_benefit : array-like of bool, shape (n,)
        Some programme's estimated effect for the citizen is positive.
    sensitive : DataFrame
        One column per protected attribute, one row per citizen.
    programmes : sequence of str
        Programme names (for the report's text).
    min_count : int, default 20
        Groups with fewer citizens are suppressed (counts never shown).

    Raises
    ------
    ValueError
        When the arrays and the table differ in length (an ``InputError`` when pandas
        inputs are indexed differently).
    """
    check_aligned(sensitive, assignment=assignment, in_need=in_need,
                  expected_to_benefit=expected_to_benefit)
    given = np.asarray(assignment) >= 0
    need = np.asarray(in_need, dtype=bool)
    benefit = np.asarray(expected_to_benefit, dtype=bool)
    n = len(given)
    if not (len(need) == len(benefit) == len(sensitive) == n):
        raise ValueError(f"assignment ({n}), in_need ({len(need)}), expected_to_benefit "
                         f"({len(benefit)}) and sensitive ({len(sensitive)}) must have one "
                         "row per citizen")
    groups: list[PlacesGroup] = []
    for attribute in sensitive.columns:
        values = sensitive[attribute].astype("string").fillna("(missing)").to_numpy()
        for value in sorted(set(values.tolist())):
            sel = values == value
            size = int(sel.sum())
            groups.append(PlacesGroup(
                attribute=str(attribute), group=str(value), n=size,
                in_need=int(need[sel].sum()), expected_to_benefit=int(benefit[sel].sum()),
                places=int(given[sel].sum()), places_in_need=int((given & need)[sel].sum()),
                suppressed=size < min_count))
    return PlacesReport(groups=tuple(groups), total_in_need=int(need.sum()),
                        total_places=int(given.sum()), min_count=min_count,
                        programmes=tuple(programmes))
