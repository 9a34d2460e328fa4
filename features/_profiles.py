"""Point-in-time citizen profiles: one row of features per (person, as-of date).

``build_profiles(tables, rows, spec)`` computes the features of a :class:`FeatureSpec` for the
wanted (person_id, as_of) rows from the events known *strictly before* each as-of date, and
the sensitive attributes of each row, kept apart from ``X``.

How (vectorised; loops only over as-of dates, blocks and windows): each silo's events are
integer arrays sorted by time once (:func:`overblik.features._tables.source_arrays`); for an
as-of date and a window the events in ``[as_of - w, as_of)`` are one contiguous slice found by
binary search, aggregated per (person, event type) with ``np.bincount`` /
``np.maximum.at`` into arrays over all persons of the tables, from which the wanted rows are
taken. Everything is a function of the persons in the tables only, so a profile built from
``tables.shard([pid])`` equals the row of the full build exactly (same float operations in
the same order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from overblik.features._contracts import SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._feature_spec import (
    SILO_NAMES,
    CrossSiloBlock,
    EventBlock,
    FeatureDef,
    FeatureSpec,
    PopulationBlock,
    SpellBlock,
    expand,
    no_event_days,
)
from overblik.features._tables import (
    DAY_NS,
    EventTables,
    RegisterArrays,
    completed_years,
    person_codes,
    register_arrays,
    source_arrays,
    source_values,
    spell_intervals,
)

__all__ = ["AGE_BANDS", "Profiles", "age_band", "build_profiles", "check_rows"]

F64 = npt.NDArray[np.float64]
Int = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]
ProgressFn = Callable[[str, int, int], None]
AGE_BANDS: tuple[tuple[int, str], ...] = ((0, "0-17"), (18, "18-24"), (25, "25-34"),
                                          (35, "35-49"), (50, "50-64"), (65, "65+"))
_NO_TIME = np.iinfo(np.int64).min
_YEAR_NS = 365.25 * DAY_NS


@dataclass(frozen=True)
class Profiles:
    """Features and sensitive attributes of (person, as-of) rows.

    Attributes
    ----------
    X
        Index (person_id, as_of) in the order of the requested rows; float64 columns
        ``[f.name for f in features]``.
    sensitive
        Same index: sex, age_band, origin, district, disability (for audits, not inputs).
    features
        The feature definitions, in column order.
    """

    X: pd.DataFrame
    sensitive: pd.DataFrame
    features: list[FeatureDef]


def age_band(age: Int) -> npt.NDArray[np.object_]:
    """Age bands "0-17", "18-24", "25-34", "35-49", "50-64", "65+" of ages in years."""
    lows = np.array([lo for lo, _ in AGE_BANDS])
    labels = np.array([label for _, label in AGE_BANDS], dtype=object)
    out: npt.NDArray[np.object_] = labels[np.searchsorted(lows, np.maximum(age, 0),
                                                          side="right") - 1]
    return out


def check_rows(tables: EventTables, rows: pd.DataFrame) -> tuple[Int, Int]:
    """Person codes and as-of times (int64 ns) of ``rows``; InputError on bad rows."""
    if not isinstance(rows, pd.DataFrame) or not {"person_id", "as_of"} <= set(rows.columns):
        raise InputError("rows: give a DataFrame with columns person_id and as_of (e.g. the "
                         "output of cohort())")
    try:
        as_of = pd.to_datetime(rows["as_of"])
    except (ValueError, TypeError) as exc:
        raise InputError(f"rows.as_of: not dates ({exc}); give timestamps") from None
    if as_of.isna().any():
        raise InputError(f"rows.as_of: {int(as_of.isna().sum())} missing as-of dates "
                         f"(e.g. row {int(np.flatnonzero(as_of.isna())[0])}): give one per row")
    if getattr(as_of.dt, "tz", None) is not None:
        # Event times are local wall-clock times (as ingest writes them): compare like that.
        as_of = as_of.dt.tz_localize(None)
    codes = person_codes(tables, rows["person_id"])
    unknown = np.flatnonzero(codes < 0)
    if len(unknown):
        example = ", ".join(str(rows["person_id"].iloc[i]) for i in unknown[:3])
        raise InputError(f"rows.person_id: {len(unknown)} person(s) not in the population "
                         f"register of these tables, e.g. {example}: use ids from the same "
                         "ingest, and a shard that contains them")
    ns = np.asarray(as_of, dtype="datetime64[ns]").view(np.int64)
    return codes, ns


def _weighted_counts(keys: Int, weights: F64, n: int) -> F64:
    """``np.bincount`` with weights (typed: it returns float64 then)."""
    out: F64 = np.bincount(keys, weights=weights, minlength=n).astype(np.float64, copy=False)
    return out


def _latest_values(keys: Int, values: F64, n: int) -> F64:
    """Per key, the value of its last occurrence (0 for keys without one).

    ``keys`` are in event-time order; a stable sort keeps that order within a key, so the
    last of each run is the most recent (fancy assignment with repeated keys promises no
    order).
    """
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    end = np.ones(len(k), dtype=bool)
    end[:-1] = k[:-1] != k[1:]
    out = np.zeros(n)
    out[k[end]] = values[order][end]
    return out


class _AsOf:
    """What every block needs at one as-of date (computed once, on first use)."""

    def __init__(self, tables: EventTables, t: int) -> None:
        self.tables = tables
        self.t = t
        self.P = tables.n_persons
        self.reg: RegisterArrays = register_arrays(tables)

    @cached_property
    def present(self) -> Bool:
        return self.reg.present(self.t)

    @cached_property
    def age(self) -> Int:
        day = np.datetime64(self.t, "ns").astype("datetime64[D]")
        return completed_years(self.reg.birth_day, np.full(self.P, day))

    def household_sum(self, own: F64) -> F64:
        """Sum of ``own`` over the *other* members living in the municipality."""
        hh, here = self.reg.household, self.present
        total = _weighted_counts(hh, np.where(here, own, 0.0), self.reg.n_households)
        out: F64 = total[hh] - np.where(here, own, 0.0)
        return out

    def household_max(self, own: npt.NDArray[Any], empty: float | int) -> npt.NDArray[Any]:
        """Max of ``own`` over the *other* members living in the municipality (``empty``
        when there is none): the household's largest, or its second largest for the person
        holding the largest. Keeps the dtype (int64 times stay exact)."""
        hh, H = self.reg.household, self.reg.n_households
        idx = np.flatnonzero(self.present)
        order = idx[np.lexsort((own[idx], hh[idx]))]  # by household, then value ascending
        g = hh[order]
        tail = np.ones(len(order), dtype=bool)
        tail[:-1] = g[:-1] != g[1:]  # the last row of a household holds its largest
        top_person = np.full(H, -1, dtype=np.int64)
        top = np.full(H, empty, dtype=own.dtype)
        second = np.full(H, empty, dtype=own.dtype)
        top_person[g[tail]] = order[tail]
        top[g[tail]] = own[order[tail]]
        before = np.flatnonzero(tail) - 1
        ok = before >= 0
        ok[ok] = ~tail[before[ok]]  # the row before is in the same household
        second[g[before[ok]]] = own[order[before[ok]]]
        mine = top_person[hh] == np.arange(self.P)
        out: npt.NDArray[Any] = np.where(mine, second[hh], top[hh])
        return out


def _event_block(b: EventBlock, ctx: _AsOf) -> dict[str, F64]:
    arr = source_arrays(ctx.tables, b.source)
    codes = list(SOURCE_BY_NAME[b.source].event_codes)
    T, P, t = len(codes), ctx.P, ctx.t
    aggs = set(b.aggregations)
    values = source_values(ctx.tables, b.source, b.value) if b.value else None
    prefix = "household__" if b.household else ""
    out: dict[str, F64] = {}

    def keys(sl: slice) -> Int:
        k: Int = arr.person[sl].astype(np.int64) * T + arr.event_type[sl]
        return k

    last: Int | None = None
    if "days_since_last" in aggs:
        # The last event of the largest window; a smaller window has it, or none at all.
        sl = arr.window(t, max(b.windows_days))
        last = np.full(P * T, _NO_TIME, dtype=np.int64)
        np.maximum.at(last, keys(sl), arr.time[sl])
        last = last.reshape(P, T)
    for w in b.windows_days:
        sl = arr.window(t, w)
        k = keys(sl)
        counts = (np.bincount(k, minlength=P * T).reshape(P, T)
                  if aggs & {"count", "distinct_event_types"} else None)
        sums: F64 | None = None
        n_val: F64 | None = None
        top: F64 | None = None
        latest: F64 | None = None
        if values is not None:
            v = values[sl]
            ok = ~np.isnan(v)
            if aggs & {"sum", "mean"}:
                sums = _weighted_counts(k, np.where(ok, v, 0.0), P * T).reshape(P, T)
                n_val = _weighted_counts(k, ok.astype(np.float64), P * T).reshape(P, T)
            if "max" in aggs:
                top = np.full(P * T, -np.inf)
                np.maximum.at(top, k[ok], v[ok])
                top = top.reshape(P, T)
            if "last" in aggs:
                latest = _latest_values(k[ok], v[ok], P * T).reshape(P, T)
        for code in b.types:
            c = codes.index(code)
            base = f"{prefix}{b.source}__{code}__"
            for agg in b.aggregations:
                if agg == "count":
                    assert counts is not None
                    own = counts[:, c].astype(np.float64)
                    out[f"{base}count_{w}d"] = ctx.household_sum(own) if b.household else own
                elif agg == "sum":
                    assert sums is not None
                    own = sums[:, c].copy()
                    out[f"{base}{b.value}_sum_{w}d"] = (ctx.household_sum(own) if b.household
                                                        else own)
                elif agg == "mean":
                    assert sums is not None and n_val is not None
                    n = n_val[:, c]
                    out[f"{base}{b.value}_mean_{w}d"] = np.where(
                        n > 0, sums[:, c] / np.maximum(n, 1.0), 0.0)
                elif agg == "max":
                    assert top is not None
                    own = top[:, c]
                    if b.household:
                        own = ctx.household_max(own, -np.inf)
                    out[f"{base}{b.value}_max_{w}d"] = np.where(np.isfinite(own), own, 0.0)
                elif agg == "last":
                    assert latest is not None
                    out[f"{base}{b.value}_last_{w}d"] = latest[:, c].copy()
                elif agg == "days_since_last":
                    assert last is not None
                    lt = last[:, c]
                    if b.household:
                        lt = ctx.household_max(lt, _NO_TIME)
                    seen = lt >= t - w * DAY_NS
                    since = t - np.where(seen, lt, t)  # no int64 overflow for "never"
                    out[f"{base}days_since_last_{w}d"] = np.where(
                        seen, since / DAY_NS, no_event_days(w))
        if "distinct_event_types" in aggs:
            assert counts is not None
            cols = [codes.index(code) for code in b.types]
            out[f"{b.source}__distinct_event_types_{w}d"] = (
                (counts[:, cols] > 0).sum(axis=1).astype(np.float64))
    return out


def _spell_block(b: SpellBlock, ctx: _AsOf) -> dict[str, F64]:
    sp = spell_intervals(ctx.tables, b.source, b.spell.start, b.spell.end)
    t, P = ctx.t, ctx.P
    base = f"{b.source}__{b.spell.spell_name}_spell__"
    act = sp.active(t)
    out: dict[str, F64] = {}
    for agg in b.aggregations:
        if agg == "spell_active":
            flag = np.zeros(P)
            flag[sp.person[act]] = 1.0
            out[f"{base}active"] = flag
        elif agg == "days_in_current_spell":
            days = np.zeros(P)
            days[sp.person[act]] = (t - sp.start[act]) / DAY_NS
            out[f"{base}days_in_current"] = days
        else:
            begun = sp.start < t
            person, start, end = sp.person[begun], sp.start[begun], sp.end[begun]
            for w in b.windows_days:
                # An end at or after as_of is not known yet: the spell runs up to as_of.
                overlap = np.minimum(end, t) - np.maximum(start, t - w * DAY_NS)
                out[f"{base}days_on_{w}d"] = _weighted_counts(
                    person, np.maximum(overlap, 0) / DAY_NS, P)
    return out


def _cross_silo_block(b: CrossSiloBlock, ctx: _AsOf) -> dict[str, F64]:
    suffix = "" if len(b.sources) == len(SILO_NAMES) else "_of_" + "_".join(b.sources)
    hh = ctx.reg.household
    out: dict[str, F64] = {}
    for w in b.windows_days:
        silos = np.zeros(ctx.P)
        family = np.zeros(ctx.P)
        for source in b.sources:
            arr = source_arrays(ctx.tables, source)
            sl = arr.window(ctx.t, w)
            known = np.bincount(arr.person[sl], minlength=ctx.P) > 0
            silos += known
            if b.household:
                any_member = np.bincount(hh[known & ctx.present],
                                         minlength=ctx.reg.n_households) > 0
                family += any_member[hh] | known
        out[f"cross_silo__silos_known{suffix}_{w}d"] = silos
        if b.household:
            out[f"cross_silo__household_silos_known{suffix}_{w}d"] = family
    return out


def _population_block(b: PopulationBlock, ctx: _AsOf) -> dict[str, F64]:
    pop, reg = ctx.tables.population, ctx.reg
    out: dict[str, F64] = {}
    for a in b.attributes:
        if a == "age_years":
            value = ctx.age.astype(np.float64)
        elif a == "household_size":
            value = ctx.household_sum(np.ones(ctx.P)) + 1.0
        elif a == "household_children":
            kid = (ctx.age < 18).astype(np.float64)
            value = ctx.household_sum(kid) + kid
        elif a == "years_resident":
            value = np.maximum(ctx.t - reg.move_in, 0) / _YEAR_NS
        elif a == "sex_male":
            value = (pop["sex"] == "M").to_numpy(dtype=np.float64)
        elif a == "disability":
            value = pop["disability"].to_numpy(dtype=np.float64)
        else:
            origin = a.removeprefix("origin_")
            value = (pop["origin"] == origin).to_numpy(dtype=np.float64)
        out[f"population__{a}"] = value
    return out


def _block_values(block: EventBlock | SpellBlock | CrossSiloBlock | PopulationBlock,
                  ctx: _AsOf) -> dict[str, F64]:
    if isinstance(block, EventBlock):
        return _event_block(block, ctx)
    if isinstance(block, SpellBlock):
        return _spell_block(block, ctx)
    if isinstance(block, CrossSiloBlock):
        return _cross_silo_block(block, ctx)
    return _population_block(block, ctx)


def _sensitive(tables: EventTables, codes: Int, as_of: Int, index: pd.MultiIndex,
               ) -> pd.DataFrame:
    pop = tables.population
    reg = register_arrays(tables)
    age = completed_years(reg.birth_day[codes], as_of.astype("datetime64[ns]")
                          .astype("datetime64[D]"))
    bands = pd.array([label for _, label in AGE_BANDS], dtype="str")
    band = np.searchsorted([lo for lo, _ in AGE_BANDS], np.maximum(age, 0), side="right") - 1
    # Array takes keep the register's (Arrow) string columns: no Python string objects.
    columns = {"sex": pop["sex"].array.take(codes), "age_band": bands.take(band),
               "origin": pop["origin"].array.take(codes),
               "district": pop["district"].array.take(codes),
               "disability": pop["disability"].to_numpy(dtype=bool)[codes]}
    return pd.DataFrame(columns, index=index)


def _index(tables: EventTables, codes: Int, as_of: Int) -> pd.MultiIndex:
    """(person_id, as_of) built from integer codes: no hashing of millions of strings."""
    persons, pcode = np.unique(codes, return_inverse=True)
    dates, dcode = np.unique(as_of, return_inverse=True)
    ids = tables.population["person_id"].iloc[persons].to_numpy()
    # Integer arrays as codes: the stubs only admit sequences, hence Any.
    levels: list[Any] = [pd.Index(ids, name="person_id"),
                         pd.DatetimeIndex(dates.astype("datetime64[ns]"), name="as_of")]
    level_codes: list[Any] = [pcode, dcode]
    return pd.MultiIndex(levels=levels, codes=level_codes, names=["person_id", "as_of"],
                         verify_integrity=False)


def build_profiles(tables: EventTables, rows: pd.DataFrame, spec: FeatureSpec, *,
                   progress: ProgressFn | None = None) -> Profiles:
    """Features of ``spec`` for each (person_id, as_of) row, from events before as_of.

    Parameters
    ----------
    tables
        All data, or a shard holding the rows' persons and their households.
    rows
        Columns ``person_id`` and ``as_of`` (timestamps); e.g. the output of ``cohort()``.
    spec
        The feature spec (``parse_feature_spec`` of an experiment's ``features:``).
    progress
        Called as ``progress(description, done, total)`` once per as-of date.

    Returns
    -------
    Profiles
        ``X`` and ``sensitive`` indexed by (person_id, as_of) in the order of ``rows``.

    Raises
    ------
    InputError
        When ``rows`` lacks a column, has missing dates or persons not in ``tables``.
    """
    features = expand(spec)
    names = [f.name for f in features]
    column = {name: j for j, name in enumerate(names)}
    codes, as_of = check_rows(tables, rows)
    n = len(codes)
    X = np.empty((len(names), n), dtype=np.float64)  # one contiguous row per feature
    order = np.argsort(as_of, kind="stable")
    dates, starts = np.unique(as_of[order], return_index=True)
    bounds = [*starts.tolist(), n]
    for i, t in enumerate(dates.tolist()):
        sel = order[bounds[i]: bounds[i + 1]]
        where: slice | Int = (slice(int(sel[0]), int(sel[-1]) + 1)
                              if sel[-1] - sel[0] + 1 == len(sel) else sel)
        who = codes[sel]
        ctx = _AsOf(tables, int(t))
        for block in spec.blocks:
            for name, values in _block_values(block, ctx).items():
                X[column[name], where] = values[who]
        if progress is not None:
            progress(f"as of {np.datetime64(int(t), 'ns').astype('datetime64[D]')}", i + 1,
                     len(dates))
    index = _index(tables, codes, as_of)
    frame = pd.DataFrame(X.T, index=index, columns=pd.Index(names), copy=False)
    return Profiles(X=frame, sensitive=_sensitive(tables, codes, as_of, index),
                    features=features)
