"""The clean tables of one municipality (or one shard of its persons) in memory.

``EventTables.load(clean)`` reads the folder written by ``overblik ingest``: the population
register and one events table per silo (a missing silo file means no events from it).
``shard(persons)`` keeps only some persons and the members of their households, so the
profile of a person built from a shard equals the one built from all data -- the same code
runs per shard on a cluster and for one citizen at request time.

The profile builder and the cohorts work on integer arrays derived once per table and kept
in a private cache of the object (:func:`source_arrays`, :func:`register_arrays`,
:func:`spell_intervals`): person codes (the row of the person in ``population``), event times
in int64 nanoseconds, sorted by time. Treat an ``EventTables`` as immutable: build a new one
(e.g. with ``dataclasses.replace``) to change a table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from overblik.features._contracts import EVENT_SOURCES, INGEST_FORMAT, SOURCE_BY_NAME
from overblik.features._errors import InputError

__all__ = ["EventTables", "RegisterArrays", "SourceArrays", "Spells", "register_arrays",
           "source_arrays", "spell_intervals"]

Int = npt.NDArray[np.int64]
DAY_NS = 86_400 * 1_000_000_000
NEVER = np.iinfo(np.int64).max  # "no such date": after every as-of date
POPULATION_COLUMNS = ("person_id", "birth_date", "sex", "district", "household_id", "origin",
                      "disability", "move_in_date", "move_out_date", "death_date")
EVENT_COLUMNS = ("person_id", "event_time", "event_type")


@contextmanager
def _readable(path: Path) -> Iterator[None]:
    """Turn a damaged Parquet file (truncated, overwritten) into one error naming it."""
    try:
        yield
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"{path} cannot be read as Parquet ({exc}): restore the folder or run "
                         "`overblik ingest` again") from None


def _accepted_rows(clean: Path) -> dict[str, int]:
    """The rows the ingest report says it wrote, per source (empty without a report).

    Raises
    ------
    InputError
        When the report says the ingest failed (the folder is kept so that nothing is lost,
        but it is not data to learn from or score with), or when another version of ingest
        wrote it.
    """
    report = clean / "ingest_report.json"
    if report.is_dir():
        raise InputError(f"{report} is a folder, not an ingest report: run `overblik ingest` "
                         "again")
    if not report.is_file():
        return {}  # written by hand or by a test: nothing to hold the files against
    try:
        doc = json.loads(report.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{report} is not readable JSON: run `overblik ingest` again") from None
    if not isinstance(doc, dict):
        raise InputError(f"{report} is not an ingest report: run `overblik ingest` again")
    if doc.get("format") != INGEST_FORMAT:
        raise InputError(f"{clean} was written by another version of `overblik ingest` "
                         f"({doc.get('format')!r}, this one writes {INGEST_FORMAT!r}; older "
                         "folders hold raw household ids): run `overblik ingest` again on "
                         "the extracts")
    errors = doc.get("errors") or []
    if errors:
        raise InputError(f"{clean}: the ingest of this folder failed ({errors[0]}): fix the "
                         "extracts and run `overblik ingest` again")
    sources = doc.get("sources")
    if not isinstance(sources, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("accepted"), int)
            for v in sources.values()) or not isinstance(doc.get("today"), str):
        raise InputError(f"{report} is not an ingest report (no per-source counts or date): "
                         "run `overblik ingest` again")
    return {name: int(v["accepted"]) for name, v in sources.items()}


def _check_rows(path: Path, rows: int, accepted: dict[str, int], name: str) -> None:
    """A file whose row count is not what the ingest wrote was changed (or swapped) since."""
    if name in accepted and rows != accepted[name]:
        raise InputError(f"{path} holds {rows:,} rows but the ingest wrote {accepted[name]:,}: "
                         "the folder was changed since; restore it or run `overblik ingest` "
                         "again")


@dataclass(frozen=True)
class EventTables:
    """The population register and the events of each silo, as clean DataFrames.

    Attributes
    ----------
    population
        One row per person (``person_id`` unique): birth, sex, district, household, origin,
        disability, move in/out and death dates.
    events
        Silo name -> events (``person_id``, ``event_time``, ``event_type`` and attributes).
    """

    population: pd.DataFrame
    events: dict[str, pd.DataFrame]
    _cache: dict[Any, Any] = field(default_factory=dict, init=False, repr=False,
                                   compare=False)

    @classmethod
    def load(cls, clean: Path, persons: Sequence[str] | None = None, *,
             columns: Mapping[str, Sequence[str]] | None = None) -> EventTables:
        """Read a clean folder (the output of ``overblik ingest``).

        Parameters
        ----------
        clean
            The folder with ``population.parquet`` and ``<silo>.parquet`` files.
        persons
            Only these persons and the members of their households (a shard); all when None.
        columns
            Only these silos, each with these columns (``person_id``, ``event_time`` and
            ``event_type`` are always read); e.g. ``required_columns(spec)``. All when None.

        Raises
        ------
        InputError
            When the folder or its register is missing, or a person is not in the register.
        """
        clean = Path(clean)
        register = clean / "population.parquet"
        if not register.is_file():
            raise InputError(f"{clean} has no population.parquet: point to the output folder "
                             "of `overblik ingest`")
        accepted = _accepted_rows(clean)
        ingested = {name for name, rows in accepted.items() if rows > 0}
        with _readable(register):
            _check_rows(register, pq.read_metadata(register).num_rows, accepted, "population")
            pop_table = pq.read_table(register, columns=list(POPULATION_COLUMNS))
        wanted: pa.Array | None = None
        if persons is not None:
            pop_table, wanted = _shard_register(pop_table, persons)
        population = pop_table.to_pandas()
        chosen = ({s.name: list(s.columns) for s in EVENT_SOURCES} if columns is None
                  else {k: list(v) for k, v in columns.items()})
        events: dict[str, pd.DataFrame] = {}
        for name, cols in chosen.items():
            if name not in SOURCE_BY_NAME or name == "population":
                raise InputError(f"columns: {name!r} is not a silo; choose from "
                                 f"{', '.join(s.name for s in EVENT_SOURCES)}")
            path = clean / f"{name}.parquet"
            if not path.is_file():
                if name in ingested:  # a deleted file would read as "no events" everywhere
                    raise InputError(f"{path} is missing, but the ingest wrote it with rows: "
                                     "restore the folder or run `overblik ingest` again")
                continue  # silo extracts are optional: no file, no events
            read = list(dict.fromkeys([*EVENT_COLUMNS, *(c for c in cols if c != "cpr")]))
            with _readable(path):
                footer = pq.read_metadata(path)  # once: row count and columns
                _check_rows(path, footer.num_rows, accepted, name)
                missing = sorted(set(read) - set(footer.schema.to_arrow_schema().names))
                if missing:
                    raise InputError(f"{path}: no column(s) {', '.join(missing)}; this folder "
                                     "is not the output of `overblik ingest`, or the columns "
                                     "are misspelt")
                table = pq.read_table(path, columns=read,
                                      filters=None if wanted is None
                                      else pc.field("person_id").isin(wanted))
            events[name] = table.to_pandas()
        return cls(population=population, events=events)

    def shard(self, persons: Sequence[str]) -> EventTables:
        """Only ``persons`` and every member of their households (order kept).

        Raises
        ------
        InputError
            When a person is not in the register.
        """
        pop = self.population
        ids = pd.Index(pop["person_id"])
        pos = ids.get_indexer(pd.Index(list(persons)))
        _check_known(persons, pos)
        keep = pop["household_id"].isin(pop["household_id"].to_numpy()[pos]).to_numpy()
        members = pop["person_id"].to_numpy()[keep]
        return EventTables(
            population=pop.loc[keep].reset_index(drop=True),
            events={name: df.loc[df["person_id"].isin(members).to_numpy()]
                    .reset_index(drop=True) for name, df in self.events.items()},
        )

    def event_span(self) -> tuple[pd.Timestamp, pd.Timestamp] | None:
        """The first and the last event time in any silo (where the data begins and ends),
        or None without events."""
        times = [(frame["event_time"].min(), frame["event_time"].max())
                 for frame in self.events.values() if len(frame)]
        times = [(lo, hi) for lo, hi in times if pd.notna(lo)]
        if not times:
            return None
        first = min(lo for lo, _ in times)
        last = max(hi for _, hi in times)
        return pd.Timestamp(first).tz_localize(None), pd.Timestamp(last).tz_localize(None)

    def fingerprint(self) -> str:
        """A stable content hash of the data (for MLflow): independent of row order.

        sha256 over each table's name, columns and dtypes, and the sorted 64-bit hashes of
        its rows.
        """
        digest = hashlib.sha256()
        for name, df in [("population", self.population), *sorted(self.events.items())]:
            cols = sorted(df.columns)
            digest.update(f"{name}|{len(df)}|".encode())
            digest.update("|".join(f"{c}:{df[c].dtype}" for c in cols).encode())
            rows = pd.util.hash_pandas_object(df[cols], index=False).to_numpy()
            digest.update(np.sort(rows).tobytes())
        return digest.hexdigest()

    @property
    def n_persons(self) -> int:
        return len(self.population)


def _check_known(persons: Sequence[str], pos: npt.NDArray[np.intp]) -> None:
    missing = [persons[i] for i in np.flatnonzero(pos < 0)[:3]]
    if missing:
        n = int((pos < 0).sum())
        raise InputError(f"{n} person id(s) are not in the population register, e.g. "
                         f"{', '.join(map(str, missing))}: use pseudonymised person ids from "
                         "the same ingest (the same key)")


def _shard_register(pop: pa.Table, persons: Sequence[str]) -> tuple[pa.Table, pa.Array]:
    """The register rows of ``persons`` and their households' members, and their ids."""
    ids = pop.column("person_id")
    pos = (pc.index_in(pa.array(list(persons), type=ids.type), value_set=ids)
           .fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp))
    _check_known(persons, pos)
    households = pc.take(pop.column("household_id"), pa.array(pos))
    pop = pop.filter(pc.is_in(pop.column("household_id"), value_set=households))
    return pop, pop.column("person_id").combine_chunks()


# --- integer arrays for the builder (cached per table object) ----------------------------
@dataclass(frozen=True)
class SourceArrays:
    """One silo's events as arrays sorted by time (stable: ties keep the file order).

    ``person`` is the row of the person in ``population``; events of persons not in the
    register or with an unknown event type are left out.
    """

    person: npt.NDArray[np.int32]
    time: Int  # int64 ns, ascending
    event_type: npt.NDArray[np.int16]  # index into the silo's code list
    order: npt.NDArray[np.int64]  # row of the event in the DataFrame

    def __len__(self) -> int:
        return len(self.time)

    def window(self, as_of: int, days: int) -> slice:
        """The events in ``[as_of - days, as_of)`` (as_of in ns)."""
        lo = int(np.searchsorted(self.time, as_of - days * DAY_NS, side="left"))
        hi = int(np.searchsorted(self.time, as_of, side="left"))
        return slice(lo, hi)


@dataclass(frozen=True)
class RegisterArrays:
    """Register facts per person (population row order) as arrays."""

    birth_day: npt.NDArray[np.datetime64]  # datetime64[D]
    birth: Int  # ns
    move_in: Int  # ns
    leave: Int  # ns of the first of move-out and death, NEVER when neither
    household: npt.NDArray[np.int64]  # household code 0..H-1
    n_households: int

    def present(self, as_of: int) -> npt.NDArray[np.bool_]:
        """Living in the municipality at ``as_of``: moved in before it, not left before it.

        Register dates are days (midnight): like events, a date is known at ``as_of`` only
        when strictly before it.
        """
        out: npt.NDArray[np.bool_] = (self.move_in < as_of) & (self.leave >= as_of)
        return out


@dataclass(frozen=True)
class Spells:
    """Spells of one kind, one row per spell: person, start and end (ns; NEVER if open)."""

    person: npt.NDArray[np.int64]
    start: Int
    end: Int

    def active(self, as_of: int) -> npt.NDArray[np.bool_]:
        """Spells active at ``as_of`` from what is known before it: started before, not
        ended before (an end at ``as_of`` exactly is not yet known)."""
        out: npt.NDArray[np.bool_] = (self.start < as_of) & (self.end >= as_of)
        return out


def _frame_cached(tables: EventTables, key: tuple[Any, ...], frame: object) -> Any:
    hit = tables._cache.get(key)
    # The frame is part of the key by identity, so a replaced table is never served stale.
    return hit[1] if hit is not None and hit[0] is frame else None


def _to_ns(values: pd.Series | pd.Index) -> Int:
    """int64 nanoseconds of a datetime column (any unit); NaT becomes NEVER."""
    arr = np.asarray(values, dtype="datetime64[ns]")
    out = arr.view(np.int64).copy()
    out[np.isnat(arr)] = NEVER
    return out


def person_codes(tables: EventTables, ids: pd.Series | Sequence[str]) -> npt.NDArray[np.int64]:
    """Row in ``population`` of each id; -1 when the id is not in the register."""
    value_set = _population_ids(tables)
    arr = pa.array(ids) if not isinstance(ids, pd.Series) else pa.array(ids.array)
    if arr.type != value_set.type:
        arr = arr.cast(value_set.type)
    codes = pc.index_in(arr, value_set=value_set)
    return codes.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _population_ids(tables: EventTables) -> pa.Array:
    pop = tables.population
    key = ("ids",)
    hit = _frame_cached(tables, key, pop)
    if hit is None:
        hit = pa.array(pop["person_id"].array)
        if isinstance(hit, pa.ChunkedArray):
            hit = hit.combine_chunks()
        if hit.type not in (pa.string(), pa.large_string()):
            hit = hit.cast(pa.large_string())
        tables._cache[key] = (pop, hit)
    return hit


def source_arrays(tables: EventTables, source: str) -> SourceArrays:
    """The silo's events as time-sorted integer arrays (empty when the silo is absent)."""
    df = tables.events.get(source)
    key = ("source", source)
    hit = _frame_cached(tables, key, df)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    codes = list(SOURCE_BY_NAME[source].event_codes)
    if df is None or len(df) == 0:
        out = SourceArrays(np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int16),
                           np.zeros(0, np.int64))
    else:
        person = person_codes(tables, df["person_id"])
        etype = pc.index_in(pa.array(df["event_type"].array), value_set=pa.array(codes))
        etype_np = etype.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int16)
        time = _to_ns(df["event_time"])
        ok = (person >= 0) & (etype_np >= 0) & (time != NEVER)
        rows = np.flatnonzero(ok)
        order = rows[np.argsort(time[rows], kind="stable")]
        out = SourceArrays(person[order].astype(np.int32), time[order], etype_np[order],
                           order.astype(np.int64))
    tables._cache[key] = (df, out)
    return out


def source_values(tables: EventTables, source: str, column: str) -> npt.NDArray[np.float64]:
    """A numeric column of a silo in the order of :func:`source_arrays` (NaN = missing)."""
    df = tables.events.get(source)
    key = ("values", source, column)
    hit = _frame_cached(tables, key, df)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    arrays = source_arrays(tables, source)
    if df is None or len(df) == 0:
        out = np.zeros(0, np.float64)
    else:
        if column not in df.columns:
            raise InputError(f"the {source} table has no column {column!r}: load it (see "
                             "required_columns(spec)) or remove the block that needs it")
        out = df[column].to_numpy(dtype=np.float64, na_value=np.nan)[arrays.order]
    tables._cache[key] = (df, out)
    return out


def register_arrays(tables: EventTables) -> RegisterArrays:
    """Birth, presence and household arrays of the register (cached)."""
    pop = tables.population
    key = ("register",)
    hit = _frame_cached(tables, key, pop)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    birth = _to_ns(pop["birth_date"])
    leave = np.minimum(_to_ns(pop["move_out_date"]), _to_ns(pop["death_date"]))
    household, uniques = pd.factorize(pop["household_id"])
    out = RegisterArrays(
        birth_day=np.asarray(pop["birth_date"], dtype="datetime64[D]"),
        birth=birth, move_in=_to_ns(pop["move_in_date"]), leave=leave,
        household=household.astype(np.int64), n_households=len(uniques))
    tables._cache[key] = (pop, out)
    return out


def spell_intervals(tables: EventTables, source: str, start: str,
                    ends: Sequence[str]) -> Spells:
    """Spells from start/end events: a start opens a spell (a start while one is open
    continues it), the first end after it closes it; an end without an open spell is
    ignored. At equal times an end comes before a start (the old spell closes, a new one
    opens)."""
    df = tables.events.get(source)
    key = ("spells", source, start, tuple(ends))
    hit = _frame_cached(tables, key, df)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    arr = source_arrays(tables, source)
    codes = list(SOURCE_BY_NAME[source].event_codes)
    is_start = arr.event_type == codes.index(start)
    is_end = np.isin(arr.event_type, [codes.index(e) for e in ends])
    sel = np.flatnonzero(is_start | is_end)
    person, time, opens = arr.person[sel].astype(np.int64), arr.time[sel], is_start[sel]
    order = np.lexsort((opens, time, person))
    person, time, opens = person[order], time[order], opens[order]
    first = np.ones(len(person), dtype=bool)
    first[1:] = person[1:] != person[:-1]
    prev_open = np.zeros(len(person), dtype=bool)
    prev_open[1:] = opens[:-1]
    prev_open[first] = False
    opening = np.flatnonzero(opens & ~prev_open)
    closing = np.flatnonzero(~opens & prev_open)
    # The closing of an opening is the next closing row, if it belongs to the same person.
    nxt = np.searchsorted(closing, opening)
    has = nxt < len(closing)
    has[has] = person[closing[nxt[has]]] == person[opening[has]]
    end = np.full(len(opening), NEVER, dtype=np.int64)
    end[has] = time[closing[nxt[has]]]
    out = Spells(person=person[opening], start=time[opening], end=end)
    tables._cache[key] = (df, out)
    return out


def completed_years(birth_day: npt.NDArray[np.datetime64],
                    as_of_day: npt.NDArray[np.datetime64]) -> npt.NDArray[np.int64]:
    """Age in completed years on ``as_of_day`` (a 29 February birthday counts on 1 March in
    other years, as in the synthetic municipality)."""
    def parts(d: npt.NDArray[np.datetime64]) -> tuple[Int, Int]:
        year = d.astype("datetime64[Y]").astype(np.int64)
        month_start = d.astype("datetime64[M]")
        md = ((month_start.astype(np.int64) % 12) * 100
              + (d - month_start.astype("datetime64[D]")).astype(np.int64))
        return year, md

    by, bmd = parts(birth_day)
    ay, amd = parts(as_of_day)
    out: npt.NDArray[np.int64] = ay - by - (amd < bmd).astype(np.int64)
    return out
