"""Engines and transactions.

Reads go through `Database.read()`: a session that takes no write lock, and the instant it reads at.
Writes go through `Database.write(work)`, which hands `work` one `UnitOfWork` owning one transaction
(capacity.db.unit_of_work): on SQLite it begins IMMEDIATE, so writers queue on the database lock; on
PostgreSQL `lock_units` takes row locks under a lock timeout. Busy, lock-timeout, serialisation and
deadlock failures are retried a few times with jitter, then reported as `ServiceBusy` (503 with
Retry-After) (rule 6). A database that cannot be reached or has no connection to spare (refused,
restarting, too many clients, the pool exhausted) is `ServiceUnavailable` (503 with Retry-After) at
once, never retried: the pool's pre-ping replaces dead connections, so the service recovers by itself
when the database is back. The clock is the database's: no service reads it but through these two.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from capacity.clock import Clock
from capacity.db.london import SQLITE_FUNCTIONS
from capacity.db.unit_of_work import ROW_LOCKS, Reading, UnitLocks, UnitOfWork
from capacity.errors import ServiceBusy, database_fault
from capacity.settings import Settings

T = TypeVar("T")
log = logging.getLogger("capacity.events")

# SQLSTATEs worth retrying on PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
_PG_RETRY = {"40001", "40P01", "55P03"}


def _is_retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _PG_RETRY:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text or "lock timeout" in text


def make_engine(
    url: str,
    lock_timeout_ms: int | None = None,
    *,
    pool_size: int = 20,
    max_overflow: int = 20,
    pool_timeout: float = 10.0,
) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 10})
        _configure_sqlite(engine)
    else:
        # lock_timeout as a session default set at connect: no SET LOCAL round trip per write. A new
        # connection gets as long to open as a request waits for a pooled one (asyncpg's own default is 60 s).
        connect_args: dict[str, Any] = {"timeout": pool_timeout}
        if lock_timeout_ms:
            connect_args["server_settings"] = {"lock_timeout": str(int(lock_timeout_ms))}
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            pool_pre_ping=True,
            connect_args=connect_args,
        )
    return engine


def _as_fault(exc: Exception) -> Exception:
    """`exc` as the 503 it stands for when it is a database fault; otherwise `exc` itself."""
    kind = database_fault(exc)
    if kind is None:
        return exc
    fault = kind()
    fault.__cause__ = exc
    return fault


def sqlite_sidecar(engine: AsyncEngine, suffix: str) -> str:
    """A file beside SQLite's database that every process on it shares (the sweeper's lock, the denylist's
    stamp); for an in-memory database, one of this process alone."""
    database = engine.url.database or ""
    if not database or database == ":memory:":
        database = os.path.join(tempfile.gettempdir(), f"capacity-{os.getpid()}")
    return f"{database}.{suffix}"


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, emit BEGIN, so that a write can say BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
        # Europe/London dates and hours for the reports (capacity.reports.sql); PostgreSQL has its own.
        for name, arity, function in SQLITE_FUNCTIONS:
            dbapi_connection.create_function(name, arity, function, deterministic=True)

    @event.listens_for(sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        options = conn.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return  # every statement commits on its own
        conn.exec_driver_sql(f"BEGIN {options.get('sqlite_begin', 'DEFERRED')}")


class Database:
    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self.engine = make_engine(
            settings.database_url,
            settings.lock_timeout_ms,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout_seconds,
        )
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single-statement reads that need no transaction around them (the caller's identity).
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        write_bind = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self.write_sessions = async_sessionmaker(write_bind, expire_on_commit=False)
        self._unlocked_sessions = async_sessionmaker(self.autocommit_engine, expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's writers here, in FIFO order, instead of
        # letting them spin in SQLite's busy handler (which sleeps 1..100 ms between tries, holding a
        # pooled connection and its thread). busy_timeout still arbitrates between processes.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None
        # How writes lock units; a concurrency test swaps in NO_LOCKS to show its race is real.
        self.unit_locks: UnitLocks = ROW_LOCKS
        # A concurrency test's hook, awaited between an availability check and the write after it.
        self.after_check: Callable[[], Awaitable[None]] | None = None
        # Set by the notify layer: receives the events of each committed write.
        self.publish: Callable[[list], Awaitable[None]] | None = None

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[Reading]:
        """A session for reading, outside any write lock, and the one instant its answer is computed at.

        A database fault (unreachable, restarting, no connection to spare) is raised as the 503 it is."""
        try:
            async with self.read_sessions() as session:
                yield Reading(session, self.clock.now(), self.settings)
        except (DBAPIError, OSError, PoolTimeout) as exc:
            fault = _as_fault(exc)
            if fault is exc:
                raise
            raise fault from exc

    async def write(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """Run `work` in one write transaction, retrying transient lock failures; nothing else repeats.

        The events `work` emits are handed to `self.publish` only after the commit succeeded (rule 5):
        a rolled-back change sends nothing."""
        attempts = self.settings.write_attempts
        locked = self.unit_locks.row_locks
        for attempt in range(1, attempts + 1):
            try:
                queue = self._sqlite_writer if locked else None
                sessions = self.write_sessions if locked else self._unlocked_sessions
                async with queue or contextlib.nullcontext(), sessions() as session:
                    uow = UnitOfWork(session, self.clock, self.settings, self.unit_locks, self.after_check)
                    async with session.begin():
                        result = await work(uow)
                        await uow.write_audit()
            except DBAPIError as exc:
                if not _is_retryable(exc):
                    fault = _as_fault(exc)
                    if fault is exc:
                        raise
                    # Unreachable, restarting or out of connections: not retried (the commit may even
                    # have happened when the connection broke under it), answered 503 at once.
                    raise fault from exc
                if attempt == attempts:
                    raise ServiceBusy() from exc
            except (OSError, PoolTimeout) as exc:
                fault = _as_fault(exc)
                if fault is exc:
                    raise
                raise fault from exc
            else:
                if uow.events and self.publish is not None:
                    await self.publish(uow.events)
                    # Under the id of the request (or sweep run) whose transaction made them (capacity.logs).
                    log.info("events published", extra={"events": [e.type for e in uow.events]})
                return result
            await asyncio.sleep(random.uniform(0.005, 0.03) * attempt)
        raise ServiceBusy()

    async def dispose(self) -> None:
        await self.engine.dispose()
