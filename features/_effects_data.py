"""Effects datasets: who was offered which programme at an as-of date, and what followed.

``build_effects_dataset(tables, spec, ...)`` makes one row per (person, as-of date) of a
cohort, from the clean data only (never from ``truth/``):

- ``X``: the point-in-time profile (events strictly before the as-of date);
- ``programme``: the programme whose ``<programme>_start`` event falls in
  ``[as_of, as_of + start_window_days)`` ("started at the as-of date"), else ``"none"``;
  in the synthetic municipality places are filled on each quarter's first day, so this is
  the quarter's allocation;
- ``y``: the *good* outcome, ``1 - label`` (not placed within the horizon / left the
  benefit spell within it), so an effect is an increase in the probability of the good
  outcome: positive = the programme helps, as the truth's ``effect_<programme>``.

Rows that could not have been offered a place are left out, because their chance of
treatment is zero by rule (no overlap) rather than by choice:

- persons already in a programme at the as-of date (a ``<programme>_start`` without its
  ``_end`` before the as-of date, for any programme of the catalogue);
- in ``children_in_families``: children who turn 18 within ``CHILD_MARGIN_DAYS`` days (a
  six-month family-support course must end before the 18th birthday).

The control rows include persons who start a programme later in the horizon (practice
as usual): the effect estimated is that of starting now against not starting now.

``true_effects(truth, rows, ...)`` joins the synthetic truth to the rows for *evaluation
only*; nothing in this builder or in training calls it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from overblik.features._cohorts import COHORT_OUTCOME, CohortName, cohort, label
from overblik.features._contracts import SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._feature_spec import FeatureDef, FeatureSpec
from overblik.features._profiles import build_profiles
from overblik.features._synthetic import PROGRAMMES
from overblik.features._tables import (
    DAY_NS,
    EventTables,
    completed_years,
    person_codes,
    register_arrays,
    source_arrays,
    spell_intervals,
)

__all__ = ["CHILD_MARGIN_DAYS", "CONTROL", "EffectsDataset", "build_effects_dataset",
           "programme_catalogue", "true_effects"]

CONTROL = "none"
CHILD_MARGIN_DAYS = 215  # six months of support plus a month's slack before turning 18
_SILO = {p.name: p.silo for p in PROGRAMMES}
_OUTCOME = {p.name: p.outcome for p in PROGRAMMES}


def programme_catalogue(outcome: str) -> list[str]:
    """The programmes that act on an outcome (e.g. ``long_term_benefit``)."""
    return [p.name for p in PROGRAMMES if p.outcome == outcome]


@dataclass(frozen=True)
class EffectsDataset:
    """Rows of an effects analysis.

    Attributes
    ----------
    rows
        ``person_id``, ``as_of`` (one row per person and as-of date, in cohort order).
    X
        Features (float columns), positional like ``rows``.
    programme
        Programme started at the as-of date, or ``"none"``.
    y
        Good outcome (1 = no placement / left benefit within the horizon).
    sensitive
        Protected attributes for audits (sex, age_band, origin, district, disability).
    features
        Feature definitions in column order.
    programmes
        The programmes of the analysis (the contrasts), in order.
    outcome
        The outcome whose complement is ``y``.
    excluded
        Rows left out and why: ``{"in_programme": n, "turns_18": n}``.
    """

    rows: pd.DataFrame
    X: pd.DataFrame
    programme: np.ndarray
    y: np.ndarray
    sensitive: pd.DataFrame
    features: list[FeatureDef]
    programmes: list[str]
    outcome: str
    excluded: dict[str, int]

    def treatment(self, programme: str) -> np.ndarray:
        """0/1 for one programme among its own rows and the control rows (others: -1)."""
        out = np.full(len(self.programme), -1, dtype=np.int64)
        out[self.programme == CONTROL] = 0
        out[self.programme == programme] = 1
        return out


def _starts(tables: EventTables, programme: str) -> tuple[np.ndarray, np.ndarray]:
    """Person codes and times (ns) of a programme's start events, sorted by time."""
    silo = _SILO[programme]
    arr = source_arrays(tables, silo)
    code = list(SOURCE_BY_NAME[silo].event_codes).index(f"{programme}_start")
    sel = np.flatnonzero(arr.event_type == code)
    return arr.person[sel].astype(np.int64), arr.time[sel]


def build_effects_dataset(tables: EventTables, spec: FeatureSpec, *,
                          cohort_name: CohortName, as_of: Sequence[pd.Timestamp],
                          horizon_days: int, programmes: Sequence[str] | None = None,
                          start_window_days: int = 31) -> EffectsDataset:
    """Cohort rows with profiles, the programme started at the as-of date and the outcome.

    Parameters
    ----------
    tables
        Clean data (``EventTables.load(clean)``).
    spec
        Feature spec (``parse_feature_spec`` of an experiment's ``features:``).
    cohort_name
        ``children_in_families`` or ``adults_on_benefit``.
    as_of
        As-of dates.
    horizon_days
        Outcome horizon.
    programmes
        Programmes to contrast; default every programme acting on the cohort's outcome.
    start_window_days
        A start event in ``[as_of, as_of + start_window_days)`` counts as treatment.

    Raises
    ------
    InputError
        Unknown programme, a programme for another outcome, or a bad window.
    """
    outcome = COHORT_OUTCOME.get(cohort_name)
    if outcome is None:
        raise InputError(f"cohort {cohort_name!r} is not known; choose from "
                         f"{', '.join(COHORT_OUTCOME)}")
    chosen = list(programmes) if programmes is not None else programme_catalogue(outcome)
    for p in chosen:
        if p not in _SILO:
            raise InputError(f"programme {p!r} is not known; choose from {', '.join(_SILO)}")
        if _OUTCOME[p] != outcome:
            raise InputError(f"programme {p!r} acts on {_OUTCOME[p]}, not on {outcome} (the "
                             f"outcome of cohort {cohort_name}); choose from "
                             f"{', '.join(programme_catalogue(outcome))}")
    if start_window_days <= 0:
        raise InputError(f"start_window_days={start_window_days}: give a positive number")
    rows = cohort(tables, as_of, cohort_name)
    codes = _codes(tables, rows)
    t_ns = np.asarray(rows["as_of"], dtype="datetime64[ns]").view(np.int64)
    keep = np.ones(len(rows), dtype=bool)
    in_programme = np.zeros(len(rows), dtype=bool)
    for name in _SILO:  # any running programme blocks a new place
        sp = spell_intervals(tables, _SILO[name], f"{name}_start", (f"{name}_end",))
        for t in np.unique(t_ns).tolist():
            active = np.zeros(tables.n_persons, dtype=bool)
            active[sp.person[sp.active(t)]] = True
            sel = t_ns == t
            in_programme[sel] |= active[codes[sel]]
    keep &= ~in_programme
    turns_18 = np.zeros(len(rows), dtype=bool)
    if cohort_name == "children_in_families":
        birth = register_arrays(tables).birth_day[codes]
        later = (t_ns.astype("datetime64[ns]").astype("datetime64[D]")
                 + np.timedelta64(CHILD_MARGIN_DAYS, "D"))
        turns_18 = completed_years(birth, later) >= 18
        keep &= ~turns_18
    rows = rows.loc[keep].reset_index(drop=True)
    codes, t_ns = codes[keep], t_ns[keep]
    programme = np.full(len(rows), CONTROL, dtype=object)
    window = start_window_days * DAY_NS
    for name in chosen:
        person, time = _starts(tables, name)
        for t in np.unique(t_ns).tolist():
            lo, hi = np.searchsorted(time, [t, t + window], side="left")
            started = np.zeros(tables.n_persons, dtype=bool)
            started[person[lo:hi]] = True
            sel = np.flatnonzero((t_ns == t) & (programme == CONTROL))
            programme[sel[started[codes[sel]]]] = name
    y = 1 - label(tables, rows, outcome, horizon_days).to_numpy()  # type: ignore[arg-type]
    profiles = build_profiles(tables, rows, spec)
    return EffectsDataset(
        rows=rows, X=profiles.X.reset_index(drop=True), programme=programme.astype(str),
        y=y.astype(np.int64), sensitive=profiles.sensitive.reset_index(drop=True),
        features=profiles.features, programmes=chosen, outcome=outcome,
        excluded={"in_programme": int(in_programme.sum()), "turns_18": int(turns_18.sum())})


def _codes(tables: EventTables, rows: pd.DataFrame) -> np.ndarray:
    return person_codes(tables, rows["person_id"])


def true_effects(truth: Path, rows: pd.DataFrame, *, outcome: str,
                 programmes: Sequence[str]) -> pd.DataFrame:
    """The synthetic truth's effects for ``rows`` — for evaluation only, never training.

    Parameters
    ----------
    truth
        The ``truth/`` folder written by ``overblik generate`` (joined by the demo-key
        pseudonym: the clean data must be ingested with ``--demo-key``).
    rows
        ``person_id``, ``as_of``.
    outcome
        The outcome the effects act on.
    programmes
        Programmes whose ``effect_<programme>`` to return.

    Returns
    -------
    DataFrame
        Positional like ``rows``: ``effect_<programme>`` per programme, ``p_need``, and
        ``received_<programme>``; NaN where the truth has no row.

    Raises
    ------
    InputError
        When the truth file is missing or shares no rows.
    """
    path = Path(truth) / "truth.parquet"
    if not path.is_file():
        raise InputError(f"{path} does not exist: pass the truth/ folder written by "
                         "`overblik generate`")
    cols = ["person_id", "as_of", "outcome", "p_need",
            *(f"effect_{p}" for p in programmes), *(f"received_{p}" for p in programmes)]
    facts = pd.read_parquet(path, columns=cols)
    facts = facts[facts["outcome"] == outcome].drop(columns="outcome")
    facts["as_of"] = pd.to_datetime(facts["as_of"]).astype("datetime64[ns]")
    facts["person_id"] = facts["person_id"].astype(str)
    keys = pd.DataFrame({"person_id": rows["person_id"].astype(str).to_numpy(),
                         "as_of": pd.to_datetime(rows["as_of"]).astype("datetime64[ns]")
                         .to_numpy()})
    joined = keys.merge(facts, on=["person_id", "as_of"], how="left")
    if joined[f"effect_{programmes[0]}"].notna().sum() == 0:
        raise InputError(f"the truth in {truth} shares no rows with these rows: was the clean "
                         "data ingested from this municipality with --demo-key?")
    return joined.drop(columns=["person_id", "as_of"])
