"""Small, valid raw extracts for ingest tests, written as CSV or Parquet, plus corruptions.

Everything is built as text (like a CSV export) so a test can put any value in any cell.
Persons after the first ``with_events`` share have no events, so a test can quarantine their
register row without events of theirs turning into ``unknown_cpr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from overblik.features._contracts import (
    APP_CODES,
    BENEFIT_TYPES,
    DISTRICT_CODES,
    GRADES,
    JOB_READINESS,
    ORIGIN_CODES,
    REPORTER_CODES,
    SOURCE_BY_NAME,
    SOURCES,
)

TODAY = date(2024, 6, 30)
EVENT_START = date(2019, 1, 1)
CPR_SHAPED = r"\d{6}-?\d{4}"


def cpr_for(birth: date, serial: int) -> str:
    """A well-formed CPR number for a birth date (7th digit consistent with the century)."""
    if birth.year < 1900:
        seventh = 5 + serial % 4
    elif birth.year < 2000:
        seventh = serial % 4
    elif birth.year <= 2036:
        seventh = 4
    else:
        seventh = 5 + serial % 4
    return f"{birth:%d%m%y}-{seventh}{serial % 1000:03d}"


def _day(rng: np.random.Generator, lo: date, hi: date) -> date:
    return lo + timedelta(days=int(rng.integers(0, max((hi - lo).days, 0) + 1)))


def _maybe(rng: np.random.Generator, values: object, p_blank: float = 0.2) -> str:
    if rng.random() < p_blank:
        return ""
    return str(rng.choice(np.asarray(values)))


@dataclass
class RawSet:
    """Raw extracts as text frames (``""`` is an empty field)."""

    frames: dict[str, pd.DataFrame]
    births: dict[str, date]  # CPR -> birth date of the register persons

    def write(self, folder: Path, fmt: str = "csv", *, typed: bool = False) -> Path:
        """Write every frame as ``<source>.<fmt>``; ``typed`` Parquet stores real types."""
        folder.mkdir(parents=True, exist_ok=True)
        for name, frame in self.frames.items():
            if fmt == "csv":
                frame.to_csv(folder / f"{name}.csv", index=False)
            elif typed:
                pq.write_table(_typed(name, frame), folder / f"{name}.parquet")
            else:
                table = pa.table({c: pa.array(frame[c].tolist(), pa.string()) for c in frame})
                pq.write_table(table, folder / f"{name}.parquet")
        return folder

    def rows(self, name: str) -> int:
        return len(self.frames[name])

    def set(self, name: str, row: int, column: str, value: str) -> None:
        """Put ``value`` in 0-based data ``row`` (source_row ``row + 1``)."""
        self.frames[name].loc[row, column] = value

    def append_copy(self, name: str, row: int) -> int:
        """Append a copy of ``row``; returns the new row's 0-based index."""
        frame = self.frames[name]
        self.frames[name] = pd.concat([frame, frame.iloc[[row]]], ignore_index=True)
        return len(self.frames[name]) - 1


def _typed(name: str, frame: pd.DataFrame) -> pa.Table:
    """The frame with the contract's types (as a real Parquet extract would carry them)."""
    schema = SOURCE_BY_NAME[name].model.to_schema()
    arrays = {}
    for column, col in schema.columns.items():
        text = frame[column].replace("", None)
        dtype = str(col.dtype)
        if dtype.startswith("datetime"):
            arrays[column] = pa.array(pd.to_datetime(text, format="ISO8601"), pa.timestamp("us"))
        elif dtype.startswith("float"):
            arrays[column] = pa.array(pd.to_numeric(text), pa.float64())
        elif dtype == "bool":
            arrays[column] = pa.array(text.str.lower().map({"true": True, "false": False, "1": True,
                                                "0": False}), pa.bool_())
        else:
            arrays[column] = pa.array(text.tolist(), pa.string())
    return pa.table(arrays)


def make_raw(persons: int = 120, events: int = 60, seed: int = 0,
             sources: tuple[str, ...] | None = None, with_events: float = 0.8) -> RawSet:
    """A valid raw set: ``persons`` register rows and ``events`` rows per event source."""
    rng = np.random.default_rng(seed)
    names = sources or tuple(s.name for s in SOURCES if not s.is_register)
    pop_rows = []
    births: dict[str, date] = {}
    for i in range(persons):
        birth = _day(rng, date(1935, 1, 1), date(2018, 12, 31))
        cpr = cpr_for(birth, 100 + i)
        births[cpr] = birth
        move_in = birth if rng.random() < 0.7 else _day(rng, birth, TODAY)
        moved_out = rng.random() < 0.1
        pop_rows.append({
            "cpr": cpr if rng.random() < 0.8 else cpr.replace("-", ""),
            "birth_date": birth.isoformat(),
            "sex": str(rng.choice(["F", "M"])),
            "district": str(rng.choice(DISTRICT_CODES)),
            "household_id": f"H{i // 3:05d}",
            "origin": str(rng.choice(ORIGIN_CODES)),
            "disability": str(rng.choice(["true", "false", "0", "1", "False"])),
            "move_in_date": move_in.isoformat(),
            "move_out_date": _day(rng, move_in, TODAY).isoformat() if moved_out else "",
            "death_date": "",
        })
    frames = {"population": pd.DataFrame(pop_rows, dtype=object)}
    cprs = list(births)[: max(1, int(persons * with_events))]
    for name in names:
        source = SOURCE_BY_NAME[name]
        rows = []
        for _ in range(events):
            cpr = str(rng.choice(cprs))
            when = _day(rng, max(births[cpr], EVENT_START), TODAY)
            stamp = when.isoformat()
            if rng.random() < 0.3:
                stamp += f" {int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}:00"
            row = {"cpr": cpr, "event_time": stamp,
                   "event_type": str(rng.choice(list(source.event_codes)))}
            row.update(_event_fields(name, rng))
            rows.append(row)
        frames[name] = pd.DataFrame(rows, columns=source.columns, dtype=object)
    return RawSet(frames, births)


def _event_fields(name: str, rng: np.random.Generator) -> dict[str, str]:
    def num(lo: float, hi: float) -> str:
        return "" if rng.random() < 0.2 else f"{rng.uniform(lo, hi):.1f}"

    if name == "children_families":
        return {"reporter": _maybe(rng, REPORTER_CODES), "duration_days": num(0, 700)}
    if name == "employment":
        return {"benefit_type": _maybe(rng, BENEFIT_TYPES),
                "job_readiness": _maybe(rng, JOB_READINESS), "duration_days": num(0, 700)}
    if name == "health":
        return {"duration_days": num(0, 30), "hours": num(0, 100)}
    if name == "schools":
        return {"days": num(0, 20), "grade": _maybe(rng, GRADES)}
    if name == "economy":
        return {"amount_dkk": num(0, 50_000)}
    if name == "digital":
        return {"app": _maybe(rng, APP_CODES), "score": num(0, 10)}
    raise KeyError(name)
