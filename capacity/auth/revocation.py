"""Revoked tokens: one denylist that every instance reads (Redis when configured, the database otherwise).

Redis, when configured, answers the checks; the database always keeps the record (see RedisDenylist).
Without Redis, SQLite answers from a mirror of the table in memory (MirroredDenylist), so a request needs
no database read at all; PostgreSQL without Redis reads the table on each check.
Two kinds of entry, each kept until every token it could refuse would have expired anyway:
- `token:<jti>`: that one token (`POST /api/auth/revoke`, `POST /logout`); kept until the token's `exp`;
- `user:<id>`: every token of that user issued at or before the entry's time (deactivation, a change of
  role or scope: `capacity.auth.service.revoke_user`); kept for the longest lifetime a token has.

`iat` has whole seconds, so a token issued in the same second as a user's revocation is refused too:
the safe side. The REST API checks on every request (`capacity.auth.security.retrieve_actor`); open
WebSockets are checked in batches every few seconds (`capacity.notify.hub.Hub.check`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from litestar.security.jwt import Token
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from capacity.auth.models import RevokedToken
from capacity.db.base import table_of
from capacity.db.engine import Database, sqlite_sidecar
from capacity.db.unit_of_work import UnitOfWork

TOKEN, USER = "token:", "user:"
log = logging.getLogger("capacity.auth")


@dataclass(frozen=True)
class Presented:
    """What a revocation check needs of a token: its subject, id and times (epoch seconds)."""

    sub: str
    jti: str | None
    iat: float
    exp: float

    @classmethod
    def of(cls, token: Token) -> Presented:
        jti = token.jti if isinstance(token.jti, str) else None
        return cls(token.sub, jti, token.iat.timestamp(), token.exp.timestamp())

    def keys(self) -> list[str]:
        return ([TOKEN + self.jti] if self.jti else []) + [USER + self.sub]


class Denylist(Protocol):
    async def put(self, entries: Sequence[tuple[str, float, float]]) -> None:
        """Store (key, revoked_at, expires_at) entries, times in epoch seconds."""

    async def get(self, keys: Sequence[str]) -> dict[str, float]:
        """The live entries among `keys`: key -> revoked_at."""


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class DatabaseDenylist:
    """Rows of `revoked_tokens`; expired rows are deleted whenever a new entry is written."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, entries: Sequence[tuple[str, float, float]]) -> None:
        table = table_of(RevokedToken)
        insert = sqlite_insert if self.db.is_sqlite else pg_insert

        async def work(uow: UnitOfWork) -> None:
            session = uow.session
            await session.execute(delete(RevokedToken).where(RevokedToken.expires_at < _utc(time.time())))
            for key, revoked_at, expires_at in entries:
                statement = insert(table).values(key=key, revoked_at=_utc(revoked_at), expires_at=_utc(expires_at))
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=["key"],
                        set_={"revoked_at": statement.excluded.revoked_at, "expires_at": statement.excluded.expires_at},
                    )
                )

        await self.db.write(work)

    async def get(self, keys: Sequence[str]) -> dict[str, float]:
        if not keys:
            return {}
        query = select(RevokedToken.key, RevokedToken.revoked_at).where(
            RevokedToken.key.in_(keys), RevokedToken.expires_at > _utc(time.time())
        )
        async with self.db.autocommit_engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {key: at.timestamp() for key, at in rows}  # aware: the UTC column type

    async def live(self) -> list[tuple[str, float, float]]:
        """Every entry not yet expired, as (key, revoked_at, expires_at)."""
        query = select(RevokedToken.key, RevokedToken.revoked_at, RevokedToken.expires_at).where(
            RevokedToken.expires_at > _utc(time.time())
        )
        async with self.db.autocommit_engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(key, at.timestamp(), until.timestamp()) for key, at, until in rows]


class MirroredDenylist:
    """SQLite's denylist (one machine), answered from this process's memory, so that a request reads
    nothing from the database. Every process that revokes on this database touches a stamp file beside it
    after writing; each check looks at the stamp (a stat, no read) and re-reads the table when it has
    changed, so a revocation made by any process (another worker, a second server) holds in all of them
    as soon as it is made. Entries are only ever added or extended, so a re-read merges."""

    def __init__(self, database: DatabaseDenylist, stamp: str) -> None:
        self.database = database
        self.stamp = stamp
        self.entries: dict[str, tuple[float, float]] = {}  # key -> (revoked_at, expires_at)
        self._seen: int | None = None  # the stamp's mtime when the table was last read

    def _merge(self, entries: Sequence[tuple[str, float, float]]) -> None:
        now = time.time()
        for key, revoked_at, expires_at in entries:
            at, until = self.entries.get(key, (revoked_at, expires_at))
            self.entries[key] = (max(at, revoked_at), max(until, expires_at))
        for key in [k for k, (_, until) in self.entries.items() if until <= now]:
            del self.entries[key]

    def _stamped(self) -> int:
        try:
            return os.stat(self.stamp).st_mtime_ns
        except FileNotFoundError:
            return 0

    async def put(self, entries: Sequence[tuple[str, float, float]]) -> None:
        await self.database.put(entries)
        self._merge(entries)
        _touch(self.stamp)  # after the commit: whoever sees the new stamp reads the new rows

    async def get(self, keys: Sequence[str]) -> dict[str, float]:
        if (stamped := self._stamped()) != self._seen:
            self._seen = stamped  # before reading: a stamp touched meanwhile is read again next time
            self._merge(await self.database.live())
        now = time.time()
        return {key: entry[0] for key in keys if (entry := self.entries.get(key)) and entry[1] > now}


def _touch(path: str) -> None:
    """A new modification time (microseconds of local file work, not worth a thread)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    os.utime(path)


class RedisDenylist:
    """Keys `capacity:<db>:revoked:<key>` holding the revocation time, expiring with the entry: one MGET
    per check. The database stays the record (every entry is written there too), so that an instance
    keeps answering while Redis is away (checks fall back to the database) and, when Redis is back,
    copies the database's live entries into it before trusting it again: nothing revoked during an
    outage comes back to life."""

    def __init__(self, redis: Redis, database: DatabaseDenylist) -> None:
        self.redis = redis
        self.database = database
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        self.prefix = f"capacity:{db}:revoked:"
        self._unsynced = True  # until the database's entries have been copied in once

    async def _put(self, entries: Sequence[tuple[str, float, float]]) -> None:
        now = time.time()
        async with self.redis.pipeline(transaction=False) as pipe:
            for key, revoked_at, expires_at in entries:
                if expires_at > now:
                    pipe.set(self.prefix + key, repr(revoked_at), ex=max(1, math.ceil(expires_at - now)))
            await pipe.execute()

    async def put(self, entries: Sequence[tuple[str, float, float]]) -> None:
        await self.database.put(entries)
        try:
            await self._put(entries)
        except (RedisError, OSError) as exc:
            self._unsynced = True
            log.warning("revocation kept in the database only until Redis is back: %s", exc)

    async def get(self, keys: Sequence[str]) -> dict[str, float]:
        if not keys:
            return {}
        try:
            if self._unsynced:
                await self._put(await self.database.live())
                self._unsynced = False
            values = await self.redis.mget([self.prefix + key for key in keys])
        except (RedisError, OSError):
            self._unsynced = True
            return await self.database.get(keys)
        return {key: float(value) for key, value in zip(keys, values, strict=True) if value is not None}


class Revocations:
    """Revoking tokens and users, and asking whether tokens are still good."""

    def __init__(self, store: Denylist, token_lifetime_seconds: int) -> None:
        self.store = store
        self.lifetime = token_lifetime_seconds

    async def revoke_token(self, token: Presented) -> None:
        now = time.time()
        if token.jti:
            await self.store.put([(TOKEN + token.jti, now, token.exp)])
        else:
            # A token without an id (not one this service issues) can only be refused with the user's
            # tokens issued up to it.
            await self.store.put([(USER + token.sub, token.iat, token.iat + self.lifetime)])

    async def revoke_user(self, user_id: str) -> None:
        now = time.time()
        await self.store.put([(USER + user_id, now, now + self.lifetime)])

    async def revoked(self, tokens: Sequence[Presented]) -> list[bool]:
        """For each token, whether it has been revoked (one round trip for all of them)."""
        entries = await self.store.get(sorted({key for token in tokens for key in token.keys()}))
        return [is_revoked(token, entries) for token in tokens]


def is_revoked(token: Presented, entries: dict[str, float]) -> bool:
    if token.jti and TOKEN + token.jti in entries:
        return True
    cutoff = entries.get(USER + token.sub)
    return cutoff is not None and token.iat <= cutoff


def make_revocations(db: Database, redis: Redis | None, token_lifetime_seconds: int) -> Revocations:
    """Redis when configured; else SQLite's table mirrored in memory; else (PostgreSQL without Redis, where
    other machines may revoke) the table on every check."""
    database = DatabaseDenylist(db)
    store: Denylist
    if redis is not None:
        store = RedisDenylist(redis, database)
    elif db.is_sqlite:
        store = MirroredDenylist(database, stamp=sqlite_sidecar(db.engine, "revoked"))
    else:
        store = database
    return Revocations(store, token_lifetime_seconds)
