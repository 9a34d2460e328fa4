"""The synthetic population: households, persons, districts and fake CPR numbers.

Everything here is drawn once, before the monthly simulation: the residents at the start,
the households that will move in during the window, and empty slots for the children who
will be born (filled in by the simulation). Person arrays are indexed by a person number
``0..P-1``; households by ``0..H-1`` plus one dummy household ``H`` for unborn slots.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from overblik.features._synthetic_model import DEPRIVATION, DISTRICT_SIZE, MOVE_IN_YEARLY

Arr = npt.NDArray[Any]

DAYS_PER_YEAR = 365.25
# Household types: probabilities over households (Danish-like: ~40 % one-person households).
SINGLE, COUPLE, COUPLE_KIDS, SINGLE_PARENT = 0, 1, 2, 3
_TYPE_P = np.array([0.42, 0.29, 0.21, 0.08])
# Share of households whose adults are immigrants, by (type, old) — few old immigrants.
_P_IMMIGRANT = {SINGLE: 0.14, COUPLE: 0.13, COUPLE_KIDS: 0.16, SINGLE_PARENT: 0.16}
_P_IMMIGRANT_OLD = 0.04
# Share of young households (adults under 40) whose adults are descendants.
_P_DESCENDANT_YOUNG = 0.05
ORIGIN_DANISH, ORIGIN_IMMIGRANT, ORIGIN_DESCENDANT = 0, 1, 2


@dataclass
class Population:
    """Person and household arrays for every person who can appear in the window."""

    n_initial: int
    n_movein: int
    n_slots: int  # birth slots, filled by the simulation
    hh: Arr  # int32 household per person (dummy household for unborn slots)
    birth_day: Arr  # int64 days since 1970-01-01
    sex: Arr  # int8, 1 = man
    origin: Arr  # int8 index into ORIGIN_CODES
    disability: Arr  # bool
    entry_month: Arr  # int32: -1 resident at start, t moves in during month t
    move_in_day: Arr  # int64 days since epoch
    hh_district: Arr  # int8 per household (+ dummy)
    hh_single_parent: Arr  # bool per household (+ dummy)

    @property
    def size(self) -> int:
        return len(self.hh)

    @property
    def n_households(self) -> int:
        """Real households (the dummy household has index ``n_households``)."""
        return len(self.hh_district) - 1


@dataclass
class _Households:
    person_hh: Arr
    age: Arr
    sex: Arr
    origin: Arr
    n_households: int
    single_parent: Arr
    origin_class: Arr


MAX_AGE = 96.0  # ages at the start lie in [0, 96): "0-95"


def _old_age(rng: np.random.Generator, n: int) -> Arr:
    """Ages 65-95 thinning out with age: an exponential (scale 9) truncated at 96.

    Truncation by inverting the CDF, not by capping: a cap would pile many persons onto
    one birth date, more than the CPR scheme has serial numbers for.
    """
    top = 1.0 - np.exp(-(MAX_AGE - 65.0) / 9.0)
    return 65.0 - 9.0 * np.log1p(-rng.random(n) * top)


def _households(rng: np.random.Generator, n_persons: int) -> _Households:
    """Draw households until exactly ``n_persons`` persons; ages in years at the start."""
    n_hh = max(int(n_persons / 1.9) + 16, 4)
    while True:
        kind = rng.choice(4, size=n_hh, p=_TYPE_P)
        n_kids = np.zeros(n_hh, dtype=np.int64)
        ck = kind == COUPLE_KIDS
        n_kids[ck] = 1 + rng.choice(3, size=int(ck.sum()), p=[0.38, 0.44, 0.18])
        sp = kind == SINGLE_PARENT
        n_kids[sp] = 1 + rng.choice(2, size=int(sp.sum()), p=[0.55, 0.45])
        n_adults = np.where((kind == COUPLE) | ck, 2, 1)
        size = n_adults + n_kids
        if size.sum() >= n_persons:
            break
        n_hh *= 2
    # Keep whole households while they fit, then fill up with one-person households.
    keep = int(np.searchsorted(np.cumsum(size), n_persons, side="right"))
    rest = n_persons - int(size[:keep].sum())
    kind = np.concatenate([kind[:keep], np.full(rest, SINGLE)])
    n_kids = np.concatenate([n_kids[:keep], np.zeros(rest, dtype=np.int64)])
    n_adults = np.where((kind == COUPLE) | (kind == COUPLE_KIDS), 2, 1)
    h = len(kind)

    # Primary adult's age by household type.
    u = rng.random(h)
    old = np.zeros(h, dtype=bool)
    age1 = np.empty(h)
    s = kind == SINGLE
    young_s = s & (u < 0.34)
    mid_s = s & (u >= 0.34) & (u < 0.64)
    old |= s & (u >= 0.64)
    age1[young_s] = rng.uniform(18, 35, young_s.sum())
    age1[mid_s] = rng.uniform(35, 65, mid_s.sum())
    c = kind == COUPLE
    old |= c & (u < 0.45)
    mid_c = c & (u >= 0.45)
    age1[mid_c] = rng.uniform(24, 65, mid_c.sum())
    age1[old] = _old_age(rng, int(old.sum()))
    ck = kind == COUPLE_KIDS
    age1[ck] = rng.uniform(25, 56, ck.sum())
    sp = kind == SINGLE_PARENT
    age1[sp] = rng.uniform(21, 56, sp.sum())

    # Household origin: adults immigrant, descendant (young households) or Danish.
    p_imm = np.array([_P_IMMIGRANT[int(k)] for k in range(4)])[kind]
    p_imm = np.where(old, _P_IMMIGRANT_OLD, p_imm)
    p_desc = np.where(age1 < 40, _P_DESCENDANT_YOUNG, 0.0)
    uo = rng.random(h)
    origin_class = np.where(uo < p_imm, ORIGIN_IMMIGRANT,
                            np.where(uo < p_imm + p_desc, ORIGIN_DESCENDANT, ORIGIN_DANISH))

    # Adults.
    hh_of_adult = np.repeat(np.arange(h), n_adults)
    first = np.concatenate([[True], hh_of_adult[1:] != hh_of_adult[:-1]])
    partner_age = age1[hh_of_adult] + rng.normal(-1.5, 3.0, len(hh_of_adult))
    # Out of range: reflect into the range (clipping would pile persons onto one date).
    partner_age = np.where(partner_age >= MAX_AGE, 2 * MAX_AGE - partner_age - 1e-6, partner_age)
    partner_age = np.where(partner_age < 18.0, 36.0 - partner_age, partner_age)
    adult_age = np.where(first, age1[hh_of_adult], partner_age)
    sex_first = np.where(
        kind[hh_of_adult] == SINGLE_PARENT, rng.random(len(hh_of_adult)) < 0.18,
        np.where(old[hh_of_adult] & (kind[hh_of_adult] == SINGLE),
                 rng.random(len(hh_of_adult)) < 0.38, rng.random(len(hh_of_adult)) < 0.5))
    # The partner has the other sex as the primary adult.
    first_idx = np.flatnonzero(first)
    primary_sex = sex_first[first_idx][np.cumsum(first) - 1]
    adult_sex = np.where(first, sex_first, ~primary_sex)
    adult_origin = origin_class[hh_of_adult]

    # Children: ages consistent with the primary adult's age; immigrant households' children
    # are mostly born here (descendants).
    hh_of_kid = np.repeat(np.arange(h), n_kids)
    pa = age1[hh_of_kid]
    lo = np.maximum(0.0, pa - 43.0)
    hi = np.minimum(pa - 19.0, 23.0)
    kid_age = lo + rng.random(len(hh_of_kid)) * (hi - lo)
    kid_sex = rng.random(len(hh_of_kid)) < 0.51
    ko = origin_class[hh_of_kid]
    born_abroad = rng.random(len(hh_of_kid)) < np.clip(0.2 + 0.03 * kid_age, 0, 0.7)
    kid_origin = np.where(ko == ORIGIN_DANISH, ORIGIN_DANISH,
                          np.where((ko == ORIGIN_IMMIGRANT) & born_abroad, ORIGIN_IMMIGRANT,
                                   ORIGIN_DESCENDANT))

    person_hh = np.concatenate([hh_of_adult, hh_of_kid])
    order = np.argsort(person_hh, kind="stable")  # members of a household next to each other
    return _Households(
        person_hh=person_hh[order].astype(np.int32),
        age=np.concatenate([adult_age, kid_age])[order],
        sex=np.concatenate([adult_sex, kid_sex])[order].astype(np.int8),
        origin=np.concatenate([adult_origin, kid_origin])[order].astype(np.int8),
        n_households=h,
        single_parent=kind == SINGLE_PARENT,
        origin_class=origin_class,
    )


def _districts(rng: np.random.Generator, origin_class: Arr, single_parent: Arr) -> Arr:
    """District per household: immigrants and single parents live more in deprived ones."""
    out = np.empty(len(origin_class), dtype=np.int8)
    for group, beta in ((0, -0.2), (1, 0.9), (2, 0.3)):
        sel = np.flatnonzero(
            (origin_class != ORIGIN_DANISH) if group == 1
            else ((origin_class == ORIGIN_DANISH) & (single_parent if group == 2
                                                      else ~single_parent)))
        w = DISTRICT_SIZE * np.exp(beta * DEPRIVATION.astype(np.float64))
        out[sel] = rng.choice(len(w), size=len(sel), p=w / w.sum())
    return out


def make_population(rng: np.random.Generator, citizens: int, years: int, start_day: int,
                    month_start_day: Arr) -> Population:
    """Residents at the start, households moving in later, and empty birth slots.

    Parameters
    ----------
    rng
        The population stream.
    citizens, years
        Residents at the start and simulated years.
    start_day
        The window start in days since the epoch.
    month_start_day
        First day of each month ``0..M`` in days since the epoch.
    """
    months = len(month_start_day) - 1
    init = _households(rng, citizens)
    n_move = round(citizens * MOVE_IN_YEARLY * years)
    mover = _households(rng, max(n_move, 1))
    # Fertility ~1.1 % of residents a year; the slack keeps births from running out.
    n_slots = int(citizens * 0.0125 * years * 1.3) + 20

    h0 = init.n_households
    h1 = mover.n_households
    hh = np.concatenate([init.person_hh, mover.person_hh + h0,
                         np.full(n_slots, h0 + h1, dtype=np.int32)]).astype(np.int32)
    age = np.concatenate([init.age, mover.age])
    birth_day = np.zeros(len(hh), dtype=np.int64)
    birth_day[: len(age)] = start_day - np.ceil(age * DAYS_PER_YEAR).astype(np.int64)
    sex = np.concatenate([init.sex, mover.sex, np.zeros(n_slots, np.int8)]).astype(np.int8)
    origin = np.concatenate([init.origin, mover.origin,
                             np.zeros(n_slots, np.int8)]).astype(np.int8)

    hh_entry = rng.integers(0, months, size=h1)  # month each moving household arrives
    entry_month = np.concatenate([np.full(citizens, -1), hh_entry[mover.person_hh],
                                  np.full(n_slots, np.iinfo(np.int32).max)]).astype(np.int32)
    move_in_day = np.zeros(len(hh), dtype=np.int64)
    # Residents at the start moved in some years ago (never before birth, never after start).
    years_here = rng.exponential(12.0, citizens)
    since_birth = start_day - birth_day[:citizens]
    move_in_day[:citizens] = start_day - np.maximum(
        1, np.minimum(np.ceil(years_here * DAYS_PER_YEAR), since_birth)).astype(np.int64)
    hh_day = month_start_day[hh_entry] + (
        rng.random(h1) * (month_start_day[hh_entry + 1] - month_start_day[hh_entry])
    ).astype(np.int64)
    move_in_day[citizens: citizens + len(mover.age)] = hh_day[mover.person_hh]

    single_parent = np.concatenate([init.single_parent, mover.single_parent, [False]])
    origin_class = np.concatenate([init.origin_class, mover.origin_class, [0]])
    district = _districts(rng, origin_class, single_parent)

    # Disability ~5 %, more with age; it raises mental and employment need (DISABILITY_SHIFT).
    p_dis = np.where(age < 18, 0.02, np.where(age < 65, 0.045, 0.09))
    disability = np.zeros(len(hh), dtype=bool)
    disability[: len(age)] = rng.random(len(age)) < p_dis
    return Population(
        n_initial=citizens, n_movein=len(mover.age), n_slots=n_slots, hh=hh,
        birth_day=birth_day, sex=sex, origin=origin, disability=disability,
        entry_month=entry_month, move_in_day=move_in_day, hh_district=district,
        hh_single_parent=single_parent,
    )


def add_years(day: Arr, years: int) -> Arr:
    """The calendar date ``years`` after ``day`` (days since epoch; 29 Feb -> 1 Mar)."""
    d = day.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    dom = (d - month.astype("datetime64[D]")).astype(np.int64)
    return ((month + 12 * years).astype("datetime64[D]").astype(np.int64) + dom).astype(np.int64)


def make_cprs(rng: np.random.Generator, birth_day: Arr, sex: Arr) -> Arr:
    """Unique, well-formed fake CPR numbers ``DDMMYY-SSSS`` (numpy unicode array).

    The date part is the birth date; the 7th digit is the century digit of the real scheme
    (0-3 for births 1900-1999, 4 for 2000-2036); the last digit is odd for men and even for
    women. Duplicates are redrawn until every number is unique.
    """
    d = birth_day.astype("datetime64[D]")
    year = d.astype("datetime64[Y]").astype(np.int64) + 1970
    if year.size and (year.min() < 1900 or year.max() > 2036):
        raise ValueError("birth years must be within 1900-2036 for the CPR scheme used here")
    month = d.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dom = (d - d.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    n = len(birth_day)
    # Serial numbers per birth date and sex: 4 century digits x 100 x 5 before 2000, 500
    # from 2000; more persons than that would make the redraw loop below endless.
    group = birth_day * 4 + (year >= 2000) * 2 + (sex == 1)
    groups, per_group = np.unique(group, return_counts=True)
    capacity = np.where(groups % 4 >= 2, 500, 2000)
    if (per_group > capacity).any():
        raise ValueError(f"{per_group.max()} persons share one birth date and sex: more than "
                         "the CPR scheme has serial numbers for")
    serial = np.zeros(n, dtype=np.int64)
    todo = np.arange(n)
    while len(todo):
        century = np.where(year[todo] >= 2000, 4, rng.integers(0, 4, len(todo)))
        mid = rng.integers(0, 100, len(todo))
        last = 2 * rng.integers(0, 5, len(todo)) + (sex[todo] == 1)
        serial[todo] = century * 1000 + mid * 10 + last
        key = birth_day * 10_000 + serial
        _, first = np.unique(key, return_index=True)
        dup = np.ones(n, dtype=bool)
        dup[first] = False
        todo = np.flatnonzero(dup)
    digits = np.empty((n, 11), dtype=np.uint8)
    for pos, (value, width) in enumerate(((dom, 2), (month, 2), (year % 100, 2))):
        for k in range(width):
            digits[:, 2 * pos + k] = (value // 10 ** (width - 1 - k)) % 10 + 48
    digits[:, 6] = ord("-")
    for k in range(4):
        digits[:, 7 + k] = (serial // 10 ** (3 - k)) % 10 + 48
    return digits.view("S11").ravel().astype("U11")
