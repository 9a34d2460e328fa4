"""Ingest: validate and pseudonymise the source extracts, quarantining bad rows.

``ingest(raw, out, key)`` reads every ``<source>.csv|.parquet`` in ``raw`` and writes::

    out/<source>.parquet             accepted rows, typed per contract: person_id first
                                     (instead of cpr), the other contract columns,
                                     source_row (1-based data row in the raw file)
    out/quarantine/<source>.parquet  rejected rows: person_id (null when the CPR number is
                                     unparseable), the other columns as the original text,
                                     source_row, reason (the first), reasons (all, ';'-joined)
    out/ingest_report.json           counts per source that reconcile, reasons, key fingerprint

Every Parquet file carries the schema metadata ``overblik.demo_data`` ("true" when made with
the demo key), ``overblik.key_fingerprint`` and ``overblik.source``.

No CPR number, name or address leaves: accepted rows carry only the pseudonym, and any text
value holding a CPR-shaped run of digits (in any column, accepted or quarantined) is replaced
by its keyed pseudonym. Identifier columns (``household_id``) are written only as keyed
pseudonyms (same key; equality is all later steps need), coded columns accept only their
code lists, and a quarantined value that reads as free text (words and spaces: a name or an
address in the wrong field) is written as ``<free text removed>``.

A source with no accepted row (or a register without rows) fails the run with an
:class:`InputError` naming the most common reason and its fix, after everything, quarantine
and report included, has been written; more than half of a source quarantined, a header-only
event extract and 9-digit CPR numbers are ``warnings`` in the report.

Rules worth knowing (the reason codes are in :data:`overblik.features._validation.REASONS`):

- ``source_row`` counts data rows from 1 (the header is not a row; blank CSV lines are
  skipped and not counted).
- Values are read as text. Surrounding whitespace is dropped; an empty value (CSV ``""``,
  Parquet null, a float NaN in Parquet) is missing. Dates are ISO ``YYYY-MM-DD`` with an
  optional `` HH:MM[:SS[.f]]``; tz-aware Parquet timestamps become local wall-clock time.
- ``duplicate``: in an event file, a row identical in every column (as written) to an
  earlier one; in the register, any later row for an already-seen CPR number (with or
  without the dash). The first row is kept.
- Events are checked against the *accepted* register: a person whose register row was
  quarantined makes their events ``unknown_cpr``.

Output is all-or-nothing: everything is written to a hidden temporary folder next to
``out`` and renamed into place at the end. An existing ``out`` is replaced only when it is
empty or holds exactly what an earlier ingest wrote (its ``ingest_report.json`` and
Parquet files); anything else is refused, and a failed run leaves the old output intact.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from overblik.features._contracts import INGEST_FORMAT, INGEST_FORMAT_FAMILY, SOURCES
from overblik.features._errors import InputError
from overblik.features._pseudonym import PseudonymKey
from overblik.features._readers import Extract, check_header, discover, read_text
from overblik.features._validation import (
    RARE_MARK,
    REASONS,
    Register,
    Validated,
    encode_table,
    fix_hint,
    lost_leading_zero_rows,
    rare_bad_values,
    reason_counts,
    reason_texts,
    register_of,
    scrub_text,
    validate,
)

REPORT_NAME = "ingest_report.json"
QUARANTINE = "quarantine"
ProgressFn = Callable[[str, int, int], None]


@dataclass(frozen=True)
class SourceReport:
    """What happened to one extract; ``rows_in == accepted + quarantined``."""

    file: str
    rows_in: int
    accepted: int
    quarantined: int
    reasons: dict[str, int]  # first reason -> rows; sums to ``quarantined``
    reasons_any: dict[str, int]  # every reason -> rows that have it among others
    # column -> accepted rows whose CPR-shaped text value was replaced by its pseudonym
    text_pseudonymised: dict[str, int]


@dataclass(frozen=True)
class Totals:
    """Row counts over all sources."""

    rows_in: int
    accepted: int
    quarantined: int


@dataclass(frozen=True)
class IngestReport:
    """The result of :func:`ingest`, also written as ``out/ingest_report.json``."""

    out: Path
    demo_data: bool
    key_fingerprint: str
    today: date
    sources: dict[str, SourceReport]
    absent_sources: list[str]
    totals: Totals
    # Why the run failed (a source with no accepted row); the rows are written all the same.
    errors: list[str]
    # What deserves a look although the run succeeded (most of a source quarantined, ...).
    warnings: list[str]

    def to_json(self) -> dict[str, object]:
        """The report as written to ``ingest_report.json``."""
        seen = {code for s in self.sources.values() for code in s.reasons_any}
        return {
            "format": INGEST_FORMAT,
            "demo_data": self.demo_data,
            "key_fingerprint": self.key_fingerprint,
            "today": self.today.isoformat(),
            "sources": {name: asdict(s) for name, s in self.sources.items()},
            "absent_sources": self.absent_sources,
            "totals": asdict(self.totals),
            "errors": self.errors,
            "warnings": self.warnings,
            "reason_codes": {code: text for code, text in REASONS.items() if code in seen},
        }


def ingest(raw: Path, out: Path, key: PseudonymKey,
           progress: ProgressFn | None = None, today: date | None = None) -> IngestReport:
    """Validate, pseudonymise and quarantine every extract in ``raw`` into ``out``.

    Parameters
    ----------
    raw
        Folder holding ``<source>.csv`` or ``<source>.parquet`` (population required).
    out
        Output folder: new, empty, or written by an earlier ingest (then replaced).
    key
        Pseudonymisation key; the demo key marks every output as demo data.
    progress
        Called as ``progress(description, done, total)`` after each source.
    today
        Reference date for ``future_date`` (default: today).

    Raises
    ------
    InputError
        When a file is missing, unknown or malformed, or ``out`` cannot be replaced: nothing
        is written then. Also when a source has no accepted row (or the population register
        none at all): then everything, quarantine and report included, is written first,
        so that nothing is lost, and the report's ``errors`` say the same as the message.
    """
    raw, out = Path(raw), Path(out)
    today = today or date.today()
    extracts, absent = discover(raw)
    _check_out(out, raw)
    for extract in extracts:  # fail on a wrong header before hours of work on other files
        check_header(extract)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.ingest-{uuid.uuid4().hex[:8]}")
    try:
        (tmp / QUARANTINE).mkdir(parents=True)
        sources: dict[str, SourceReport] = {}
        register: Register | None = None
        rejections: list[Rejection] = []
        warnings: list[str] = []
        for done, extract in enumerate(extracts, start=1):
            name = extract.source.name
            validated = validate(encode_table(read_text(extract), extract.source),
                                 extract.source, key, today, register)
            if extract.source.is_register:
                register = register_of(validated)
            sources[name] = _write_source(validated, extract, key, tmp)
            assert register is not None  # the register is always the first extract
            rejection, notes = _judge(validated, sources[name], today,
                                      register_empty=len(register.cprs) == 0)
            rejections += [rejection] if rejection else []
            warnings += notes
            del validated  # free this source's codes before the next file is read
            if progress is not None:
                s = sources[name]
                progress(f"{name}: {s.rows_in:,} rows, {s.quarantined:,} quarantined",
                         done, len(extracts))
        report = IngestReport(
            out=out, demo_data=key.is_demo, key_fingerprint=key.fingerprint, today=today,
            sources=sources, absent_sources=absent,
            totals=Totals(rows_in=sum(s.rows_in for s in sources.values()),
                          accepted=sum(s.accepted for s in sources.values()),
                          quarantined=sum(s.quarantined for s in sources.values())),
            errors=_failures(rejections), warnings=warnings,
        )
        (tmp / REPORT_NAME).write_text(json.dumps(report.to_json(), indent=2) + "\n")
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if report.errors:
        raise InputError("; ".join(report.errors) + f" (the quarantine and {REPORT_NAME} are "
                         f"in {out}; nothing was lost)")
    return report


@dataclass(frozen=True)
class Rejection:
    """A source of which no row was accepted: the run fails, naming the cause and the fix."""

    file: str
    rows: int
    reason: str  # the most common (first) reason; "" when the file holds no rows
    fix: str


# More than this share of a source quarantined earns a warning in the report.
WARN_QUARANTINED_SHARE = 0.5


def _judge(v: Validated, s: SourceReport, today: date,
           register_empty: bool) -> tuple[Rejection | None, list[str]]:
    """Whether a source fails the run (nothing accepted), and its warnings."""
    notes: list[str] = []
    zeros = lost_leading_zero_rows(v)
    if zeros:
        notes.append(f"{s.file}: {zeros:,} row(s) hold a 9-digit cpr, a CPR number that lost "
                     "its leading zero on the way through a number: export cpr as text")
    if register_empty and not v.source.is_register:
        return None, notes  # every event is unknown_cpr: the register's error says why
    if s.rows_in == 0:
        if v.source.is_register:
            return Rejection(s.file, 0, "", "the population register must list the "
                             "municipality's persons, else every event is unknown_cpr"), notes
        return None, [*notes, f"{s.file} holds no rows (only a header)"]
    reason = max(s.reasons, key=lambda code: s.reasons[code], default="")
    if s.accepted == 0:
        fix = fix_hint(v, reason, today)
        if v.source.is_register:
            fix += "; without an accepted register every event is quarantined as unknown_cpr"
        return Rejection(s.file, s.rows_in, reason, fix), notes
    if s.quarantined > WARN_QUARANTINED_SHARE * s.rows_in:
        notes.append(f"{s.file}: {s.quarantined:,} of {s.rows_in:,} rows "
                     f"({s.quarantined / s.rows_in:.0%}) quarantined, most as {reason}: "
                     f"{fix_hint(v, reason, today)}")
    return None, notes


def _failures(rejections: list[Rejection]) -> list[str]:
    """One sentence per cause: sources rejected for the same reason are named together."""
    groups: dict[tuple[str, str], list[Rejection]] = {}
    for r in rejections:
        groups.setdefault((r.reason, r.fix), []).append(r)
    sentences = []
    for (reason, fix), group in groups.items():
        if group[0].rows == 0:
            what = f"{group[0].file} holds no rows (only a header)"
        elif len(group) == 1:
            what = f"{group[0].file}: all {group[0].rows:,} rows quarantined ({reason})"
        else:
            what = f"{', '.join(r.file for r in group)}: all rows quarantined ({reason})"
        sentences.append(f"{what}: {fix}")
    return sentences


def _write_source(v: Validated, extract: Extract, key: PseudonymKey, folder: Path) -> SourceReport:
    meta = {"overblik.demo_data": "true" if key.is_demo else "false",
            "overblik.key_fingerprint": key.fingerprint, "overblik.source": v.source.name}
    name = f"{v.source.name}.parquet"
    accepted_rows, quarantined_rows = v.accepted, v.quarantined
    build, replaced = _accepted_builder(v, key, accepted_rows)
    accepted = _write_parts(build, accepted_rows, folder / name, meta)
    quarantined = _write_parts(_quarantine_builder(v, key, quarantined_rows),
                               quarantined_rows, folder / QUARANTINE / name, meta)
    first, every = reason_counts(v)
    report = SourceReport(file=extract.path.name, rows_in=v.rows, accepted=accepted,
                          quarantined=quarantined, reasons=first, reasons_any=every,
                          text_pseudonymised=replaced)
    if report.rows_in != report.accepted + report.quarantined or \
            sum(first.values()) != report.quarantined:
        raise RuntimeError(f"ingest bug: {name} does not reconcile: {report}")
    return report


# pandas' default text dtype, which is also what the contracts' ``Series[str]`` resolves to.
TEXT_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)
# Output is built and written this many rows at a time, so a 30-million-row extract never
# holds a second full copy of itself as output columns (one part is one Parquet row group).
PART_ROWS = 1_000_000
TableOfRows = Callable[[np.ndarray], pa.Table]


def _strings(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    """Arrow text as a pandas column without copying through Python objects."""
    series = values.cast(pa.large_string()).to_pandas(types_mapper=lambda _: TEXT_DTYPE)
    return series.array


def _accepted_builder(v: Validated, key: PseudonymKey,
                      rows: np.ndarray) -> tuple[TableOfRows, dict[str, int]]:
    """Typed output columns for given rows, and per column the CPR-shaped texts replaced."""
    schema = v.source.model.to_schema()
    texts: dict[str, pa.Array] = {}
    replaced: dict[str, int] = {}
    for name, p in v.parsed.items():
        if p.text is not None:  # once per distinct value
            texts[name], hits = scrub_text(p.text, key,
                                           identifier=name in v.source.identifiers)
            count = int(np.count_nonzero(hits[v.columns[name].codes[rows]])) if hits.any() else 0
            if count:
                replaced[name] = count

    def build(part: np.ndarray) -> pa.Table:
        cpr_codes = pa.array(v.columns["cpr"].codes[part])
        data: dict[str, object] = {"person_id": _strings(v.cpr.person_id.take(cpr_codes))}
        for name, p in v.parsed.items():
            codes = v.columns[name].codes[part]
            if name in texts:
                data[name] = _strings(texts[name].take(pa.array(codes)))
            elif p.datetimes is not None:
                data[name] = p.datetimes[codes]
            elif p.numbers is not None:
                data[name] = p.numbers[codes]
            else:
                assert p.flags is not None
                # A nullable flag needs pandas' masked boolean; a required one is plain bool.
                data[name] = (pd.arrays.BooleanArray(p.flags[codes], p.empty[codes])
                              if schema.columns[name].nullable else p.flags[codes])
        data["source_row"] = part.astype(np.int64) + 1
        return pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)

    return build, replaced


def _quarantine_builder(v: Validated, key: PseudonymKey, rows: np.ndarray) -> TableOfRows:
    """Quarantine columns (original text, person_id, reasons) for parts of ``rows``."""
    texts: dict[str, pa.Array] = {}
    contract = v.source.model.to_schema().columns  # once: each column's code lists
    for name, enc in v.columns.items():
        if name != "cpr":
            # Only the values quarantined rows hold: hashing every household id of the
            # register a second time would double the cost of pseudonymising them.
            held = np.zeros(enc.null_slot + 1, dtype=bool)
            held[enc.codes[rows]] = True
            values = pc.if_else(pa.array(held[:-1]), enc.uniques, pa.scalar(None, pa.string()))
            # The original text, except identifiers, anything CPR-shaped and free text: a
            # CPR number, name or address typed into the wrong column must not leak
            # through the quarantine.
            scrubbed, _ = scrub_text(values, key, identifier=name in v.source.identifiers)
            if name in v.parsed and name not in v.source.identifiers:
                # Where scrub_text left the value as it was (no CPR number, no free text).
                rare = pc.and_(pa.array(rare_bad_values(enc, v.parsed[name], contract[name],
                                                        v.columns["cpr"])[:-1]),
                               pc.fill_null(pc.equal(scrubbed, values), False))
                scrubbed = pc.if_else(rare, pa.scalar(RARE_MARK), scrubbed)
            texts[name] = pa.concat_arrays([scrubbed, pa.nulls(1, pa.string())])

    def build(part: np.ndarray) -> pa.Table:
        cpr_codes = pa.array(v.columns["cpr"].codes[part])
        data: dict[str, object] = {"person_id": _strings(v.cpr.person_id.take(cpr_codes))}
        for name, text in texts.items():
            data[name] = _strings(text.take(pa.array(v.columns[name].codes[part])))
        first, joined = reason_texts(v, part)
        data["source_row"] = part.astype(np.int64) + 1
        data["reason"] = _strings(pa.array(first, pa.string()))
        data["reasons"] = _strings(pa.array(joined, pa.string()))
        return pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)

    return build


def _write_parts(build: TableOfRows, rows: np.ndarray, path: Path, meta: dict[str, str]) -> int:
    """Write ``build(part)`` for consecutive parts of ``rows``; returns the rows written."""
    marks = {k.encode(): v.encode() for k, v in meta.items()}
    written = 0
    writer: pq.ParquetWriter | None = None
    try:
        for start in range(0, max(len(rows), 1), PART_ROWS):  # once even with no rows
            table = build(rows[start:start + PART_ROWS])
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **marks})
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table)
            written += table.num_rows
    finally:
        if writer is not None:
            writer.close()
    return written


def _expected_entries() -> set[str]:
    return {f"{s.name}.parquet" for s in SOURCES} | {QUARANTINE, REPORT_NAME}


def _check_out(out: Path, raw: Path) -> None:
    """Refuse an ``out`` that ingest would damage by writing or replacing it."""
    out_abs, raw_abs = out.resolve(), raw.resolve()
    if out_abs == raw_abs or raw_abs in out_abs.parents or out_abs in raw_abs.parents:
        raise InputError(f"output folder {out} overlaps the raw folder {raw}: write the output "
                         "to a separate folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder: choose a folder path")
    entries = sorted(p.name for p in out.iterdir())
    if not entries:
        return
    if REPORT_NAME not in entries or not _is_ingest_report(out / REPORT_NAME):
        raise InputError(f"output folder {out} is not empty and was not written by ingest: "
                         "choose a new or empty folder (ingest only replaces its own output)")
    stray = [e for e in entries if e not in _expected_entries()]
    quarantine = out / QUARANTINE
    if quarantine.is_dir():
        allowed = {f"{s.name}.parquet" for s in SOURCES}
        stray += [f"{QUARANTINE}/{p.name}" for p in sorted(quarantine.iterdir())
                  if p.name not in allowed]
    if stray:
        raise InputError(f"output folder {out} holds an earlier ingest plus other files "
                         f"({', '.join(stray)}): move them away, or choose another folder, "
                         "since ingest replaces the whole folder")


def _is_ingest_report(path: Path) -> bool:
    try:
        content = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    # Any version: an older ingest's folder may be replaced by a new one.
    return (isinstance(content, dict) and isinstance(content.get("format"), str)
            and content["format"].startswith(INGEST_FORMAT_FAMILY))


def _move_into_place(tmp: Path, out: Path) -> None:
    """Swap the finished folder in; an earlier output is only removed once it is replaced."""
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.with_name(f".{out.name}.replaced-{uuid.uuid4().hex[:8]}")
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)
