"""The append-only, hash-chained audit log of every request and every caseworker decision.

Each entry's hash is ``sha256(previous hash + canonical JSON of the entry's content)``, so an
entry cannot be edited, deleted or moved without breaking the chain. The sequence number is
not hashed: the chain itself fixes the order, which lets :meth:`AuditLog.verify` tell an
edited entry (its own hash is wrong) from a deleted one (the next entry links to a hash
nobody has) and a reordered one (an entry links to an entry stored elsewhere). A one-row
head (last seq and hash, written in the same transaction) catches a cut-off tail. Anyone who
can rewrite the whole database can recompute the chain: record the head that
``overblik auditlog verify`` prints somewhere else (e.g. with the ethics board) to pin it.

Appends are serialised across processes and replicas: ``BEGIN IMMEDIATE`` on SQLite, a
transaction-level advisory lock on PostgreSQL. Every commit is synced to disk (SQLite
``synchronous=FULL``; PostgreSQL's default) before the request's answer leaves; the service
appends through :class:`AuditWriter`, which commits the entries of all requests waiting at
that moment in one transaction (group commit), so the sync is paid once per group.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from overblik.serving._database import Cursor, Database, Table
from overblik.serving._problems import ApiError

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "AuditWriter", "DecisionCheck", "StoredEntry",
           "Verification"]

GENESIS = "0" * 64
_LOCK_ID = 7_441_105_530  # advisory lock key of the audit chain (any fixed bigint)
_CONTENT = ("at", "kind", "request_id", "key_id", "role", "endpoint", "method", "status",
            "latency_ms", "model", "model_version", "pseudonyms", "summary")
EntryKind = Literal["request", "feedback"]
Problem = Literal["edited", "deleted", "reordered", "truncated"]


def _tables(db: Database) -> list[Table]:
    seq = "bigint" if db.dialect == "postgresql" else "integer"
    real = "double precision" if db.dialect == "postgresql" else "real"
    # Entries are only ever added; the head row is inserted once, then moved.
    return [Table("audit_log", (
        f"""create table audit_log (
            seq {seq} primary key,
            at text not null,
            kind text not null,
            request_id text not null,
            key_id text,
            role text,
            endpoint text not null,
            method text not null,
            status integer not null,
            latency_ms {real} not null,
            model text,
            model_version text,
            pseudonyms text not null,
            summary text not null,
            prev_hash text not null,
            hash text not null
        )""",
        "create index audit_log_request on audit_log (request_id)"), "select, insert"),
        Table("audit_head", (f"""create table audit_head (
            id integer primary key check (id = 1),
            seq {seq} not null,
            hash text not null
        )""",), "select, insert, update")]


def utc_now() -> str:
    """ISO 8601 UTC with microseconds (the log's clock)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class AuditEntry:
    """What is logged about one request: who (key id, role), what (endpoint, status, output
    summary), about whom (pseudonyms, never a CPR number), with which model, how fast."""

    kind: EntryKind
    request_id: str
    endpoint: str
    method: str
    status: int
    latency_ms: float
    key_id: str | None = None
    role: str | None = None
    model: str | None = None
    model_version: str | None = None
    pseudonyms: tuple[str, ...] = ()
    summary: dict[str, Any] = field(default_factory=dict)
    at: str = field(default_factory=utc_now)
    # Not stored: a decision's condition on the log, checked again where it is appended.
    check: DecisionCheck | None = field(default=None, compare=False)

    def content(self) -> dict[str, Any]:
        """The hashed fields, JSON-ready."""
        data = {k: getattr(self, k) for k in _CONTENT}
        data["pseudonyms"] = list(self.pseudonyms)
        return data


@dataclass(frozen=True)
class StoredEntry:
    """An entry as stored: its position and the chain."""

    seq: int
    entry: AuditEntry
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class DecisionCheck:
    """One decision per score unless a later one says which it corrects.

    Two decisions on one score with nothing between them leave the log saying both
    (followed and overridden): a correction must name the latest decision, so the log reads
    as a chain and a client's stale view is refused rather than recorded. The service checks
    before it answers and the log again in the transaction that appends the decision, so two
    decisions sent at once (or to two replicas) cannot both pass.

    Parameters
    ----------
    for_request
        The score's request (or batch-item) id.
    after
        The score's own seq: decisions come after it.
    corrects
        The decision this one corrects (the latest), or None for the first.
    """

    for_request: str
    after: int
    corrects: str | None

    def verify(self, earlier: Sequence[StoredEntry]) -> None:
        """Raise :class:`ApiError` (409, or 422 for a correction of nothing) unless the
        decision fits after ``earlier``, the decisions already stored on the score."""
        latest = earlier[-1].entry if earlier else None
        if latest is None:
            if self.corrects is not None:
                raise ApiError(422, "there is no earlier decision on this score to correct: "
                               "leave corrects out", "corrects")
            return
        said = f"{latest.summary.get('decision')} at {latest.at}"
        if self.corrects is None:
            raise ApiError(409, f"a decision on this score is already recorded ({said}, "
                           f"request_id {latest.request_id}); to change it, send the new "
                           f"decision with \"corrects\": \"{latest.request_id}\" (the log "
                           "keeps both)", "request_id")
        if self.corrects != latest.request_id:
            raise ApiError(409, f"is not the latest decision on this score: that is "
                           f"{latest.request_id} ({said}); correct that one", "corrects")


@dataclass(frozen=True)
class Verification:
    """Result of :meth:`AuditLog.verify`.

    ``problem`` names the first broken entry and how it broke (``kind``); None when intact.
    """

    intact: bool
    entries: int
    head: str
    problem: str | None = None
    kind: Problem | None = None
    seq: int | None = None


def _canonical(content: dict[str, Any]) -> str:
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """The hash of an entry after ``prev_hash``."""
    return hashlib.sha256((prev_hash + "\n" + _canonical(content)).encode()).hexdigest()


class AuditLog:
    """Append and verify the audit log in ``db``.

    Parameters
    ----------
    db
        The store.
    create
        Create the tables when missing (the service); False for commands that only read,
        where a store without them is a mistyped ``--store``, not an empty log.

    Raises
    ------
    InputError
        ``create=False`` and the store holds no audit log.
    """

    def __init__(self, db: Database, *, create: bool = True) -> None:
        self.db = db
        db.prepare(_tables(db), create=create, what="audit log")

    def append(self, entry: AuditEntry) -> StoredEntry:
        """Append one entry at the end of the chain (serialised across processes).

        Raises
        ------
        ApiError
            The entry's :class:`DecisionCheck` fails: nothing is appended.
        """
        stored = self.append_many([entry])[0]
        if isinstance(stored, ApiError):
            raise stored
        return stored

    def append_many(self, entries: Sequence[AuditEntry]) -> list[StoredEntry | ApiError]:
        """Append entries in order, in one transaction (one disk sync for all of them).

        An entry whose :class:`DecisionCheck` fails (against the log including the entries
        before it) is not appended: its place in the result holds the check's error.
        """
        sql = self.db.sql
        insert = sql("insert into audit_log (seq, at, kind, request_id, key_id, role, endpoint, "
                     "method, status, latency_ms, model, model_version, pseudonyms, summary, "
                     "prev_hash, hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
        out: list[StoredEntry | ApiError] = []
        with self.db.transaction(write=True) as cur:
            if self.db.dialect == "postgresql":
                cur.execute(sql("select pg_advisory_xact_lock(?)"), (_LOCK_ID,))
            cur.execute("select seq, hash from audit_head where id = 1")
            head = cur.fetchone()
            seq, prev_hash = (int(head[0]), str(head[1])) if head else (0, GENESIS)
            for entry in entries:
                if entry.check is not None:
                    try:
                        entry.check.verify(self._decisions(cur, entry.check.for_request,
                                                           entry.check.after))
                    except ApiError as refused:
                        out.append(refused)
                        continue
                content = entry.content()
                digest = chain_hash(prev_hash, content)
                seq += 1
                cur.execute(insert, (
                    seq, entry.at, entry.kind, entry.request_id, entry.key_id, entry.role,
                    entry.endpoint, entry.method, entry.status, entry.latency_ms, entry.model,
                    entry.model_version, _canonical(content["pseudonyms"]),
                    _canonical(content["summary"]), prev_hash, digest))
                out.append(StoredEntry(seq=seq, entry=entry, prev_hash=prev_hash, hash=digest))
                prev_hash = digest
            if head is None:
                cur.execute(sql("insert into audit_head (id, seq, hash) values (1, ?, ?)"),
                            (seq, prev_hash))
            else:
                cur.execute(sql("update audit_head set seq = ?, hash = ? where id = 1"),
                            (seq, prev_hash))
        return out

    @staticmethod
    def _row(row: tuple[Any, ...]) -> StoredEntry:
        (seq, at, kind, request_id, key_id, role, endpoint, method, status, latency_ms, model,
         model_version, pseudonyms, summary, prev_hash, digest) = row
        entry = AuditEntry(kind=kind, request_id=request_id, endpoint=endpoint, method=method,
                           status=int(status), latency_ms=float(latency_ms), key_id=key_id,
                           role=role, model=model, model_version=model_version,
                           pseudonyms=tuple(json.loads(pseudonyms)),
                           summary=json.loads(summary), at=at)
        return StoredEntry(seq=int(seq), entry=entry, prev_hash=prev_hash, hash=digest)

    _COLUMNS = ("seq, at, kind, request_id, key_id, role, endpoint, method, status, latency_ms, "
                "model, model_version, pseudonyms, summary, prev_hash, hash")

    def entries(self, *, batch: int = 5000) -> Iterator[StoredEntry]:
        """Every entry in sequence order (streamed in batches)."""
        return self.entries_between(batch=batch)

    def entries_between(self, start: str | None = None, end: str | None = None, *,
                        batch: int = 5000) -> Iterator[StoredEntry]:
        """The entries with ``start <= at < end`` in sequence order (streamed in batches).

        ``start`` and ``end`` are ISO 8601 prefixes such as ``2026-01-31``: every ``at`` is
        written in one UTC format, so comparing the text compares the times (byte order, not
        PostgreSQL's locale collation, which may skip the punctuation). None: no bound.
        """
        text = 'at collate "C"' if self.db.dialect == "postgresql" else "at"
        where, bounds = "", []
        if start is not None:
            where += f" and {text} >= ?"
            bounds.append(start)
        if end is not None:
            where += f" and {text} < ?"
            bounds.append(end)
        after = -1
        while True:
            with self.db.transaction() as cur:
                cur.execute(self.db.sql(f"select {self._COLUMNS} from audit_log where seq > ?"
                                        f"{where} order by seq limit ?"),
                            (after, *bounds, batch))
                rows = cur.fetchall()
            if not rows:
                return
            for row in rows:
                yield self._row(tuple(row))
            after = int(rows[-1][0])

    def find(self, request_id: str) -> StoredEntry | None:
        """The first entry of a request id, or None."""
        with self.db.transaction() as cur:
            cur.execute(self.db.sql(f"select {self._COLUMNS} from audit_log where "
                                    "request_id = ? order by seq limit 1"), (request_id,))
            row = cur.fetchone()
        return None if row is None else self._row(tuple(row))

    def decisions_on(self, for_request: str, after: int = 0) -> list[StoredEntry]:
        """The caseworker decisions stored on ``for_request`` (a request or batch-item id),
        in log order; only entries after seq ``after`` (the request's own) are read.

        A decision names its request only in its summary: the scan is bounded below by the
        request's position, and decisions are few next to requests.
        """
        with self.db.transaction() as cur:
            return self._decisions(cur, for_request, after)

    def _decisions(self, cur: Cursor, for_request: str, after: int) -> list[StoredEntry]:
        # The summary is canonical JSON; the LIKE narrows, the comparison decides ("_" is
        # a LIKE wildcard).
        pattern = f'%"for_request":"{for_request}"%'
        cur.execute(self.db.sql(f"select {self._COLUMNS} from audit_log where seq > ? "
                                "and kind = 'feedback' and status = 200 "
                                "and summary like ? order by seq"), (after, pattern))
        found = [self._row(tuple(row)) for row in cur.fetchall()]
        return [s for s in found if s.entry.summary.get("for_request") == for_request]

    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last appended entry; (0, GENESIS) for an empty log."""
        with self.db.transaction() as cur:
            cur.execute("select seq, hash from audit_head where id = 1")
            row = cur.fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS)

    def verify(self) -> Verification:
        """Walk the chain; report the first edited, deleted or reordered entry.

        Loads every entry's hash into memory once (64 bytes per entry) to tell a deletion
        from a reordering.
        """
        where: dict[str, int] = {}
        with self.db.transaction() as cur:
            cur.execute("select hash, seq from audit_log")
            for digest, seq in cur.fetchall():
                where[str(digest)] = int(seq)
        count = len(where)
        prev_hash, prev_seq = GENESIS, 0
        for stored in self.entries():
            seq = stored.seq
            if chain_hash(stored.prev_hash, stored.entry.content()) != stored.hash:
                return self._broken(count, "edited", seq, f"entry {seq} was edited: its content "
                                    "no longer matches its hash")
            if stored.prev_hash != prev_hash:
                if stored.prev_hash in where:
                    return self._broken(count, "reordered", seq,
                                        f"entry {seq} was moved: it was appended after entry "
                                        f"{where[stored.prev_hash]}, but is stored after entry "
                                        f"{prev_seq}")
                lost = f"entry {prev_seq + 1}" if seq == prev_seq + 2 else (
                    f"entries {prev_seq + 1}-{seq - 1}" if seq > prev_seq + 2 else
                    f"the entry before entry {seq}")
                return self._broken(count, "deleted", seq,
                                    f"{lost} was deleted: entry {seq} links to an entry that "
                                    "is no longer in the log")
            prev_hash, prev_seq = stored.hash, seq
        head_seq, head_hash = self.head()
        if head_seq != prev_seq or head_hash != prev_hash:
            if head_seq > prev_seq:
                return self._broken(count, "truncated", prev_seq + 1,
                                    f"entries {prev_seq + 1}-{head_seq} were deleted from the "
                                    f"end: the log ends at entry {prev_seq} but its head "
                                    f"records entry {head_seq}")
            return self._broken(count, "edited", head_seq,
                                f"the head (entry {head_seq}) does not match the last entry "
                                f"({prev_seq}): the head or the last entry was edited")
        return Verification(intact=True, entries=count, head=prev_hash)

    def _broken(self, count: int, kind: Problem, seq: int, problem: str) -> Verification:
        return Verification(intact=False, entries=count, head=self.head()[1], problem=problem,
                            kind=kind, seq=seq)


class AuditWriter:
    """Group commit: one thread appends every queued entry in one transaction.

    :meth:`submit` returns a future that completes when the entry is committed (or fails
    with the store's error); the service answers a request only after that.
    """

    def __init__(self, log: AuditLog, *, max_group: int = 512) -> None:
        self.log = log
        self.max_group = max_group
        self._queue: queue.SimpleQueue[tuple[AuditEntry, Future[StoredEntry]] | None] = (
            queue.SimpleQueue())
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, entry: AuditEntry) -> Future[StoredEntry]:
        """Queue an entry; the future holds it once it is committed."""
        future: Future[StoredEntry] = Future()
        self._queue.put((entry, future))
        return future

    def close(self) -> None:
        """Commit what is queued, then stop the thread."""
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        stop = False
        while not stop:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            while len(group) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            try:
                stored = self.log.append_many([entry for entry, _ in group])
            except Exception as exc:  # the store failed: every waiting request learns it
                for _, future in group:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(group, stored, strict=True):
                if isinstance(result, ApiError):
                    future.set_exception(result)
                else:
                    future.set_result(result)
