"""Real services for tests: PostgreSQL on 127.0.0.1:5432 (trust auth).

Where no server answers (a laptop) the tests that need it skip with a visible reason; with
``OVERBLIK_REQUIRE_SERVICES=1`` (set by ``.ci/run``) that skip becomes a failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_HOST = os.environ.get("OVERBLIK_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("OVERBLIK_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("OVERBLIK_TEST_PG_USER", "postgres")
PG_ADMIN_DB = os.environ.get("OVERBLIK_TEST_PG_DB", "test")


def _admin_dsn() -> str:
    return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={PG_ADMIN_DB}"


def require_postgres() -> None:
    """Skip (or, in CI, fail) when PostgreSQL does not answer."""
    import psycopg

    try:
        with psycopg.connect(_admin_dsn(), connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL at {PG_HOST}:{PG_PORT} does not answer ({exc})"
        if os.environ.get("OVERBLIK_REQUIRE_SERVICES"):
            pytest.fail(reason + "; OVERBLIK_REQUIRE_SERVICES is set, so this is a failure")
        pytest.skip(reason)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database for one test; dropped afterwards. Yields a SQLAlchemy URL."""
    import psycopg

    require_postgres()
    name = f"overblik_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')


@contextmanager
def postgres_login_role() -> Iterator[str]:
    """A new role that may log in and nothing more (no superuser, no CREATE anywhere);
    dropped afterwards. Drop the databases it was granted rights in first."""
    import psycopg

    require_postgres()
    # Capitals and a hyphen: statements that name it must quote it.
    name = f"Overblik-Board-{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'create role "{name}" login')
    try:
        yield name
    finally:
        with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
            conn.execute(f'drop role if exists "{name}"')
