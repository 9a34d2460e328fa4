"""Bearer API keys with roles, stored only as hashes.

A key reads ``ovk_<key id>_<secret>``: the key id (8 hex digits) finds the row, the SHA-256
of the whole key is compared in constant time. The secret is 192 random bits, so a plain
hash is enough (nothing to brute-force; a slow password hash would only slow every request).
The key is shown once, by ``overblik keys create``; the store keeps id, role, name, created
and revoked. Keys live in the same store as the audit log, so that the log's key ids can be
joined to a name and role, every replica sees a revocation, and operations back up one thing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, get_args

from overblik.features._errors import InputError
from overblik.serving._cpr import contains_cpr
from overblik.serving._database import Database, Table

__all__ = ["ROLES", "ApiKey", "KeyStore", "Role"]

Role = Literal["caseworker-system", "analyst", "auditor", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_TOKEN = re.compile(r"^ovk_([0-9a-f]{8})_([0-9a-f]{48})$")
_NAME = re.compile(r"^[\w .,:()/-]{1,100}$")

_TABLE = Table("api_keys", ("""
create table api_keys (
    key_id text primary key,
    key_hash text not null,
    role text not null,
    name text not null,
    created_at text not null,
    revoked_at text
)
""",), "select, insert, update")  # update: revoking sets revoked_at


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One key's record (never the key itself)."""

    key_id: str
    role: Role
    name: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


class KeyStore:
    """Create, list, revoke and check API keys.

    Parameters
    ----------
    db
        The store (SQLite or PostgreSQL).
    cache_seconds
        How long a checked key is trusted without asking the store again; a revocation takes
        effect within this time on a running service (0: every request asks).
    create
        Create the table when missing (the service, ``keys create``); False for commands
        that list or revoke, where a store without keys is a mistyped ``--store``.
    """

    def __init__(self, db: Database, *, cache_seconds: float = 5.0,
                 create: bool = True) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()
        db.prepare([_TABLE], create=create, what="API keys")

    def create(self, role: str, name: str) -> tuple[ApiKey, str]:
        """A new key for ``role``; returns its record and the key (shown once).

        Raises
        ------
        InputError
            For an unknown role or a name that is empty, too long or holds a CPR number.
        """
        if role not in ROLES:
            raise InputError(f"--role {role!r} is not a role; choose from {', '.join(ROLES)}")
        if not _NAME.match(name) or not name.strip() or contains_cpr(name):
            raise InputError("--name: give 1-100 letters, digits, spaces or .,:()/- naming the "
                             "system that uses the key (e.g. 'Nexus familieafdeling'), and no "
                             "CPR number")
        key_id = secrets.token_hex(4)
        token = f"ovk_{key_id}_{secrets.token_hex(24)}"
        record = ApiKey(key_id=key_id, role=role, name=name, created_at=_now(),  # type: ignore[arg-type]
                        revoked_at=None)
        with self.db.transaction(write=True) as cur:
            cur.execute(self.db.sql("insert into api_keys (key_id, key_hash, role, name, "
                                    "created_at, revoked_at) values (?, ?, ?, ?, ?, null)"),
                        (key_id, _hash(token), role, name, record.created_at))
        return record, token

    def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        with self.db.transaction() as cur:
            cur.execute("select key_id, role, name, created_at, revoked_at from api_keys "
                        "order by created_at, key_id")
            rows = cur.fetchall()
        return [ApiKey(*row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke a key (idempotent: revoking twice keeps the first time).

        Raises
        ------
        InputError
            When no key has this id.
        """
        with self.db.transaction(write=True) as cur:
            cur.execute(self.db.sql("update api_keys set revoked_at = ? where key_id = ? and "
                                    "revoked_at is null"), (_now(), key_id))
            cur.execute(self.db.sql("select key_id, role, name, created_at, revoked_at from "
                                    "api_keys where key_id = ?"), (key_id,))
            row = cur.fetchone()
        if row is None:
            raise InputError(f"no API key with id {key_id!r}: `overblik keys list` shows the "
                             "ids")
        with self._lock:
            self._cache.clear()
        return ApiKey(*row)

    def cached(self, token: str) -> tuple[bool, ApiKey | None]:
        """``(True, key or None)`` when the answer for ``token`` is cached and fresh, else
        ``(False, None)``; never touches the store (cheap enough for the event loop)."""
        hit = self._cache.get(_hash(token))
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def authenticate(self, token: str) -> ApiKey | None:
        """The key behind ``token``, or None (unknown or malformed).

        A revoked key is returned too (``active`` False), so that its use is refused *and*
        attributed to it in the audit log: a leaked key still tried shows under its id. Only
        the full token finds it, never its id alone."""
        m = _TOKEN.match(token)
        if m is None:
            return None
        known, key = self.cached(token)
        if known:
            return key
        digest = _hash(token)
        now = time.monotonic()
        with self.db.transaction() as cur:
            cur.execute(self.db.sql("select key_hash, key_id, role, name, created_at, "
                                    "revoked_at from api_keys where key_id = ?"), (m[1],))
            row = cur.fetchone()
        found = None
        if row is not None and hmac.compare_digest(row[0], digest):
            found = ApiKey(*row[1:])
        if self.cache_seconds > 0:
            with self._lock:
                if len(self._cache) > 10_000:  # bounded: wrong keys must not grow it forever
                    self._cache.clear()
                self._cache[digest] = (now + self.cache_seconds, found)
        return found
