"""A short summary of an ingested (clean) municipality, for people to read."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from pathlib import Path

import pandas as pd

from overblik.features._contracts import EVENT_SOURCES
from overblik.features._errors import InputError
from overblik.features._tables import EventTables


@dataclass(frozen=True)
class CleanSummary:
    """Headline numbers of a clean folder."""

    persons: int
    households: int
    demo_data: bool
    origin_shares: dict[str, float]
    age_bands: dict[str, int]
    events_per_source: dict[str, int]
    persons_per_source: dict[str, int]
    persons_in_siloes: dict[int, int]  # number of siloes a person is known to -> persons
    quarantined: int
    rows_in: int


AGE_BANDS = (0, 18, 25, 35, 50, 65, 80, 200)


def age_band_labels() -> list[str]:
    """Labels like ``0-17`` for :data:`AGE_BANDS`."""
    return [f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in pairwise(AGE_BANDS)]


def summarise_clean(clean: Path, at: date | None = None) -> CleanSummary:
    """Summarise the output of ``overblik ingest``."""
    report_path = clean / "ingest_report.json"
    if not report_path.exists():
        raise InputError(f"{clean} has no ingest_report.json: run `overblik ingest` first")
    # Through EventTables: the same checks as training (a failed ingest, a deleted or
    # damaged file) instead of a silently smaller summary or a traceback.
    tables = EventTables.load(clean, columns={s.name: [] for s in EVENT_SOURCES})
    report = json.loads(report_path.read_text())
    pop = tables.population
    reference = pd.Timestamp(at) if at else pd.Timestamp(report["today"])
    age = (reference - pop["birth_date"]).dt.days / 365.25
    bands = pd.cut(age, list(AGE_BANDS), right=False, labels=age_band_labels())
    events: dict[str, int] = {}
    persons: dict[str, int] = {}
    known = pd.Series(0, index=pd.Index(pop["person_id"]), dtype="int64")
    for source in EVENT_SOURCES:
        if source.name not in tables.events:
            continue
        ids = tables.events[source.name]["person_id"]
        events[source.name] = len(ids)
        distinct = ids.drop_duplicates()
        persons[source.name] = len(distinct)
        known.loc[known.index.intersection(pd.Index(distinct))] += 1
    sources = report["sources"]
    return CleanSummary(
        persons=len(pop),
        households=int(pop["household_id"].nunique()),
        demo_data=bool(report.get("demo_data")),
        origin_shares={str(k): float(v) for k, v in
                       pop["origin"].value_counts(normalize=True).items()},
        age_bands={str(k): int(v) for k, v in bands.value_counts(sort=False).items()},
        events_per_source=events,
        persons_per_source=persons,
        persons_in_siloes={int(str(k)): int(v) for k, v in
                           known.value_counts().sort_index().items()},
        quarantined=sum(int(s["quarantined"]) for s in sources.values()),
        rows_in=sum(int(s["rows_in"]) for s in sources.values()),
    )
