"""Engines and transactions.

Reads use an ordinary session. Writes go through `Database.write`, which runs a unit of work in one
transaction that takes its locks first (rule 1): on SQLite the transaction starts with BEGIN IMMEDIATE,
so writers queue on the database lock; on PostgreSQL the service locks rows with FOR UPDATE under a
lock timeout. Busy, lock-timeout, serialisation and deadlock failures are retried a few times with
jitter, then reported as `ServiceBusy` (503 with Retry-After) (rule 6).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from capacity.reports.sql import SQLITE_FUNCTIONS
from capacity.settings import Settings

T = TypeVar("T")

# SQLSTATEs worth retrying on PostgreSQL: serialization_failure, deadlock_detected, lock_not_available.
_PG_RETRY = {"40001", "40P01", "55P03"}


class ServiceBusy(Exception):
    """The database stayed busy through every attempt; the client should retry shortly."""

    retry_after = 1


def _is_retryable(exc: DBAPIError) -> bool:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in _PG_RETRY:
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text or "lock timeout" in text


def make_engine(url: str, lock_timeout_ms: int | None = None) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 10})
        _configure_sqlite(engine)
    else:
        # lock_timeout as a session default set at connect: no SET LOCAL round trip per write.
        connect_args = {"server_settings": {"lock_timeout": str(int(lock_timeout_ms))}} if lock_timeout_ms else {}
        engine = create_async_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True,
                                     connect_args=connect_args)
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:
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
    def _on_begin(conn) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database_url, settings.lock_timeout_ms)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self.read_sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single-statement reads that need no transaction around them (the caller's identity).
        self.autocommit_engine = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        write_bind = self.engine.execution_options(sqlite_begin="IMMEDIATE") if self.is_sqlite else self.engine
        self.write_sessions = async_sessionmaker(write_bind, expire_on_commit=False)
        # SQLite has one writer at a time: queue this process's writers here, in FIFO order, instead of
        # letting them spin in SQLite's busy handler (which sleeps 1..100 ms between tries, holding a
        # pooled connection and its thread). busy_timeout still arbitrates between processes.
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None
        # A test may switch locking off to show that the concurrency tests catch overbooking.
        self.locking = True
        # Set by the notify layer: receives the events of each committed write.
        self.publish: Callable[[list], Awaitable[None]] | None = None

    async def write(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work` in one write transaction, retrying transient lock failures; nothing else repeats.

        Domain events that `work` records in `session.info["events"]` are handed to `self.publish`
        only after the commit succeeded (rule 5): a rolled-back change sends nothing.
        """
        attempts = self.settings.write_attempts
        for attempt in range(1, attempts + 1):
            try:
                async with self._sqlite_writer or contextlib.nullcontext(), self.write_sessions() as session:
                    async with session.begin():
                        result = await work(session)
                    events = session.info.pop("events", [])
                if events and self.publish is not None:
                    await self.publish(events)
                return result
            except DBAPIError as exc:
                if not _is_retryable(exc):
                    raise
                if attempt == attempts:
                    raise ServiceBusy() from exc
            await asyncio.sleep(random.uniform(0.005, 0.03) * attempt)
        raise ServiceBusy()

    async def dispose(self) -> None:
        await self.engine.dispose()
