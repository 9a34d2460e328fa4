"""Cohorts (who is scored at an as-of date) and labels (what happens in the horizon after).

Definitions, from the clean register and events only (never from the truth):

- living in the municipality at ``as_of``: moved in before ``as_of`` and neither moved out
  nor died before it (register dates are days: a date known at ``as_of`` is strictly before
  it, like an event);
- age in completed years at ``as_of`` (a 29 February birthday counts on 1 March);
- ``children_in_families``: under 18, living in the municipality, and not in an
  out-of-home placement at ``as_of`` (placement spells: ``placement_start`` ->
  ``placement_end``);
- ``adults_on_benefit``: aged 18-64, living in the municipality, on a benefit spell at
  ``as_of`` (the last ``benefit_start`` before ``as_of`` not followed by ``benefit_end`` or
  ``job_start`` before it).

Labels look at ``[as_of, label_window_end(as_of, horizon_days)]``: features use events
strictly before ``as_of``, so an event at ``as_of`` exactly belongs to the label, and no
event falls between the two.

- ``child_placement``: a ``placement_start`` in the label window;
- ``long_term_benefit``: the benefit spell active at ``as_of`` has no ``benefit_end`` or
  ``job_start`` in the label window (rows without an active spell get 0). A spell closed
  by moving out or death (the register closes it with a ``benefit_end`` at that date) is
  not long-term, as in the truth of the synthetic municipality.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.features._contracts import SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._profiles import check_rows
from overblik.features._tables import (
    DAY_NS,
    EventTables,
    completed_years,
    register_arrays,
    source_arrays,
    spell_intervals,
)

__all__ = ["COHORT_OUTCOME", "CohortName", "OutcomeName", "cohort", "label",
           "label_window_end"]

CohortName = Literal["children_in_families", "adults_on_benefit"]
OutcomeName = Literal["child_placement", "long_term_benefit"]
COHORT_OUTCOME: dict[str, str] = {"children_in_families": "child_placement",
                                  "adults_on_benefit": "long_term_benefit"}
BENEFIT_SPELL = ("employment", "benefit_start", ("benefit_end", "job_start"))
PLACEMENT_SPELL = ("children_families", "placement_start", ("placement_end",))
Int = npt.NDArray[np.int64]


def label_window_end(as_of: pd.Timestamp, horizon_days: int) -> pd.Timestamp:
    """The last instant of the label window: ``as_of + horizon_days`` days (inclusive).

    The window is ``[as_of, as_of + horizon_days days]``; 365 days after 1 April 2023 is
    31 March 2024 (a leap year), not 1 April.
    """
    if horizon_days <= 0:
        raise InputError(f"horizon_days={horizon_days}: give a positive number of days, "
                         "e.g. 365")
    return pd.Timestamp(as_of) + pd.Timedelta(days=horizon_days)


def _as_of_ns(as_of: Sequence[pd.Timestamp]) -> list[int]:
    try:
        stamps = pd.to_datetime(pd.Series(list(as_of)))
    except (TypeError, ValueError) as exc:
        raise InputError(f"as_of: not dates ({exc}); give timestamps, e.g. "
                         "[pd.Timestamp('2024-01-01')]") from None
    if len(stamps) == 0 or stamps.isna().any():
        raise InputError("as_of: give at least one as-of date, and no missing ones")
    return [int(v) for v in np.asarray(stamps, dtype="datetime64[ns]").view(np.int64)]


def cohort(tables: EventTables, as_of: Sequence[pd.Timestamp],
           name: CohortName) -> pd.DataFrame:
    """The (person_id, as_of) rows of a cohort at each as-of date.

    Rows are ordered by as-of date (as given), then by the register's order.

    Raises
    ------
    InputError
        For an unknown cohort name or bad dates.
    """
    if name not in COHORT_OUTCOME:
        raise InputError(f"cohort {name!r} is not known; choose from "
                         f"{', '.join(COHORT_OUTCOME)}")
    reg = register_arrays(tables)
    spell = PLACEMENT_SPELL if name == "children_in_families" else BENEFIT_SPELL
    sp = spell_intervals(tables, spell[0], spell[1], spell[2])
    ids = tables.population["person_id"].to_numpy()
    frames: list[pd.DataFrame] = []
    for t in _as_of_ns(as_of):
        day = np.datetime64(t, "ns").astype("datetime64[D]")
        age = completed_years(reg.birth_day, np.full(tables.n_persons, day))
        on_spell = np.zeros(tables.n_persons, dtype=bool)
        on_spell[sp.person[sp.active(t)]] = True
        here = reg.present(t)
        if name == "children_in_families":
            member = here & (age < 18) & ~on_spell
        else:
            member = here & (age >= 18) & (age <= 64) & on_spell
        idx = np.flatnonzero(member)
        frames.append(pd.DataFrame({"person_id": ids[idx],
                                    "as_of": np.full(len(idx), np.datetime64(t, "ns"))}))
    return pd.concat(frames, ignore_index=True)


def label(tables: EventTables, rows: pd.DataFrame, outcome: OutcomeName,
          horizon_days: int) -> pd.Series:
    """0/1 outcome of each row within ``horizon_days`` after its as-of date.

    Returns
    -------
    pd.Series
        int64, aligned to ``rows`` (same index), named after the outcome.
    """
    if outcome not in ("child_placement", "long_term_benefit"):
        raise InputError(f"outcome {outcome!r} is not known; choose from child_placement, "
                         "long_term_benefit")
    if horizon_days <= 0:
        raise InputError(f"horizon_days={horizon_days}: give a positive number of days")
    codes, as_of = check_rows(tables, rows)
    y = np.zeros(len(codes), dtype=np.int64)
    horizon = horizon_days * DAY_NS
    if outcome == "child_placement":
        arr = source_arrays(tables, "children_families")
        starts = np.flatnonzero(arr.event_type == _code("children_families", "placement_start"))
        person, time = arr.person[starts], arr.time[starts]  # still sorted by time
        for t in np.unique(as_of).tolist():
            sel = np.flatnonzero(as_of == t)
            lo = np.searchsorted(time, t, side="left")
            hi = np.searchsorted(time, t + horizon, side="right")
            hit = np.bincount(person[lo:hi], minlength=tables.n_persons) > 0
            y[sel] = hit[codes[sel]]
    else:
        sp = spell_intervals(tables, *BENEFIT_SPELL)
        for t in np.unique(as_of).tolist():
            sel = np.flatnonzero(as_of == t)
            act = sp.active(t)
            end = np.full(tables.n_persons, -1, dtype=np.int64)  # -1: no active spell
            end[sp.person[act]] = sp.end[act]
            e = end[codes[sel]]
            y[sel] = e > t + horizon  # NEVER (still open) is after any window
    return pd.Series(y, index=rows.index, name=outcome, dtype=np.int64)


def _code(source: str, event_type: str) -> int:
    return list(SOURCE_BY_NAME[source].event_codes).index(event_type)
