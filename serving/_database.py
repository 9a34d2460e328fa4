"""The service's own store (API keys and the audit log): a SQLite file or PostgreSQL.

``sqlite:///path/to/file.db`` (the embedded default; WAL, so readers never block the writer)
or ``postgresql://user@host:port/db`` (``postgresql+psycopg://`` is accepted too, as
SQLAlchemy and the test helpers write it). SQL is written once with ``?`` placeholders and
translated for psycopg. Connections are per thread: the service calls the store from the
event loop's worker threads.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from overblik.experiments._tracking import without_password
from overblik.features._errors import InputError

__all__ = ["Cursor", "Database", "Dialect", "Table", "open_database"]

Dialect = Literal["sqlite", "postgresql"]
# Serialises the creation of overblik's tables between processes on PostgreSQL (any fixed
# bigint, apart from the audit chain's and the record's).
_CREATE_LOCK_ID = 7_441_105_532


class Cursor(Protocol):
    """The DB-API cursor methods overblik uses (sqlite3 and psycopg alike)."""

    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...


@dataclass(frozen=True)
class Table:
    """A table overblik keeps in a store, and what a role needs to use it.

    ``statements`` create it and its indexes; ``privileges`` (e.g. ``"select, insert"``)
    and usage of ``sequences`` are what the role that uses it must be granted when the
    database owner creates it instead.
    """

    name: str
    statements: tuple[str, ...]
    privileges: str
    sequences: tuple[str, ...] = ()


class Database:
    """One store URL; ``transaction()`` yields a cursor inside a transaction.

    Parameters
    ----------
    url
        ``sqlite:///<path>`` or ``postgresql://...``.
    wal
        Put a SQLite file in write-ahead-log mode (the service's own store); False leaves
        the journal mode of a file another program owns (MLflow's) as it is.
    """

    def __init__(self, url: str, *, wal: bool = True) -> None:
        self.url = url
        self.wal = wal
        self.dialect: Dialect
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            self.path: Path | None = Path(url.removeprefix("sqlite:///"))
            if url == "sqlite:///" or self.path == Path(""):
                raise InputError(f"store URL {url!r} names no file: write "
                                 "sqlite:///path/to/serving.db")
            self._conninfo = ""
        elif url.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
            self._conninfo = "postgresql://" + url.split("://", 1)[1]
        else:
            raise InputError(f"store URL {url!r} is not supported: write "
                             "sqlite:///path/to/serving.db or postgresql://user@host:port/db")
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"Database({self.redacted_url!r})"

    def require_existing(self) -> Database:
        """This store, if it already exists (a SQLite file); commands that only read call it
        so that a mistyped path is an error rather than a new, empty (and 'intact') store.

        Raises
        ------
        InputError
            When the SQLite file does not exist.
        """
        if self.path is not None and not self.path.is_file():
            raise InputError(f"store {self.url}: no such file {self.path}; give the --store "
                             "the service uses (its default is data/serving.db)")
        return self

    @property
    def redacted_url(self) -> str:
        """The URL without a password (for messages and logs)."""
        return without_password(self.url)

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            assert self.path is not None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                       check_same_thread=False)
                if self.wal:
                    conn.execute("pragma journal_mode=wal")
                # FULL: a commit is on disk before the response leaves (an audit trail that
                # loses its last entries on a power cut is not one).
                conn.execute("pragma synchronous=full")
            except (OSError, sqlite3.Error) as exc:
                raise InputError(f"cannot open the store {self.path}: {exc}; give a writable "
                                 "file path (sqlite:///path/to/serving.db)") from None
            return conn
        import psycopg

        try:
            return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise InputError(f"cannot connect to the store {self.redacted_url}: "
                             f"{str(exc).strip().splitlines()[0]}") from None

    def connection(self) -> Any:
        """This thread's connection (opened on first use)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def sql(self, text: str) -> str:
        """``?`` placeholders in the dialect's style."""
        return text if self.dialect == "sqlite" else text.replace("?", "%s")

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Cursor]:
        """A cursor inside one transaction; ``write=True`` takes the write lock up front.

        SQLite: ``BEGIN IMMEDIATE`` (one writer across processes). PostgreSQL: a plain
        transaction; writers that must be serialised take an advisory lock themselves.
        """
        conn = self.connection()
        if self.dialect == "sqlite":
            cur = conn.cursor()
            cur.execute("begin immediate" if write else "begin")
            try:
                yield cur
            except BaseException:
                cur.execute("rollback")
                raise
            cur.execute("commit")
            return
        with conn.transaction(), conn.cursor() as cur:
            yield cur

    def table_exists(self, cur: Cursor, table: str) -> bool:
        """Whether ``table`` exists (on PostgreSQL: in the role's search path)."""
        exists = ("select to_regclass(?) is not null" if self.dialect == "postgresql" else
                  "select count(*) > 0 from sqlite_master where type = 'table' and name = ?")
        cur.execute(self.sql(exists), (table,))
        return bool(cur.fetchone()[0])

    def _missing(self, cur: Cursor, tables: Sequence[Table]) -> list[Table]:
        return [t for t in tables if not self.table_exists(cur, t.name)]

    def prepare(self, tables: Sequence[Table], *, create: bool, what: str) -> None:
        """Make the store ready for ``tables``: create the missing ones (``create``), or
        refuse a store without them (commands that only read or change rows, where such a
        store is a mistyped ``--store``, not an empty one; ``what`` names it for the message).

        Raises
        ------
        InputError
            See :meth:`create_missing`; or ``create=False`` and a table is missing.
        """
        if create:
            with self.transaction(write=True) as cur:
                self.create_missing(cur, tables)
            return
        with self.transaction() as cur:
            missing = self._missing(cur, tables)
        if missing:
            raise InputError(f"{self.redacted_url} holds no {what} (no table "
                             f"{', '.join(t.name for t in missing)}): give the --store the "
                             "service writes to")

    def create_missing(self, cur: Cursor, tables: Sequence[Table]) -> None:
        """Create each of ``tables`` that does not exist yet (inside ``cur``'s transaction).

        Existing tables are left alone, not met with ``create table if not exists``, which
        PostgreSQL refuses to a role without CREATE on the schema even when the table is
        there: a production role that may only read and write rows uses the tables the
        database owner made.

        Raises
        ------
        InputError
            A table is missing and this role may not create it: names the role and the
            statements the owner runs once (the tables, and this role's rights on them).
        """
        missing = self._missing(cur, tables)
        if not missing:
            return
        role = "ROLE"
        if self.dialect == "postgresql":
            # Processes starting together (the service's workers) create one at a time;
            # SQLite's write transaction already serialises them.
            cur.execute(self.sql("select pg_advisory_xact_lock(?)"), (_CREATE_LOCK_ID,))
            missing = self._missing(cur, missing)
            if not missing:
                return
            cur.execute("select current_user")  # now: after a refusal the transaction is void
            name = str(cur.fetchone()[0])
            role = '"' + name.replace('"', '""') + '"'  # as SQL writes any role name
        import psycopg

        try:
            for table in missing:
                for statement in table.statements:
                    cur.execute(statement)
        except psycopg.errors.InsufficientPrivilege as exc:
            todo = [" ".join(s.split()) for t in missing for s in t.statements]
            todo += [f"grant {t.privileges} on {t.name} to {role}" for t in missing]
            todo += [f"grant usage on sequence {q} to {role}" for t in missing
                     for q in t.sequences]
            names = ", ".join(t.name for t in missing)
            raise InputError(
                f"cannot create {names} in {self.redacted_url}: role {role} may not create "
                f"tables ({str(exc).strip().splitlines()[0]}); have the database owner run "
                "once:\n" + "\n".join(f"  {statement};" for statement in todo)) from None

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def open_database(url: str, *, wal: bool = True) -> Database:
    """A :class:`Database` for ``url`` (checked, not yet connected)."""
    return Database(url, wal=wal)
