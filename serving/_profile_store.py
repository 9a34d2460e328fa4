"""The profile store: every cohort member's features at one as-of date, for ``/score`` by CPR.

``overblik profiles`` (the nightly batch) builds it with exactly the functions training uses
(:func:`overblik.features._cohorts.cohort`, :func:`overblik.features._profiles.build_profiles`
on the experiment's feature spec), so no feature is computed twice in two ways. The file holds
``person_id`` (pseudonym), ``as_of`` and one column per feature, and records which model,
feature list, as-of date and pseudonymisation key (fingerprint) it was built for: Parquet
keeps that in its schema metadata, CSV in a ``<file>.meta.json`` next to it. The service
refuses a store built for other features or with another key (a CPR would then find no one).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from overblik.experiments._trainable import ShortHistory, short_history
from overblik.features._cohorts import cohort
from overblik.features._errors import InputError
from overblik.features._feature_spec import parse_feature_spec
from overblik.features._profiles import build_profiles
from overblik.features._tables import EventTables
from overblik.serving._model import ServedModel, StartupError

__all__ = ["ProfileStore", "ProfileStoreMeta", "StoreFormat", "build_profile_store"]

StoreFormat = Literal["parquet", "csv"]
FORMAT = "overblik-profile-store/1"
_META_KEY = b"overblik"
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ProfileStoreMeta:
    """What a profile store was built for."""

    format: str
    model: str
    model_version: str
    config_hash: str
    cohort: str
    as_of: str
    rows: int
    features: list[str]
    key_fingerprint: str
    demo_data: bool
    built_at: str
    # What the service should say at start-up about these profiles (a store written before
    # this field existed has none).
    warnings: list[str] = field(default_factory=list)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def _check_csv_fields(path: Path, fix: str) -> None:
    """Refuse a CSV store with a row of more or fewer fields than its header (called when
    pandas' reading shows the signs of one).

    pandas would not: an extra field in the first row turns the first column into the
    index (every person_id then reads as the as-of date, "a duplicate person"), and a short
    row gets blanks, scored as unknown values.
    """
    bad: list[tuple[int, int, int]] = []  # (line, row, fields)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            return  # empty: pandas says so
        row = 0
        for fields in reader:
            if not fields:  # a blank line, skipped by pandas too
                continue
            row += 1
            if len(fields) != len(header):
                bad.append((reader.line_num, row, len(fields)))
    if bad:
        line, row, n = bad[0]
        more = f" ({len(bad) - 1} more such line(s))" if len(bad) > 1 else ""
        raise StartupError(
            f"profile store {path}: line {line} (row {row}) has {n} fields, the header has "
            f"{len(header)}{more}: a stray or missing comma, or a value with a comma that "
            f"is not quoted; correct the line, or {fix}")


# A nightly batch runs on data up to the day before; a month past the last event is a
# stale extract or a mistyped date.
STALE_DAYS = 31


def _check_covered(tables: EventTables, as_of: date) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Profiles need history before ``as_of`` and data up to it: refuse dates outside.

    Returns the data's span (``EventTables.event_span``: a pass over every event).
    """
    span = tables.event_span()
    if span is None:
        raise InputError("the ingested data holds no events: profiles would have no history")
    first, last = span
    day = pd.Timestamp(as_of)
    if day <= first.normalize():
        raise InputError(f"--as-of {as_of}: the data begins on {first.date()}, so every profile "
                         "would show no history; give a date the data covers")
    if (day - last.normalize()).days > STALE_DAYS:
        raise InputError(f"--as-of {as_of}: the data ends on {last.date()}, more than "
                         f"{STALE_DAYS} days before; the profiles would miss the most recent "
                         "events: ingest newer extracts, or give an earlier date")
    return span


def _short_history_warning(found: ShortHistory, as_of: date) -> str:
    full = (found.begins + pd.Timedelta(days=found.window_days)).date()
    return (f"profiles as of {as_of}: the experiment's features[{found.block}] looks back "
            f"{found.window_days} days, before the data begins ({found.begins.date()}): "
            "features over that window cover less history than the records would hold, so "
            "scores understate what is known about a citizen; build the store as of "
            f"{full} or later, or ingest older extracts")


def _is_profile_store(path: Path) -> bool:
    if path.suffix.lower() == ".csv":
        return _sidecar(path).is_file()
    try:
        return _META_KEY in (pq.read_schema(path).metadata or {})
    except (OSError, pa.ArrowException):  # not Parquet at all
        return False


def _check_target(out: Path, clean: Path, fmt: StoreFormat) -> None:
    """Refuse an ``--out`` that would replace something else than a profile store, before any
    work: a folder, a file in the ingested data, another file, a name of the other format."""
    if out.is_dir():
        raise InputError(f"--out {out} is a folder: give a file name, e.g. "
                         f"{out / ('profiles.' + fmt)}")
    if clean.resolve() in out.resolve().parents:
        raise InputError(f"--out {out} is inside the ingested data {clean}, which it would "
                         "change: write the profile store elsewhere (default data/profiles/)")
    other = {"parquet": ".csv", "csv": ".parquet"}[fmt]
    if out.suffix.lower() == other:
        raise InputError(f"--out {out} names a {other[1:]} file but --format is {fmt}: give "
                         f"--format {other[1:]} or a file name ending in .{fmt}")
    if out.is_file() and not _is_profile_store(out):
        raise InputError(f"--out {out} exists and is not a profile store; it would be "
                         "replaced: give another file name, or remove it first")


def build_profile_store(model: ServedModel, clean: Path, as_of: date, out: Path, *,
                        fmt: StoreFormat = "parquet",
                        progress: ProgressFn | None = None) -> ProfileStoreMeta:
    """Write the features of the model's cohort at ``as_of`` to ``out``.

    Parameters
    ----------
    model
        The model the store serves (its experiment gives cohort and feature spec).
    clean
        Folder written by ``overblik ingest``.
    as_of
        The profiles' date: events strictly before it count.
    out
        The file to write.
    fmt
        ``parquet`` (metadata inside) or ``csv`` (metadata in ``<out>.meta.json``).

    Raises
    ------
    InputError
        When the clean folder is not ingested data.
    """
    step = progress or (lambda *_: None)
    report = Path(clean) / "ingest_report.json"
    if not report.is_file():
        raise InputError(f"{clean} holds no ingested data (no ingest_report.json): run "
                         "`overblik ingest` first or pass --clean DIR")
    out = Path(out)
    _check_target(out, Path(clean), fmt)
    ingest = json.loads(report.read_text(encoding="utf-8"))
    step("loading clean data", 0, 3)
    tables = EventTables.load(clean)
    span = _check_covered(tables, as_of)
    found = short_history(model.config, span=span, dates=[pd.Timestamp(as_of)])
    spec = parse_feature_spec(model.config.features, section="features")
    step("cohort", 1, 3)
    rows = cohort(tables, [pd.Timestamp(as_of)], model.config.cohort)
    step("profiles", 2, 3)
    profiles = build_profiles(tables, rows, spec)
    names = [f.name for f in profiles.features]
    if names != model.feature_names:
        raise InputError(f"the feature code makes {len(names)} features but {model.name} "
                         f"version {model.version} expects {len(model.feature_names)}: the "
                         "model was trained with another version of the feature code; retrain")
    frame = profiles.X.reset_index()
    frame["person_id"] = frame["person_id"].astype(str)
    meta = ProfileStoreMeta(
        format=FORMAT, model=model.name, model_version=model.version,
        config_hash=model.config.config_hash(), cohort=model.config.cohort,
        as_of=as_of.isoformat(), rows=len(frame), features=names,
        key_fingerprint=str(ingest.get("key_fingerprint", "")),
        demo_data=bool(ingest.get("demo_data", False)),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        warnings=[] if found is None else [_short_history_warning(found, as_of)])
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        table = pa.Table.from_pandas(frame, preserve_index=False)
        schema = table.schema.with_metadata({**(table.schema.metadata or {}),
                                             _META_KEY: json.dumps(asdict(meta)).encode()})
        pq.write_table(table.cast(schema), out)
    else:
        frame.to_csv(out, index=False)
        _sidecar(out).write_text(json.dumps(asdict(meta), indent=1), encoding="utf-8")
    step("done", 3, 3)
    return meta


class ProfileStore:
    """A profile store in memory: pseudonym -> feature row.

    Use :meth:`load`; ``matrix`` is float64 with the model's columns in the model's order.
    """

    def __init__(self, path: Path, meta: ProfileStoreMeta, person_ids: list[str],
                 matrix: npt.NDArray[np.float64]) -> None:
        self.path = path
        self.meta = meta
        self.matrix = matrix
        self._row = {pid: i for i, pid in enumerate(person_ids)}
        if len(self._row) != len(person_ids):
            first: dict[str, int] = {}
            for i, pid in enumerate(person_ids):
                if pid in first:
                    break
                first[pid] = i
            raise StartupError(f"profile store {path}: rows {first[pid] + 1} and {i + 1} have "
                               f"the same person_id ({len(person_ids) - len(self._row)} "
                               "duplicate row(s) in all); rebuild it with `overblik profiles`")

    def __len__(self) -> int:
        return len(self._row)

    def row(self, pseudonym: str) -> npt.NDArray[np.float64] | None:
        """The features of one person, or None when the person is not in the store."""
        i = self._row.get(pseudonym)
        return None if i is None else self.matrix[i]

    @classmethod
    def load(cls, path: Path, *, features: list[str], key_fingerprint: str) -> ProfileStore:
        """Read and check a store for a model's features and the service's key.

        Raises
        ------
        StartupError
            When the file is missing or unreadable, or was built for other features or
            with another pseudonymisation key.
        """
        path = Path(path)
        fix = "build it with `overblik profiles --as-of DATE --model NAME --clean DIR`"
        if not path.is_file():
            raise StartupError(f"no profile store at {path}: {fix}")
        try:
            if path.suffix == ".csv":
                meta_raw = json.loads(_sidecar(path).read_text(encoding="utf-8"))
                try:
                    frame = pd.read_csv(path, dtype={"person_id": str})
                except pd.errors.ParserError:
                    _check_csv_fields(path, fix)  # names the line
                    raise
                # A row of other length reads as a shifted index or as blanks: only then is
                # the file parsed again, row by row, to name the line (a good store is not).
                if not isinstance(frame.index, pd.RangeIndex) or frame.isna().to_numpy().any():
                    _check_csv_fields(path, fix)
            else:
                table = pq.read_table(path)
                raw = (table.schema.metadata or {}).get(_META_KEY)
                if raw is None:
                    raise ValueError("no overblik metadata")
                meta_raw = json.loads(raw)
                frame = table.to_pandas()
            meta = ProfileStoreMeta(**meta_raw)
        except StartupError:
            raise
        except (OSError, ValueError, TypeError, csv.Error, pa.ArrowException) as exc:
            raise StartupError(f"profile store {path} is not readable as one ({exc}): "
                               f"{fix}") from None
        if meta.features != features:
            raise StartupError(f"profile store {path} was built for {meta.model} version "
                               f"{meta.model_version} with other features than the served "
                               f"model has: {fix}")
        if meta.key_fingerprint != key_fingerprint:
            raise StartupError(f"profile store {path} was built from data pseudonymised with "
                               f"key {meta.key_fingerprint or '(unknown)'}, but the service "
                               f"has key {key_fingerprint}: no CPR number would be found; use "
                               "the ingest key (--key-file, $OVERBLIK_PSEUDONYM_KEY or "
                               "--demo-key)")
        missing = [c for c in ("person_id", *features) if c not in frame.columns]
        if missing:
            raise StartupError(f"profile store {path} lacks column(s) "
                               f"{', '.join(missing[:3])}: {fix}")
        numbers = frame[features].apply(pd.to_numeric, errors="coerce")
        bad = frame[features].notna().to_numpy() & ~np.isfinite(
            numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        if bad.any():
            row, col = (int(v[0]) for v in np.nonzero(bad))
            raise StartupError(f"profile store {path}: row {row + 1}, column {features[col]} is "
                               "not a finite number (edited by hand?): " + fix)
        if frame["person_id"].isna().any():
            raise StartupError(f"profile store {path}: a row has no person_id: {fix}")
        matrix = np.ascontiguousarray(numbers.to_numpy(dtype=np.float64, na_value=np.nan))
        return cls(path, meta, frame["person_id"].astype(str).tolist(), matrix)
