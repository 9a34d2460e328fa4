"""The monthly simulation: latent states, demography, silo events, outcomes and programmes.

One step per month over all persons at once (numpy arrays, persons x 4 domains). Order
within month ``t``:

1. persons who arrived (moved in, were born) during month ``t-1`` become present;
2. departures (household moves out, deaths) are drawn first; open spells, placements and
   programmes of departing persons are closed at the departure date and they get no other
   events that month; births join the mother's household (present from next month);
3. the latent transient moves one AR(1) step;
4. programmes whose six months are over end; at a quarter start caseworkers fill places;
5. each silo's events are drawn from rates in the state (outcome hazards included).

Timing conventions: events fall on a random day of their month at an office hour (08-17,
never at midnight, so an event on an as-of date's first day is after ``as_of``); programme
enrolments at 08:00 on the quarter's first day; departures never on a month's first day
(their closing events are at the departure date); spells open at the window start are
recorded with a ``benefit_start`` at the window start (the extract's stock); placements end
at the latest the day before the 18th birthday.

Random streams are separate per purpose, so that changing ``label_bias`` leaves the latent
states, the demography and the *occurrence* draws of child-welfare events unchanged: only
the surveilled group's recorded counts move (attributes such as the reporter come from a
separate stream and may differ).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from overblik.features import _synthetic_model as m
from overblik.features._contracts import (
    APP_CODES,
    BENEFIT_TYPES,
    CHILDREN_FAMILIES_EVENTS,
    DIGITAL_EVENTS,
    ECONOMY_EVENTS,
    EMPLOYMENT_EVENTS,
    GRADES,
    HEALTH_EVENTS,
    ORIGIN_CODES,
    REPORTER_CODES,
    SCHOOL_EVENTS,
)
from overblik.features._synthetic_model import Arr
from overblik.features._synthetic_population import Population, add_years

if TYPE_CHECKING:
    from overblik.features._synthetic import SyntheticConfig

DAY = 86_400
_SQ = math.sqrt(1.0 - m.RHO**2)

FAMILY_SUPPORT, MENTOR, DEBT_COUNSELLING, JOB_COURSE = 0, 1, 2, 3
PROGRAMME_NAMES: tuple[str, ...] = ("family_support", "mentor", "debt_counselling", "job_course")
PROGRAMME_SILO: tuple[str, ...] = ("children_families", "employment", "economy", "employment")
ADULT_PROGRAMMES = (DEBT_COUNSELLING, MENTOR, JOB_COURSE)  # order in which places are filled

# Silo column layouts: categorical columns (code lists) and float columns.
SILO_CODES: dict[str, tuple[str, ...]] = {
    "children_families": tuple(CHILDREN_FAMILIES_EVENTS),
    "employment": tuple(EMPLOYMENT_EVENTS),
    "health": tuple(HEALTH_EVENTS),
    "schools": tuple(SCHOOL_EVENTS),
    "economy": tuple(ECONOMY_EVENTS),
    "digital": tuple(DIGITAL_EVENTS),
}
SILO_CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "children_families": {"reporter": REPORTER_CODES},
    "employment": {"benefit_type": BENEFIT_TYPES},
    "health": {},
    "schools": {},
    "economy": {},
    "digital": {"app": APP_CODES},
}
SILO_FLOATS: dict[str, tuple[str, ...]] = {
    "children_families": ("duration_days",),
    "employment": ("job_readiness", "duration_days"),
    "health": ("duration_days", "hours"),
    "schools": ("days", "grade"),
    "economy": ("amount_dkk",),
    "digital": ("score",),
}
UI, CASH, EDUCATION, SICKNESS = 0, 1, 2, 3
_BENEFIT_AMOUNT = np.array([18_500.0, 12_800.0, 7_200.0, 17_000.0])
_GRADE_CUTS = np.array([-1.9, -1.2, -0.5, 0.2, 1.0, 1.8])
_GRADES = np.array(GRADES, dtype=np.float32)
_DECAY = np.float32(0.9)  # caseworkers' memory of recorded events: ~10 months


def _sigmoid(x: Arr) -> Arr:
    return 1.0 / (1.0 + np.exp(-x))


def _poisson_inv(u: Arr, lam: Arr, kmax: int) -> Arr:
    """Poisson counts (capped at ``kmax``) by inverting the CDF at uniforms ``u``.

    Inversion keeps one uniform per person, so a changed rate for some persons does not
    shift the random stream of everybody else.
    """
    term = np.exp(-lam)
    cdf = term.copy()
    count = (u > cdf).astype(np.int64)
    for k in range(1, kmax):
        term = term * lam / k
        cdf = cdf + term
        count += u > cdf
    return count


class Sink:
    """Collects one silo's events month by month as numpy arrays."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.codes = SILO_CODES[name]
        self.cats = SILO_CATEGORIES[name]
        self.floats = SILO_FLOATS[name]
        self._parts: list[dict[str, Arr]] = []
        self._chunks: list[dict[str, Arr]] = []

    def code(self, event_type: str) -> int:
        return self.codes.index(event_type)

    def add(self, person: Arr, time: Arr, event_type: str, **cols: Arr | float | int) -> None:
        n = len(person)
        if n == 0:
            return
        part: dict[str, Arr] = {
            "person": np.asarray(person, dtype=np.int32),
            "time": np.broadcast_to(np.asarray(time, dtype=np.int64), (n,)).copy(),
            "event_type": np.full(n, self.code(event_type), dtype=np.int8),
        }
        for c in self.cats:
            part[c] = np.broadcast_to(np.asarray(cols.get(c, -1), dtype=np.int8), (n,)).copy()
        for c in self.floats:
            v = cols.get(c, np.nan)
            part[c] = np.broadcast_to(np.asarray(v, dtype=np.float32), (n,)).copy()
        unknown = set(cols) - set(self.cats) - set(self.floats)
        if unknown:
            raise KeyError(f"{self.name}: unknown columns {sorted(unknown)}")
        self._parts.append(part)

    def end_month(self) -> None:
        """Concatenate the month's events, ordered by time (then person) for tidy files."""
        if not self._parts:
            return
        month = {k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}
        order = np.lexsort((month["person"], month["time"]))
        self._chunks.append({k: v[order] for k, v in month.items()})
        self._parts = []

    def finish(self) -> dict[str, Arr]:
        self.end_month()
        keys = ["person", "time", "event_type", *self.cats, *self.floats]
        if not self._chunks:
            empty: dict[str, Arr] = {"person": np.zeros(0, np.int32), "time": np.zeros(0, np.int64),
                                     "event_type": np.zeros(0, np.int8)}
            empty.update({c: np.zeros(0, np.int8) for c in self.cats})
            empty.update({c: np.zeros(0, np.float32) for c in self.floats})
            return empty
        out = {k: np.concatenate([c[k] for c in self._chunks]) for k in keys}
        self._chunks = []
        return out


@dataclass
class Snapshot:
    """The cohorts and their state at one as-of month (for the truth)."""

    month: int
    child: Arr  # person index, children under 18, present and not placed
    child_a: Arr  # transient state at as_of (rows x 4)
    child_received: Arr  # int8 programme enrolled at as_of, -1 none
    benefit: Arr  # person index, adults 18-64 on a benefit spell
    benefit_a: Arr
    benefit_received: Arr


@dataclass
class SimResult:
    """What the writer and the truth need from the simulation."""

    pop: Population
    n_born: int
    mu: Arr  # persistent state (P x 4)
    bias: Arr  # float32 recorded-hazard multiplier per person (label bias)
    move_out_day: Arr  # int64 day, -1 none
    death_day: Arr  # int64 day, -1 none
    events: dict[str, dict[str, Arr]]
    snapshots: list[Snapshot]
    enrol_person: Arr
    enrol_programme: Arr
    enrol_month: Arr
    enrol_start: Arr  # int64 seconds
    enrol_end: Arr  # int64 seconds, -1 still running at the window end
    enrol_mult: Arr  # float32 hazard multiplier fixed at enrolment
    places: dict[str, dict[int, int]] = field(default_factory=dict)  # programme -> month -> n


class _Sim:
    """State and one method per step; see the module docstring for the order."""

    def __init__(self, cfg: SyntheticConfig, pop: Population, month_start_day: Arr,
                 streams: dict[str, np.random.Generator], asof_months: Sequence[int]) -> None:
        self.cfg = cfg
        self.pop = pop
        self.P = pop.size
        self.H = pop.n_households + 1  # incl. the dummy household of unborn slots
        self.msd = month_start_day.astype(np.int64)
        self.ms = self.msd * DAY
        self.months = len(month_start_day) - 1
        self.cal_month = (self.msd.astype("datetime64[D]").astype("datetime64[M]")
                          .astype(np.int64) % 12)
        self.r = streams
        self.asof = set(asof_months)
        P = self.P
        self.sinks = {name: Sink(name) for name in SILO_CODES}

        # Birthdays that bound age-gated events exactly (calendar dates, days since epoch).
        self._refresh_birthdays()
        self.present = np.zeros(P, dtype=bool)
        self.move_out_day = np.full(P, -1, dtype=np.int64)
        self.death_day = np.full(P, -1, dtype=np.int64)
        self.n_born = 0
        self.next_slot = pop.n_initial + pop.n_movein

        surveilled = np.isin(np.array(ORIGIN_CODES)[pop.origin], cfg.surveilled_group)
        self.bias = np.where(surveilled, cfg.label_bias, 1.0).astype(np.float32)

        # Latent factors: household (common + per domain), person (common + per domain).
        lat = self.r["latent"]
        self.hh_common = lat.standard_normal(self.H, dtype=np.float32)
        self.hh_domain = lat.standard_normal((self.H, 4), dtype=np.float32)
        self.p_common = lat.standard_normal(P, dtype=np.float32)
        self.p_domain = lat.standard_normal((P, 4), dtype=np.float32)
        self.mu = np.zeros((P, 4), dtype=np.float32)
        known = np.arange(pop.n_initial + pop.n_movein)
        start_age = (self.msd[0] - pop.birth_day[known]) / 365.25
        self._set_persistent(known, start_age)
        # Transient starts stationary: the same mix as the monthly shocks, at full scale.
        self.a = m.TRANSIENT_SD * self._shock(lat)
        self.care_u = lat.random(P, dtype=np.float32)  # persistent home-care propensity

        self.placed = np.zeros(P, dtype=bool)
        self.placement_start = np.zeros(P, dtype=np.int64)
        self.prev_until = np.zeros(P, dtype=np.int64)
        self.on_benefit = np.zeros(P, dtype=bool)
        self.on_at_start = np.zeros(P, dtype=bool)
        self.btype = np.zeros(P, dtype=np.int8)
        self.spell_start = np.zeros(P, dtype=np.int64)
        self.last_jr = np.zeros(P, dtype=np.int8)
        self.prog = np.full(P, -1, dtype=np.int8)
        self.prog_month = np.full(P, -1, dtype=np.int32)
        self.prog_start = np.zeros(P, dtype=np.int64)
        self.prog_mult = np.ones(P, dtype=np.float32)
        self.prog_id = np.full(P, -1, dtype=np.int64)
        self.upper_sec = np.zeros(P, dtype=bool)
        self.us_decided = np.zeros(P, dtype=bool)
        self.dropped = np.zeros(P, dtype=bool)
        self.apps = np.zeros((P, len(APP_CODES)), dtype=bool)
        # Recorded-event memory (what a caseworker sees), decaying monthly.
        self.c_notif = np.zeros(P, dtype=np.float32)
        self.c_inv = np.zeros(P, dtype=np.float32)
        self.c_absence = np.zeros(P, dtype=np.float32)
        self.c_psych = np.zeros(P, dtype=np.float32)
        self.c_emerg = np.zeros(P, dtype=np.float32)
        self.c_arrears = np.zeros(P, dtype=np.float32)
        self.c_grant = np.zeros(P, dtype=np.float32)

        self.enrol: dict[str, list[Arr]] = {k: [] for k in
                                             ("person", "programme", "month", "start", "mult")}
        self.n_enrol = 0
        self.enrol_end_id: list[Arr] = []
        self.enrol_end_time: list[Arr] = []
        self.places: dict[str, dict[int, int]] = {p: {} for p in PROGRAMME_NAMES}
        self.snapshots: list[Snapshot] = []

    # --- helpers ---------------------------------------------------------------------------
    def _refresh_birthdays(self) -> None:
        bd = self.pop.birth_day
        self.bd6, self.bd18, self.bd20 = add_years(bd, 6), add_years(bd, 18), add_years(bd, 20)
        self.bd65, self.bd66, self.bd67 = add_years(bd, 65), add_years(bd, 66), add_years(bd, 67)

    def _set_birthdays(self, idx: Arr) -> None:
        bd = self.pop.birth_day[idx]
        for name, k in (("bd6", 6), ("bd18", 18), ("bd20", 20), ("bd65", 65), ("bd66", 66),
                        ("bd67", 67)):
            getattr(self, name)[idx] = add_years(bd, k)

    def _set_persistent(self, idx: Arr, age: Arr) -> None:
        """Persistent need of persons ``idx`` from their household, district, age, origin."""
        pop = self.pop
        hh = pop.hh[idx]
        dep = m.DEPRIVATION[pop.hh_district[hh]]
        mu = (m.LOAD_HH_COMMON * self.hh_common[hh, None]
              + m.LOAD_HH_DOMAIN * self.hh_domain[hh]
              + m.LOAD_PERSON_COMMON * self.p_common[idx, None]
              + m.LOAD_PERSON_DOMAIN * self.p_domain[idx]
              + m.LOAD_DEPRIVATION * dep[:, None]
              + m.SINGLE_PARENT_SHIFT * pop.hh_single_parent[hh, None]
              + m.DISABILITY_SHIFT * pop.disability[idx, None]
              + m.ORIGIN_SHIFT[pop.origin[idx]]
              + m.age_shift(age))
        self.mu[idx] = mu.astype(np.float32)

    def _shock(self, rng: np.random.Generator) -> Arr:
        """Unit-variance shocks (P x 4): household-shared, person-common and own parts."""
        hh = rng.standard_normal(self.H, dtype=np.float32)
        common = rng.standard_normal(self.P, dtype=np.float32)
        own = rng.standard_normal((self.P, 4), dtype=np.float32)
        out: Arr = (m.SHOCK_HOUSEHOLD * hh[self.pop.hh, None]
                    + m.SHOCK_COMMON * common[:, None] + np.float32(m.SHOCK_OWN) * own)
        return out

    def _times(self, rng: np.random.Generator, t: int, n: int) -> Arr:
        """Event times in month ``t``: a random day and office hour (never at midnight)."""
        days = int(self.msd[t + 1] - self.msd[t])
        day = rng.integers(0, days, n)
        sec = rng.integers(8 * 3600, 17 * 3600, n)
        out: Arr = self.ms[t] + day * DAY + sec
        return out

    def _end_programme(self, idx: Arr, time: Arr) -> None:
        """Close running programmes of persons ``idx`` at ``time`` (end events + records)."""
        idx = np.asarray(idx)
        has = self.prog[idx] >= 0
        idx, time = idx[has], np.broadcast_to(time, has.shape)[has]
        if len(idx) == 0:
            return
        dur = (time - self.prog_start[idx]) / DAY
        for p, name in enumerate(PROGRAMME_NAMES):
            sel = self.prog[idx] == p
            if sel.any():
                self.sinks[PROGRAMME_SILO[p]].add(idx[sel], time[sel], f"{name}_end",
                                                  **({"duration_days": dur[sel]}
                                                     if PROGRAMME_SILO[p] != "economy" else {}))
        self.enrol_end_id.append(self.prog_id[idx].copy())
        self.enrol_end_time.append(np.asarray(time, dtype=np.int64).copy())
        self.prog[idx] = -1
        self.prog_id[idx] = -1
        self.prog_mult[idx] = 1.0

    def _job_readiness(self, rng: np.random.Generator, e: Arr) -> Arr:
        """Caseworker's job-readiness category (1-3) from employment distance plus noise."""
        v = e + rng.normal(0.0, 0.25, len(e))
        return np.where(v < 0.5, 1, np.where(v < 1.4, 2, 3)).astype(np.int8)

    def _benefit_type(self, rng: np.random.Generator, z: Arr, age: Arr) -> Arr:
        u = rng.random((len(age), 3))
        return np.where(
            (age < 30) & (u[:, 0] < 0.45), EDUCATION,
            np.where(u[:, 1] < _sigmoid(-1.6 + 1.1 * z[:, m.MENTAL]), SICKNESS,
                     np.where(u[:, 2] < _sigmoid(0.6 - 1.1 * z[:, m.EMPLOY]), UI, CASH)),
        ).astype(np.int8)

    # --- month steps -----------------------------------------------------------------------
    def run(self, progress: Callable[[str, int, int], None] | None) -> None:
        self._benefit_stock()
        for t in range(self.months):
            arrivals = self.pop.entry_month == t - 1
            self.present |= arrivals
            present0 = self.present.copy()
            placed0, on_benefit0 = self.placed.copy(), self.on_benefit.copy()
            self._demography(t)
            self.a = (np.float32(m.RHO) * self.a
                      + np.float32(_SQ) * m.TRANSIENT_SD * self._shock(self.r["latent"]))
            self.z = self.mu + self.a
            self._programme_ends(t)
            if self.cal_month[t] % 3 == 0:
                self._assign(t)
            if t in self.asof:
                self._snapshot(t, present0, placed0, on_benefit0)
            self._children_families(t)
            self._employment(t)
            self._health(t)
            self._schools(t)
            self._economy(t)
            self._digital(t)
            for sink in self.sinks.values():
                sink.end_month()
            if progress is not None:
                label = str(self.msd[t].astype("datetime64[D]").astype("datetime64[M]"))
                progress(f"simulating {label}", t + 1, self.months)

    def _benefit_stock(self) -> None:
        """Spells open at the window start, recorded as starting at the window start."""
        self.present |= self.pop.entry_month < 0
        self.z = self.mu + self.a
        idx = np.flatnonzero(self.present & (self.bd18 <= self.msd[0])
                             & (self.msd[1] <= self.bd65))
        z = self.z[idx]
        h_in = _sigmoid(self._start_index(z))
        h_out = _sigmoid(m.EXIT_B0 + z @ m.EXIT_W)
        on = self.r["employment"].random(len(idx)) < h_in / (h_in + h_out)
        self._start_spells(idx[on], np.full(int(on.sum()), self.ms[0] + 8 * 3600), 0)

    @staticmethod
    def _start_index(z: Arr) -> Arr:
        out: Arr = (-5.3 + 1.0 * z[:, m.EMPLOY] + 0.4 * z[:, m.ECON] + 0.4 * z[:, m.MENTAL])
        return out

    def _start_spells(self, idx: Arr, time: Arr, t: int) -> None:
        rng = self.r["employment_attr"]
        z = self.z[idx]
        age = (self.msd[t] - self.pop.birth_day[idx]) / 365.25
        bt = self._benefit_type(rng, z, age)
        jr = self._job_readiness(rng, z[:, m.EMPLOY])
        self.on_benefit[idx] = True
        self.btype[idx] = bt
        self.spell_start[idx] = time
        self.last_jr[idx] = jr
        self.sinks["employment"].add(idx, time, "benefit_start", benefit_type=bt,
                                     job_readiness=jr.astype(np.float32))

    def _demography(self, t: int) -> None:
        pop, rng = self.pop, self.r["demography"]
        days = int(self.msd[t + 1] - self.msd[t])
        age = (self.msd[t] - pop.birth_day) / 365.25
        moved_hh = rng.random(self.H) < m.MOVE_OUT_MONTHLY
        hh_day = rng.integers(1, days, self.H)  # never the 1st: closures fall after as_of
        dies = rng.random(self.P) < m.death_monthly(age)
        death_day = rng.integers(1, days, self.P)
        u_birth = rng.random(self.P)
        dying = self.present & dies
        moving = self.present & moved_hh[pop.hh] & ~dying
        self.death_day[dying] = self.msd[t] + death_day[dying]
        self.move_out_day[moving] = self.msd[t] + hh_day[pop.hh[moving]]
        leaving = np.flatnonzero(dying | moving)
        if len(leaving):
            when = np.where(dying[leaving], self.death_day[leaving],
                            self.move_out_day[leaving]) * DAY
            ben = self.on_benefit[leaving]
            li, lw = leaving[ben], when[ben]
            self.sinks["employment"].add(li, lw, "benefit_end", benefit_type=self.btype[li],
                                         duration_days=(lw - self.spell_start[li]) / DAY)
            pl = self.placed[leaving]
            li, lw = leaving[pl], when[pl]
            self.sinks["children_families"].add(
                li, lw, "placement_end", duration_days=(lw - self.placement_start[li]) / DAY)
            self._end_programme(leaving, when)
            self.on_benefit[leaving] = False
            self.placed[leaving] = False
            self.present[leaving] = False
        # Births: to present women 20-44; the child joins the mother's household.
        mothers = np.flatnonzero(self.present & (pop.sex == 0)
                                 & (u_birth < m.birth_monthly(age)))
        mothers = mothers[: max(0, pop.size - self.next_slot)]
        n = len(mothers)
        if n:
            kids = np.arange(self.next_slot, self.next_slot + n)
            self.next_slot += n
            self.n_born += n
            pop.hh[kids] = pop.hh[mothers]
            pop.birth_day[kids] = self.msd[t] + rng.integers(0, days, n)
            pop.move_in_day[kids] = pop.birth_day[kids]
            pop.sex[kids] = rng.random(n) < 0.51
            mo = pop.origin[mothers]
            pop.origin[kids] = np.where(mo == 0, 0, 2)  # children of immigrants: descendants
            pop.disability[kids] = rng.random(n) < 0.02
            pop.entry_month[kids] = t
            surveilled = np.isin(np.array(ORIGIN_CODES)[pop.origin[kids]],
                                 self.cfg.surveilled_group)
            self.bias[kids] = np.where(surveilled, self.cfg.label_bias, 1.0)
            self._set_birthdays(kids)
            self._set_persistent(kids, np.zeros(n))

    def _programme_ends(self, t: int) -> None:
        if t < m.PROGRAMME_MONTHS:
            return
        idx = np.flatnonzero((self.prog >= 0) & (self.prog_month == t - m.PROGRAMME_MONTHS))
        if len(idx):
            offset = self.prog_start[idx] - self.ms[t - m.PROGRAMME_MONTHS]
            last = self.ms[t + 1] - 3600
            self._end_programme(idx, np.minimum(self.ms[t] + offset, last))

    def _assign(self, t: int) -> None:
        """Caseworkers fill each programme's places from what they can see, plus noise.

        The score uses recorded events only (confounding); Gumbel noise on the score and a
        top-k draw give every eligible person a positive chance (overlap).
        """
        cfg, rng = self.cfg, self.r["assign"]
        ms = self.msd[t]
        age = (ms - self.pop.birth_day) / 365.25
        free = self.present & (self.prog < 0)
        # Children whose six months of support end before they turn 18 (events on 0-17s).
        kids = np.flatnonzero(free & ~self.placed & (self.bd18 > ms + 215))
        adults = np.flatnonzero(free & self.on_benefit & (self.bd18 <= ms) & (ms < self.bd65))
        n_adults = len(adults)
        spell_months = (self.ms[t] - self.spell_start) / (30.4 * DAY)

        def score(p: int, idx: Arr) -> Arr:
            if p == FAMILY_SUPPORT:
                return (0.9 * np.log1p(self.c_notif[idx]) + 0.8 * np.log1p(self.c_inv[idx])
                        + 0.6 * (self.prev_until[idx] > self.ms[t])
                        + 0.3 * np.log1p(self.c_absence[idx] / 5) + 0.2 * (age[idx] < 6))
            if p == MENTOR:
                return (0.6 * (self.last_jr[idx] == 2) + 0.3 * (self.last_jr[idx] == 3)
                        + 0.4 * np.log1p(self.c_psych[idx]) + 0.3 * (age[idx] < 30)
                        + 0.2 * np.log1p(spell_months[idx]))
            if p == DEBT_COUNSELLING:
                return 0.9 * np.log1p(self.c_arrears[idx]) + 0.4 * np.log1p(self.c_grant[idx])
            return 0.5 * (self.last_jr[idx] == 1) + 0.2 * np.log1p(spell_months[idx])

        pools = [(FAMILY_SUPPORT, kids, len(kids))]
        pools += [(p, adults, n_adults) for p in ADULT_PROGRAMMES]
        taken = np.zeros(self.P, dtype=bool)
        for p, pool, n_eligible in pools:
            places = round(cfg.capacity(PROGRAMME_NAMES[p]) * n_eligible)
            self.places[PROGRAMME_NAMES[p]][t] = places
            cand = pool[~taken[pool]]
            gumbel = -np.log(-np.log(rng.random(len(cand)) + 1e-300) + 1e-300)
            if places <= 0 or len(cand) == 0:
                continue
            key = score(p, cand) + gumbel
            chosen = cand if places >= len(cand) else cand[np.argpartition(-key, places - 1)
                                                             [:places]]
            chosen = np.sort(chosen)
            taken[chosen] = True
            self._enrol(chosen, p, t)

    def _enrol(self, idx: Arr, p: int, t: int) -> None:
        n = len(idx)
        # Enrolment on the quarter's first day at 08:00, before any other event of the month,
        # so a placement or spell end in the same month can close it (the programme acts on
        # the whole start month's hazard, in the simulation and in the truth).
        start = np.full(n, self.ms[t] + 8 * 3600, dtype=np.int64)
        z = self.z[idx]
        if p == FAMILY_SUPPORT:
            mult = np.full(n, m.FAMILY_SUPPORT_MULT, dtype=np.float32)
        elif p == MENTOR:
            mult = m.mentor_mult(z[:, m.EMPLOY])
        elif p == DEBT_COUNSELLING:
            mult = m.debt_mult(z[:, m.ECON])
        else:
            mult = np.ones(n, dtype=np.float32)
        self.prog[idx] = p
        self.prog_month[idx] = t
        self.prog_start[idx] = start
        self.prog_mult[idx] = mult
        self.prog_id[idx] = np.arange(self.n_enrol, self.n_enrol + n)
        self.n_enrol += n
        for k, v in (("person", idx), ("programme", np.full(n, p)), ("month", np.full(n, t)),
                     ("start", start), ("mult", mult)):
            self.enrol[k].append(np.asarray(v))
        self.sinks[PROGRAMME_SILO[p]].add(idx, start, f"{PROGRAMME_NAMES[p]}_start")

    def _snapshot(self, t: int, present0: Arr, placed0: Arr, on_benefit0: Arr) -> None:
        ms = self.msd[t]
        child = np.flatnonzero(present0 & ~placed0 & (self.bd18 > ms))
        ben = np.flatnonzero(present0 & on_benefit0 & (self.bd18 <= ms) & (ms < self.bd65))

        def received(idx: Arr) -> Arr:
            return np.where(self.prog_month[idx] == t, self.prog[idx], -1).astype(np.int8)

        self.snapshots.append(Snapshot(t, child, self.a[child].copy(), received(child),
                                       ben, self.a[ben].copy(), received(ben)))

    def _children_families(self, t: int) -> None:
        sink, rng, attr = self.sinks["children_families"], self.r["cf"], self.r["cf_attr"]
        ms, me = self.msd[t], self.msd[t + 1]
        idx = np.flatnonzero(self.present & (me <= self.bd18))
        z, b = self.z[idx], self.bias[idx]
        x, mh, f = z[:, m.ECON], z[:, m.MENTAL], z[:, m.FAMILY]
        u = rng.random((len(idx), 4))
        # Notifications and investigations are recorded with the surveillance multiplier.
        lam = np.exp(-3.7 + 1.5 * f + 0.15 * mh + 0.15 * x) * b
        n_notif = _poisson_inv(u[:, 0], lam, 3)
        age = (ms - self.pop.birth_day[idx]) / 365.25
        for k in range(1, 4):
            who = np.flatnonzero(n_notif >= k)
            if len(who) == 0:
                break
            p_rep = np.where((age[who] < 6)[:, None],
                             [0.0, 0.3, 0.1, 0.3, 0.15, 0.15], [0.45, 0.15, 0.15, 0.0, 0.12, 0.13])
            rep = (attr.random(len(who))[:, None] > np.cumsum(p_rep, axis=1)).sum(axis=1)
            sink.add(idx[who], self._times(attr, t, len(who)), "notification",
                     reporter=np.minimum(rep, len(REPORTER_CODES) - 1))
        inv = (n_notif > 0) & (u[:, 1] < _sigmoid(-1.0 + 0.9 * f))
        sink.add(idx[inv], self._times(attr, t, int(inv.sum())), "investigation")
        prev = (self.prev_until[idx] < self.ms[t]) & (
            u[:, 2] < _sigmoid(-6.6 + 1.6 * f + 0.2 * mh))
        pi = idx[prev]
        pt = self._times(attr, t, len(pi))
        dur = np.round(90 + attr.exponential(200, len(pi)))
        self.prev_until[pi] = pt + (dur * DAY).astype(np.int64)
        sink.add(pi, pt, "preventive_measure", duration_days=dur)
        # Placement: the outcome hazard, scaled by surveillance and family support.
        mult = np.where(self.prog[idx] == FAMILY_SUPPORT, self.prog_mult[idx], 1.0) * b
        eta = m.PLACEMENT_B0 + z @ m.PLACEMENT_W
        new = ~self.placed[idx] & (u[:, 3] < m.scaled_hazard(eta, mult))
        ni = idx[new]
        nt = self._times(attr, t, len(ni))
        sink.add(ni, nt, "placement_start")
        self.placed[ni] = True
        self.placement_start[ni] = nt
        self._end_programme(ni, nt)
        # Placements end after ~2.5 years, and at the latest the day before the 18th birthday.
        placed = np.flatnonzero(self.present & self.placed & (self.placement_start < self.ms[t]))
        age_out = self.bd18[placed] - 1 < me
        ends = age_out | (attr.random(len(placed)) < m.PLACEMENT_END_MONTHLY)
        ei = placed[ends]
        et = np.where(age_out[ends], np.maximum(self.bd18[ei] - 1, ms) * DAY + 12 * 3600,
                      self._times(attr, t, len(ei)))
        sink.add(ei, et, "placement_end", duration_days=(et - self.placement_start[ei]) / DAY)
        self.placed[ei] = False
        self.c_notif *= _DECAY
        self.c_inv *= _DECAY
        self.c_notif[idx] += n_notif
        self.c_inv[idx] += inv

    def _employment(self, t: int) -> None:
        sink, rng, attr = self.sinks["employment"], self.r["employment"], self.r["employment_attr"]
        ms, me = self.msd[t], self.msd[t + 1]
        self.on_at_start = self.present & self.on_benefit
        # Benefit spells end at 66 (pension); never in a cohort's 12-month horizon.
        old = np.flatnonzero(self.present & self.on_benefit & (self.bd66 < me))
        ot = np.maximum(self.bd66[old], ms) * DAY + 10 * 3600
        sink.add(old, ot, "benefit_end", benefit_type=self.btype[old],
                 duration_days=(ot - self.spell_start[old]) / DAY)
        self._end_programme(old, ot)
        self.on_benefit[old] = False

        idx = np.flatnonzero(self.present & (self.bd18 <= ms) & (me <= self.bd67))
        z = self.z[idx]
        u = rng.random((len(idx), 4))
        on = self.on_benefit[idx]
        # Exits from benefit: the long_term_benefit outcome's hazard.
        mult = np.where(np.isin(self.prog[idx], ADULT_PROGRAMMES), self.prog_mult[idx], 1.0)
        eta = m.EXIT_B0 + z @ m.EXIT_W
        exits = on & (self.spell_start[idx] < self.ms[t]) & (u[:, 0] < m.scaled_hazard(eta, mult))
        xi = idx[exits]
        xt = self._times(attr, t, len(xi))
        job = u[exits, 1] < _sigmoid(0.8 - 1.2 * z[exits, m.EMPLOY])
        sink.add(xi[job], xt[job], "job_start")
        sink.add(xi, xt, "benefit_end", benefit_type=self.btype[xi],
                 duration_days=(xt - self.spell_start[xi]) / DAY)
        self._end_programme(xi, xt)
        self.on_benefit[xi] = False
        # Ordinary activation offers while on benefit carry a fresh job-readiness reading.
        act = on & ~exits & (u[:, 3] < _sigmoid(-1.0 + 0.6 * z[:, m.EMPLOY]))
        ai = idx[act]
        jr = self._job_readiness(attr, z[act, m.EMPLOY])
        self.last_jr[ai] = jr
        sink.add(ai, self._times(attr, t, len(ai)), "activation_start",
                 benefit_type=self.btype[ai], job_readiness=jr.astype(np.float32))
        # New spells (not in the month a spell ended, and only before 65).
        starts = ~on & (me <= self.bd65[idx]) & (u[:, 2] < _sigmoid(self._start_index(z)))
        si = idx[starts]
        self._start_spells(si, self._times(attr, t, len(si)), t)

    def _health(self, t: int) -> None:
        sink, rng, attr = self.sinks["health"], self.r["health"], self.r["health_attr"]
        ms = self.msd[t]
        idx = np.flatnonzero(self.present)
        z, b = self.z[idx], self.bias[idx]
        x, mh, f = z[:, m.ECON], z[:, m.MENTAL], z[:, m.FAMILY]
        age = (ms - self.pop.birth_day[idx]) / 365.25
        child = age < 18
        u = rng.random((len(idx), 6))

        def emit(mask: Arr, kind: str, **draw: Callable[[int], Arr]) -> None:
            """Events for persons in ``mask``; attributes drawn for them only."""
            who = np.flatnonzero(mask)
            sink.add(idx[who], self._times(attr, t, len(who)), kind,
                     **{col: fn(len(who)).astype(np.float32) for col, fn in draw.items()})

        def emit_counts(counts: Arr, kind: str) -> None:
            for k in range(1, int(counts.max(initial=0)) + 1):
                emit(counts >= k, kind)

        # Small children see the GP often (check-ups); more so in strained families.
        gp_rate = 0.08 * (1.0 + 1.2 * (age >= 65)) * np.exp(
            0.45 * mh + 0.15 * x + np.where(child, 0.35 * f, 0.2 * f))
        gp_rate = np.where(age < 6, 0.18 * np.exp(0.15 * mh + 0.6 * f), gp_rate)
        emit_counts(_poisson_inv(u[:, 0], gp_rate, 4), "gp_contact")
        # Emergency and psychiatric contacts are recorded with the surveillance multiplier.
        emerg_rate = 0.010 * np.exp(0.45 * mh + 0.25 * x + 0.45 * f) * b
        emerg = u[:, 1] < -np.expm1(-emerg_rate)
        emit(emerg, "emergency_contact")
        hosp = u[:, 2] < 0.004 * (1.0 + 3.0 * (age >= 70)) * np.exp(0.2 * mh)
        emit(hosp, "hospital_admission", duration_days=lambda n: 1 + attr.geometric(0.25, n))
        psych_rate = np.where(age >= 10, 0.006 * np.exp(1.2 * mh), 0.0) * b
        psych = _poisson_inv(u[:, 3], psych_rate, 2)
        emit_counts(psych, "psychiatric_contact")
        adm = (age >= 12) & (u[:, 4] < 0.0002 * np.exp(1.6 * mh))
        emit(adm, "psychiatric_admission",
             duration_days=lambda n: np.round(3 + attr.exponential(20, n)))
        sub = (age >= 15) & (u[:, 5] < 0.0003 * np.exp(1.0 * mh + 0.6 * x))
        emit(sub, "substance_treatment")
        # Home care: a persistent status among the old (propensity fixed per person).
        p_care = _sigmoid(-3.4 + 0.11 * (age - 75) + 1.2 * self.pop.disability[idx] + 0.3 * mh)
        care = (age >= 67) & (self.care_u[idx] < p_care)
        emit(care, "home_care",
             hours=lambda n: np.round(np.minimum(4 + attr.gamma(2.0, 8.0, n), 300) * 2) / 2)
        self.c_psych *= _DECAY
        self.c_emerg *= _DECAY
        self.c_psych[idx] += psych + adm
        self.c_emerg[idx] += emerg

    def _schools(self, t: int) -> None:
        sink, rng = self.sinks["schools"], self.r["schools"]
        ms, me = self.msd[t], self.msd[t + 1]
        idx = np.flatnonzero(self.present & (self.bd6 <= ms) & (me <= self.bd20))
        z = self.z[idx]
        x, mh, f = z[:, m.ECON], z[:, m.MENTAL], z[:, m.FAMILY]
        age = (ms - self.pop.birth_day[idx]) / 365.25
        # Upper-secondary education from 16: most enrol; need lowers the chance.
        decide = (age >= 16) & ~self.us_decided[idx]
        di = idx[decide]
        self.upper_sec[di] = rng.random(len(di)) < _sigmoid(1.8 - 0.5 * f[decide]
                                                             - 0.5 * mh[decide])
        self.us_decided[di] = True
        pupil = (age < 16) | (self.upper_sec[idx] & ~self.dropped[idx] & (age < 19))
        cal = int(self.cal_month[t])
        if cal != 6:  # no school in July
            days = np.minimum(rng.poisson(0.9 * np.exp(0.8 * f + 0.3 * mh + 0.15 * x)), 20)
            a = pupil & (days > 0)
            sink.add(idx[a], self._times(rng, t, int(a.sum())), "absence",
                     days=days[a].astype(np.float32))
        if cal in (0, 5):  # term grades in January and June
            g = pupil & (age >= 13)
            latent = (-0.55 * f - 0.45 * mh - 0.3 * x)[g] + rng.normal(0, 0.9, int(g.sum()))
            sink.add(idx[g], self._times(rng, t, int(g.sum())), "grade",
                     grade=_GRADES[np.searchsorted(_GRADE_CUTS, latent)])
        change_p = 0.003 * np.exp(0.5 * f + 0.3 * x) * (3.0 if cal == 7 else 1.0)
        ch = pupil & (rng.random(len(idx)) < change_p)
        sink.add(idx[ch], self._times(rng, t, int(ch.sum())), "school_change")
        drop = (pupil & (age >= 16) & self.upper_sec[idx]
                & (rng.random(len(idx)) < _sigmoid(-6.0 + 0.7 * mh + 0.5 * f + 0.3 * x)))
        sink.add(idx[drop], self._times(rng, t, int(drop.sum())), "dropout")
        self.dropped[idx[drop]] = True
        self.c_absence *= _DECAY
        if cal != 6:
            self.c_absence[idx[a]] += days[a]

    def _economy(self, t: int) -> None:
        sink, rng = self.sinks["economy"], self.r["economy"]
        ms = self.msd[t]
        idx = np.flatnonzero(self.present & (self.bd18 <= ms))
        z = self.z[idx]
        x, mh, f = z[:, m.ECON], z[:, m.MENTAL], z[:, m.FAMILY]
        # A monthly payment to everyone on benefit at the month start (a final one included).
        paid = np.flatnonzero(self.on_at_start)
        amount = np.round(_BENEFIT_AMOUNT[self.btype[paid]] * rng.lognormal(0, 0.08, len(paid)))
        pay_t = self.ms[t] + rng.integers(23, 27, len(paid)) * DAY + 9 * 3600
        sink.add(paid, pay_t, "benefit_payment", amount_dkk=amount)
        u = rng.random((len(idx), 3))
        arrears = u[:, 0] < -np.expm1(-0.008 * np.exp(1.1 * x + 0.2 * mh + 0.3 * f))
        sink.add(idx[arrears], self._times(rng, t, int(arrears.sum())), "rent_arrears",
                 amount_dkk=np.round(rng.lognormal(np.log(9000) + 0.3 * x[arrears], 0.5)))
        debt = u[:, 1] < -np.expm1(-0.005 * np.exp(1.1 * x))
        sink.add(idx[debt], self._times(rng, t, int(debt.sum())), "debt_collection",
                 amount_dkk=np.minimum(np.round(rng.lognormal(np.log(20_000), 0.8,
                                                              int(debt.sum()))), 5e6))
        grant = u[:, 2] < -np.expm1(-0.002 * np.exp(0.9 * x + 0.6 * f))
        sink.add(idx[grant], self._times(rng, t, int(grant.sum())), "emergency_grant",
                 amount_dkk=np.round(rng.lognormal(np.log(4000), 0.5, int(grant.sum()))))
        self.c_arrears *= _DECAY
        self.c_grant *= _DECAY
        self.c_arrears[idx] += arrears.astype(np.float32) + debt
        self.c_grant[idx] += grant

    def _digital(self, t: int) -> None:
        sink, rng = self.sinks["digital"], self.r["digital"]
        ms = self.msd[t]
        idx = np.flatnonzero(self.present & (self.bd18 - 3 * 365 <= ms))  # from about 15
        z = self.z[idx]
        x, mh, f = z[:, m.ECON], z[:, m.MENTAL], z[:, m.FAMILY]
        signed = self.apps[idx]
        u = rng.random((len(idx), 3 * len(APP_CODES)))
        signup_p = np.stack([0.0025 * np.exp(0.3 * x), 0.0035 * np.exp(0.3 * mh),
                             np.where(self.on_benefit[idx], 0.08, 0.0004)], axis=1)
        for k in range(len(APP_CODES)):
            new = ~signed[:, k] & (u[:, k] < signup_p[:, k])
            sink.add(idx[new], self._times(rng, t, int(new.sum())), "app_signup", app=k)
            self.apps[idx[new], k] = True
            use = signed[:, k] & (u[:, 3 + k] < 0.25)
            sink.add(idx[use], self._times(rng, t, int(use.sum())), "app_engagement", app=k)
            if APP_CODES[k] != "jobnet":
                rep = signed[:, k] & (u[:, 6 + k] < 0.1)
                score = np.clip(np.round(7.2 - 0.9 * mh[rep] - 0.5 * x[rep] - 0.6 * f[rep]
                                         + rng.normal(0, 1.1, int(rep.sum()))), 0, 10)
                sink.add(idx[rep], self._times(rng, t, int(rep.sum())), "self_report", app=k,
                         score=score.astype(np.float32))

    # --- results ---------------------------------------------------------------------------
    def result(self) -> SimResult:
        pop = self.pop
        if self.n_enrol:
            enrol = {k: np.concatenate(v) for k, v in self.enrol.items()}
        else:
            enrol = {"person": np.zeros(0, np.int64), "programme": np.zeros(0, np.int64),
                     "month": np.zeros(0, np.int64), "start": np.zeros(0, np.int64),
                     "mult": np.zeros(0, np.float32)}
        end = np.full(self.n_enrol, -1, dtype=np.int64)
        if self.enrol_end_id:
            end[np.concatenate(self.enrol_end_id)] = np.concatenate(self.enrol_end_time)
        return SimResult(
            pop=pop, n_born=self.n_born, mu=self.mu, bias=self.bias,
            move_out_day=self.move_out_day, death_day=self.death_day,
            events={name: sink.finish() for name, sink in self.sinks.items()},
            snapshots=self.snapshots, enrol_person=enrol["person"].astype(np.int64),
            enrol_programme=enrol["programme"].astype(np.int8),
            enrol_month=enrol["month"].astype(np.int64), enrol_start=enrol["start"],
            enrol_end=end, enrol_mult=enrol["mult"].astype(np.float32), places=self.places,
        )


def simulate(cfg: SyntheticConfig, pop: Population, month_start_day: Arr,
             streams: dict[str, np.random.Generator], asof_months: Sequence[int],
             progress: Callable[[str, int, int], None] | None = None) -> SimResult:
    """Run the monthly simulation over the whole window."""
    sim = _Sim(cfg, pop, month_start_day, streams, asof_months)
    sim.run(progress)
    return sim.result()
