"""Label bias: is a group's *recorded* outcome more frequent than its true risk?

A recorded outcome (a notification, a placement) reflects who is watched as much as who is
at risk: a group under more surveillance gets more of its outcomes recorded and looks
riskier, and a model trained on the records learns the surveillance. Where the true
probability of the outcome is known (the synthetic municipality's truth, or a careful
external study), the standardised ratio per group

    recorded outcomes / expected outcomes = sum(recorded) / sum(true probability)

shows it: about 1 when records follow risk, above 1 for an over-recorded group. Its
interval is the exact Poisson interval of a standardised incidence ratio (Garwood), which
treats rows as independent: for persons seen at several overlapping as-of dates it is too
narrow, so pass as-of dates at least one horizon apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import chi2

from overblik.fairness._audit import _labels, _scores, _sensitive
from overblik.fairness._groups import build_groups
from overblik.features._errors import InputError

__all__ = ["LabelBiasGroup", "LabelBiasReport", "label_bias_diagnostics"]


@dataclass(frozen=True)
class LabelBiasGroup:
    """Recorded against true outcome rate of one group.

    ``n`` is 0 and the numbers NaN when the group is suppressed (fewer than ``min_count``).
    """

    attribute: str
    group: str
    n: int
    suppressed: bool
    recorded_rate: float
    true_rate: float
    ratio: float
    ratio_ci_low: float
    ratio_ci_high: float


@dataclass(frozen=True)
class LabelBiasReport:
    """Label-bias diagnostics of every group (and the whole population, attribute ``""``)."""

    overall: LabelBiasGroup
    groups: tuple[LabelBiasGroup, ...]
    min_count: int
    confidence: float

    def table(self) -> pd.DataFrame:
        """One row per group; a suppressed group has ``n`` and every number missing."""
        frame = pd.DataFrame.from_records(
            [{"attribute": g.attribute, "group": g.group,
              "n": pd.NA if g.suppressed else g.n,
              "recorded_rate": g.recorded_rate, "true_rate": g.true_rate, "ratio": g.ratio,
              "ratio_ci_low": g.ratio_ci_low, "ratio_ci_high": g.ratio_ci_high}
             for g in self.groups],
            columns=["attribute", "group", "n", "recorded_rate", "true_rate", "ratio",
                     "ratio_ci_low", "ratio_ci_high"])
        return frame.astype({"n": "Int64"})

    def group(self, attribute: str, group: str) -> LabelBiasGroup:
        """The row of one group."""
        for g in self.groups:
            if g.attribute == attribute and g.group == group:
                return g
        raise KeyError(f"no group {attribute}={group!r} in the label-bias report")


def _poisson_ratio(observed: float, expected: float, confidence: float
                   ) -> tuple[float, float]:
    """Exact (Garwood) interval of observed / expected with a Poisson observed count."""
    if expected <= 0:
        return math.nan, math.nan
    alpha = 1.0 - confidence
    low = 0.0 if observed == 0 else chi2.ppf(alpha / 2, 2 * observed) / 2
    high = chi2.ppf(1 - alpha / 2, 2 * (observed + 1)) / 2
    return float(low / expected), float(high / expected)


def label_bias_diagnostics(recorded: npt.ArrayLike, true_probability: npt.ArrayLike,
                           sensitive: pd.DataFrame, *, min_count: int = 20,
                           confidence: float = 0.95, intersections: bool = False
                           ) -> LabelBiasReport:
    """Recorded outcome rate against the mean true probability, per group.

    Parameters
    ----------
    recorded : array-like of shape (n,)
        Recorded outcomes (the labels), 0/1 or bool.
    true_probability : array-like of shape (n,)
        The true probability of the outcome for each row, in [0, 1].
    sensitive : DataFrame
        Attributes of the rows (matched by position); missing values form ``"(missing)"``.
    min_count : int, default 20
        Groups with fewer rows are suppressed.
    confidence : float, default 0.95
        Coverage of the ratio's interval.
    intersections : bool, default False
        Also every pair of attributes.

    Returns
    -------
    LabelBiasReport
        Per group: ``recorded_rate``, ``true_rate`` and ``ratio`` = recorded / true with
        its interval; a ratio above 1 whose interval excludes 1 means over-recording.
    """
    y = _labels(recorded, "recorded")
    n = len(y)
    if n == 0:
        raise InputError("nothing to check: recorded has no rows")
    p = _scores(true_probability, n, "true_probability", labels="recorded")
    if ((p < 0) | (p > 1)).any():
        i = int(np.flatnonzero((p < 0) | (p > 1))[0])
        raise InputError(f"true_probability: {p[i]} at row {i} is not a probability in [0, 1]")
    if isinstance(min_count, bool) or int(min_count) != min_count or min_count < 1:
        raise InputError(f"min_count={min_count!r}: give a whole number >= 1, e.g. 20")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence={confidence!r}: give a level between 0 and 1, e.g. 0.95")
    index = build_groups(_sensitive(sensitive, n, labels="recorded"),
                         intersections=intersections)
    rows: list[LabelBiasGroup] = []
    for g in index.groupings:
        k = len(g.names)
        observed = np.bincount(g.codes, weights=y.astype(np.float64), minlength=k)
        expected = np.bincount(g.codes, weights=p, minlength=k)
        for code, name in enumerate(g.names):
            size = int(g.counts[code])
            if size < min_count:
                rows.append(LabelBiasGroup(g.attribute, name, 0, True, *([math.nan] * 5)))
                continue
            low, high = _poisson_ratio(float(observed[code]), float(expected[code]), confidence)
            ratio = observed[code] / expected[code] if expected[code] > 0 else math.nan
            rows.append(LabelBiasGroup(
                attribute=g.attribute, group=name, n=size, suppressed=False,
                recorded_rate=float(observed[code] / size),
                true_rate=float(expected[code] / size), ratio=float(ratio),
                ratio_ci_low=low, ratio_ci_high=high))
    return LabelBiasReport(overall=rows[0], groups=tuple(rows[1:]), min_count=int(min_count),
                           confidence=float(confidence))
