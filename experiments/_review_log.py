"""Where the record of reviews and promotions is kept, and reading it back.

The record lives with the registry the decisions take effect in: a table
``overblik_review_record`` in the MLflow tracking database when that is SQLite or
PostgreSQL (in production whoever can reach the registry can read the board's record, from
any machine), and the JSON-lines file ``<data>/reviews.jsonl`` for a file store or an MLflow
server, whose database overblik cannot reach. Rows and lines are only ever added.

Records that an earlier overblik wrote to ``reviews.jsonl`` for a database registry are read
back with that registry's rows (they name it in ``registry``), so no decision drops out of
the history when the record moves into the database.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from overblik.experiments._approval import (
    ReviewRecord,
    append_record,
    read_records,
    reviews_path,
)
from overblik.experiments._tracking import SQLITE_HEADER, file_header, without_password
from overblik.features._errors import InputError

if TYPE_CHECKING:
    from overblik.serving._database import Database, Table

__all__ = ["REVIEW_TABLE", "ReviewLog", "registry_database_url"]

REVIEW_TABLE = "overblik_review_record"


def registry_database_url(tracking_uri: str) -> str | None:
    """The database of an MLflow tracking URI as a store URL, or None for a file store
    or a tracking server (``http(s)://``, ``databricks``, a folder)."""
    scheme, sep, rest = tracking_uri.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if scheme == "sqlite":
        return tracking_uri
    # SQLAlchemy's driver suffix (postgresql+psycopg2://) means nothing to psycopg.
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return "postgresql://" + rest
    return None


def _table(db: Database) -> Table:
    from overblik.serving._database import Table

    key = ("id bigserial primary key" if db.dialect == "postgresql"
           else "id integer primary key autoincrement")
    return Table(REVIEW_TABLE, (f"""create table {REVIEW_TABLE} (
        {key},
        time text not null,
        model text not null,
        version text not null,
        event text not null,
        record text not null
    )""",), "select, insert", sequences=(f"{REVIEW_TABLE}_id_seq",)
        if db.dialect == "postgresql" else ())


@dataclass(frozen=True)
class ReviewLog:
    """The record of one registry's reviews and promotions.

    Parameters
    ----------
    registry
        The MLflow tracking URI the decisions take effect in.
    path
        A JSON-lines file to use instead (whatever the registry).
    """

    registry: str
    path: Path | None = None

    @property
    def _url(self) -> str | None:
        """The database the record is in; None for the JSON-lines file."""
        return None if self.path is not None else registry_database_url(self.registry)

    def _database(self) -> Database | None:
        url = self._url
        if url is None:
            return None
        from overblik.serving._database import open_database

        # MLflow owns the file: leave its journal mode alone.
        db = open_database(url, wal=False)
        if db.path is not None and db.path.is_file():
            header = file_header(db.path)
            if header and header != SQLITE_HEADER:
                raise InputError(f"cannot use the record in {self.location}: {db.path} is not "
                                 "a SQLite database; give the tracking URI training used")
        return db

    @property
    def location(self) -> str:
        """Where the record is, for messages: the table and database, or the file."""
        url = self._url
        if url is None:
            return str(self.path or reviews_path())
        return f"table {REVIEW_TABLE} of {without_password(url)}"

    @contextmanager
    def _failing_clearly(self, db: Database) -> Iterator[None]:
        """Database errors as one InputError naming the record; the connection closed."""
        import psycopg

        try:
            yield
        except (sqlite3.Error, psycopg.Error) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"cannot use the record in {self.location}: {first}") from None
        finally:
            db.close()

    def append(self, record: ReviewRecord) -> None:
        """Add one record (committed, and on SQLite synced, before returning)."""
        db = self._database()
        if db is None:
            append_record(record, self.path)
            return
        with self._failing_clearly(db), db.transaction(write=True) as cur:
            db.create_missing(cur, [_table(db)])
            cur.execute(db.sql(f"insert into {REVIEW_TABLE} (time, model, version, event, "
                               "record) values (?, ?, ?, ?, ?)"),
                        (record.time, record.model, record.version, record.event,
                         record.to_json()))

    def _parsed(self, row_id: int, text: str) -> ReviewRecord:
        try:
            return ReviewRecord(**json.loads(text))
        except (ValueError, TypeError) as exc:  # not JSON, not an object, unknown keys
            raise InputError(f"row {row_id} of {REVIEW_TABLE} in {self.location} is not a "
                             f"record ({exc}): the table is appended to only, so restore the "
                             "database from its backup") from None

    def records(self, model: str | None = None, *,
                earlier_file: bool = True) -> list[ReviewRecord]:
        """Every record of this registry (of ``model`` only, when given), oldest first.

        ``earlier_file``: with a database registry, also the lines an earlier overblik kept
        in ``<data>/reviews.jsonl`` (listed first). The gate leaves them out: that file is
        whichever the process's data folder holds, so a line there could approve a version
        the registry's own record never saw.
        """
        db = self._database()
        mine = without_password(self.registry)
        if db is None:
            found = read_records(self.path)
            if self.path is None:
                # One file holds the record of every server registry used from this
                # machine: another server's approvals are not this one's (lines written
                # before the registry was kept, None, cannot be told apart and stay).
                found = [r for r in found if r.registry in (None, mine)]
        else:
            # Lines an earlier overblik kept in the file for this registry come first.
            found = [r for r in read_records() if r.registry == mine] if earlier_file else []
            with self._failing_clearly(db), db.transaction() as cur:
                if db.table_exists(cur, REVIEW_TABLE):  # reading never creates it
                    cur.execute(f"select id, record from {REVIEW_TABLE} order by id")
                    found += [self._parsed(row[0], row[1]) for row in cur.fetchall()]
        return [r for r in found if model is None or r.model == model]
