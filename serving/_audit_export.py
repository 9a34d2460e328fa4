"""Read the audit log: its entries, filtered, as CSV or JSON lines.

For the data-protection officer and auditors: a citizen's access request (every request
about one CPR number and the caseworker decisions on them), or one API key's use in a
period. The chain is verified first; a broken chain is still exported (nothing is hidden)
and the caller reports it.

A caseworker decision (a ``/feedback`` entry) names the request it decides on in its summary
(``for_request``: a request id, or ``<batch id>-<index>`` for one item of a batch). The
service copies that request's pseudonym onto the decision, but nothing in the log requires
it, so a decision is about a citizen when its own pseudonyms name them *or* it decides on a
request (or batch item) that does. A batch names several citizens: a decision on another
citizen's item of the same batch is not theirs, so batches join by item, not by batch id.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any, Literal, get_args

from overblik.experiments._tracking import SQLITE_HEADER, file_header
from overblik.features._errors import InputError
from overblik.features._pseudonym import PseudonymKey, pseudonymise_one
from overblik.features._readers import PARQUET_MAGIC
from overblik.serving._auditlog import AuditLog, StoredEntry, Verification
from overblik.serving._cpr import check_cpr
from overblik.serving._routes import ROUTES
from overblik.serving._schemas import _REQUEST_ID

__all__ = [
    "AUDITED_ENDPOINTS",
    "EXPORT_COLUMNS",
    "EXPORT_FORMATS",
    "OTHER_CITIZEN",
    "ExportFilter",
    "ExportFormat",
    "ExportResult",
    "decided_request",
    "export_audit_log",
    "export_row",
    "parse_endpoints",
    "pseudonym_of_cpr",
    "select_entries",
    "write_rows",
]

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = get_args(ExportFormat)
EXPORT_COLUMNS = ("seq", "at", "kind", "request_id", "decides", "endpoint", "method", "status",
                  "key_id", "role", "model", "model_version", "pseudonyms", "summary", "hash")
# The middleware logs a path that is no route as "(unknown)"; public routes are never logged.
UNKNOWN_ENDPOINT = "(unknown)"
AUDITED_ENDPOINTS: tuple[str, ...] = (*(r.path for r in ROUTES if not r.public),
                                      UNKNOWN_ENDPOINT)
# Endpoints whose pseudonyms line up with the request's items ("" for a feature payload), and
# whose items a decision names as <request_id>-<index> (see ScoringEngine.feedback).
_BATCH_ENDPOINTS = frozenset({"/score/batch"})
_KEY_ID = re.compile(r"^[0-9a-f]{8}$")


def parse_endpoints(values: Sequence[str]) -> tuple[str, ...]:
    """Endpoint names, repeated or comma-separated (``score`` reads as ``/score``).

    Raises
    ------
    InputError
        For a name that is no audited endpoint (the message lists them).
    """
    names: list[str] = []
    for value in values:
        for part in value.split(","):
            name = part.strip()
            if not name:
                continue
            if name != UNKNOWN_ENDPOINT and not name.startswith("/"):
                name = "/" + name
            if name not in AUDITED_ENDPOINTS:
                raise InputError(f"--endpoint {part.strip()!r} is not an endpoint of the audit "
                                 f"log; choose from {', '.join(AUDITED_ENDPOINTS)}")
            if name not in names:
                names.append(name)
    if values and not names:
        raise InputError("--endpoint is empty; choose from " + ", ".join(AUDITED_ENDPOINTS))
    return tuple(names)


def pseudonym_of_cpr(cpr: str, key: PseudonymKey) -> str:
    """The pseudonym the service logs for ``cpr`` (checked as the service checks it).

    Raises
    ------
    InputError
        For an invalid CPR number; the message never contains it.
    """
    try:
        digits = check_cpr(cpr)
    except ValueError as exc:
        raise InputError(f"--cpr {exc}") from None
    return pseudonymise_one(digits, key)


@dataclass(frozen=True)
class ExportFilter:
    """Which entries to export; every given criterion must hold.

    ``since``/``until`` are UTC days, both inclusive. ``pseudonym`` selects a citizen's
    entries and the decisions on their requests; ``request_id`` a request and the decisions
    on it (a batch item's id: the batch and the decisions on that item).
    """

    since: date | None = None
    until: date | None = None
    endpoints: tuple[str, ...] = ()
    key_id: str | None = None
    request_id: str | None = None
    pseudonym: str | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InputError(f"--since {self.since} is after --until {self.until}: the period "
                             "would be empty")
        if self.key_id is not None and not _KEY_ID.match(self.key_id):
            raise InputError(f"--key-id {self.key_id!r} is not a key id: give the 8 characters "
                             "0-9a-f that `overblik keys list` shows")
        if self.request_id is not None and not _REQUEST_ID.fullmatch(self.request_id):
            raise InputError(f"--request-id {self.request_id!r} is not a request id: give 32 "
                             "characters 0-9a-f, or a batch item's <request_id>-<index>")

    @property
    def start(self) -> str | None:
        """The first ``at`` included (ISO prefix), or None."""
        return None if self.since is None else self.since.isoformat()

    @property
    def end(self) -> str | None:
        """The first ``at`` excluded: the day after ``until`` (ISO prefix), or None."""
        return None if self.until is None else (self.until + timedelta(days=1)).isoformat()

    def describe(self) -> str:
        """The filters in words (never a CPR number: the citizen is named by pseudonym)."""
        parts = []
        if self.since is not None:
            parts.append(f"since {self.since}")
        if self.until is not None:
            parts.append(f"until {self.until} (inclusive)")
        if self.endpoints:
            parts.append("endpoint " + " or ".join(self.endpoints))
        if self.key_id is not None:
            parts.append(f"key {self.key_id}")
        if self.request_id is not None:
            parts.append(f"request {self.request_id} and the decisions on it")
        if self.pseudonym is not None:
            parts.append(f"about the citizen with pseudonym {self.pseudonym}, with the "
                         "decisions on their requests")
        return ", ".join(parts) if parts else "no filter"


def decided_request(stored: StoredEntry) -> str | None:
    """The request (or batch item) id a decision decides on; None for other entries."""
    if stored.entry.kind != "feedback":
        return None
    target = stored.entry.summary.get("for_request")
    return target if isinstance(target, str) else None


class _Citizen:
    """Tells which entries are about one pseudonym; must see every entry in log order.

    A decision always comes after its request (``/feedback`` looks the request up in the
    log), so one pass collects the citizen's request ids before their decisions arrive.
    """

    def __init__(self, pseudonym: str) -> None:
        self.pseudonym = pseudonym
        self.requests: set[str] = set()  # ids a decision on this citizen names

    def about(self, stored: StoredEntry) -> bool:
        entry = stored.entry
        if entry.kind == "feedback":
            target = decided_request(stored)
            return self.pseudonym in entry.pseudonyms or (
                target is not None and target in self.requests)
        hits = [i for i, p in enumerate(entry.pseudonyms) if p == self.pseudonym]
        if not hits:
            return False
        if entry.endpoint in _BATCH_ENDPOINTS:
            # Only this citizen's items: the batch's other items are other citizens.
            self.requests.update(f"{entry.request_id}-{i}" for i in hits)
        else:
            self.requests.add(entry.request_id)
        return True


def _is_request(stored: StoredEntry, request_id: str) -> bool:
    """Whether the entry is ``request_id`` (its batch, for an item) or a decision on it."""
    base, _, item = request_id.partition("-")
    if stored.entry.request_id == base:
        return True
    target = decided_request(stored)
    if target is None:
        return False
    # A batch's id also takes the decisions on each of its items; an item's id only its own.
    return target == request_id or (not item and target.partition("-")[0] == base)


def select_entries(log: AuditLog, flt: ExportFilter, *, batch: int = 5000
                   ) -> Iterator[StoredEntry]:
    """The entries that pass ``flt``, in log order, read ``batch`` rows at a time."""
    citizen = None if flt.pseudonym is None else _Citizen(flt.pseudonym)
    # The period is filtered in SQL, except the start when a citizen is asked for: a
    # decision inside the period may decide on a request before it, which the join needs.
    start = flt.start
    for stored in log.entries_between(start if citizen is None else None, flt.end,
                                      batch=batch):
        entry = stored.entry
        if citizen is not None and not citizen.about(stored):  # first: it collects the join
            continue
        if start is not None and entry.at < start:
            continue
        if flt.endpoints and entry.endpoint not in flt.endpoints:
            continue
        if flt.key_id is not None and entry.key_id != flt.key_id:
            continue
        if flt.request_id is not None and not _is_request(stored, flt.request_id):
            continue
        yield stored


OTHER_CITIZEN = "(another citizen)"


def export_row(stored: StoredEntry, only: str | None = None) -> dict[str, Any]:
    """One entry as an export row (the keys of :data:`EXPORT_COLUMNS`).

    With ``only`` (a citizen's pseudonym), every other pseudonym reads
    :data:`OTHER_CITIZEN`: an export for a citizen's access request names no one else,
    and positions are kept so a batch's items still line up with its summary.
    """
    e = stored.entry
    pseudonyms = [p if only is None or p in (only, "") else OTHER_CITIZEN
                  for p in e.pseudonyms]
    summary = e.summary
    if only is not None and e.endpoint in _BATCH_ENDPOINTS and "items" in summary:
        # A batch's scores by item: only the citizen's own are theirs to see.
        summary = {**summary, "items": [
            v if i < len(e.pseudonyms) and e.pseudonyms[i] == only else OTHER_CITIZEN
            for i, v in enumerate(summary["items"])]}
    return {"seq": stored.seq, "at": e.at, "kind": e.kind, "request_id": e.request_id,
            "decides": decided_request(stored), "endpoint": e.endpoint, "method": e.method,
            "status": e.status, "key_id": e.key_id, "role": e.role, "model": e.model,
            "model_version": e.model_version, "pseudonyms": pseudonyms,
            "summary": summary, "hash": stored.hash}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if column == "pseudonyms":
        # Kept positional: a batch's "" (a feature payload) stays, so items still line up.
        return ";".join(value)
    if column == "summary":
        return _json(value)
    return str(value)


def write_rows(entries: Iterable[StoredEntry], fmt: ExportFormat, stream: IO[str],
               only: str | None = None) -> int:
    """Write entries as CSV (with a header) or JSON lines; returns how many (``only``: see
    :func:`export_row`)."""
    writer = None
    if fmt == "csv":
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
    written = 0
    for stored in entries:
        row = export_row(stored, only)
        if writer is not None:
            writer.writerow([_cell(row[c], c) for c in EXPORT_COLUMNS])
        else:
            stream.write(_json(row) + "\n")
        written += 1
    return written


@contextmanager
def _output(out: Path | None, stream: IO[str] | None) -> Iterator[IO[str]]:
    """The stream to write to: ``out`` through a temporary file that replaces it only when
    complete (a failed export leaves no half file that looks like a whole one)."""
    if out is None:
        yield stream if stream is not None else sys.stdout
        return
    if out.is_dir():
        raise InputError(f"--out {out} is a folder: give a file name, e.g. {out / 'audit.jsonl'}")
    if out.is_file():
        head = file_header(out)
        if head == SQLITE_HEADER or head.startswith(PARQUET_MAGIC):
            # e.g. the store itself: replacing it would lose the keys and the audit log.
            raise InputError(f"--out {out} is a database or data file (perhaps the store "
                             "itself), which the export would replace: give a new file name")
    if not out.parent.is_dir():
        what = "is a file" if out.parent.exists() else "does not exist"
        raise InputError(f"--out {out}: the folder {out.parent} {what}; give a file in an "
                         "existing folder")
    part = out.with_name(f".{out.name}.{os.getpid()}.part")
    try:
        # Owner-only: the export holds pseudonyms and caseworkers' decisions.
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write there ({exc.strerror or exc}); give a "
                         "file in a folder you can write to") from None
    try:
        with open(fd, "w", encoding="utf-8", newline="") as fh:
            yield fh
        os.replace(part, out)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise InputError(f"--out {out}: writing failed ({exc.strerror or exc})") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_audit_log` did: rows written, entries in the log, the chain."""

    written: int
    total: int
    verification: Verification
    out: Path | None

    def summary(self, flt: ExportFilter) -> str:
        """One line: N entries of M matched, the filters, where written."""
        where = str(self.out) if self.out is not None else "standard output"
        noun = "entry" if self.written == 1 else "entries"
        return (f"{self.written:,} {noun} of {self.total:,} matched ({flt.describe()}) -> "
                f"{where}")


def export_audit_log(log: AuditLog, flt: ExportFilter, fmt: ExportFormat = "jsonl",
                     out: Path | None = None, *, stream: IO[str] | None = None,
                     batch: int = 5000) -> ExportResult:
    """Verify the chain, then write the entries that pass ``flt`` to ``out`` (or ``stream``,
    default standard output).

    A broken chain is exported all the same (``result.verification`` says where it broke):
    an auditor must see what is stored, and decide what to make of it.

    Raises
    ------
    InputError
        For an unknown format or an ``out`` that cannot be written (checked before reading).
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format {fmt!r}: choose from {', '.join(EXPORT_FORMATS)}")
    with _output(out, stream) as fh:
        verification = log.verify()
        written = write_rows(select_entries(log, flt, batch=batch), fmt, fh,
                             only=flt.pseudonym)
    return ExportResult(written=written, total=verification.entries,
                        verification=verification, out=out)
