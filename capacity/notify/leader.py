"""Exactly one sweeper across every instance and worker process.

The sweep and the alerts are safe to run everywhere at once (conditional UPDATEs; alerts claimed once),
but with N workers on M instances every one of them would scan the tables each period. So one holder
runs them: on PostgreSQL, whoever holds a session-level advisory lock on a connection of its own; on
SQLite (one machine), whoever holds an exclusive lock on a file beside the database. The server, or the
operating system, lets go of either the moment the holder's process dies or its connection drops, and
every process tries to take it at each sweep period, so the work moves to another within one period.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from abc import ABC, abstractmethod
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from capacity.db.engine import sqlite_sidecar

log = logging.getLogger("capacity.jobs")

# The advisory lock's key: any constant the service does not use for anything else (the migrations
# take 7_136_136 for a transaction at a time).
SWEEPER_LOCK = 7_136_137


class SweepLock(Protocol):
    async def held(self) -> bool:
        """Whether this process holds the lock now, taking it if it is free."""

    async def release(self) -> None: ...


class _HandleLock(ABC):
    """A lock held through a handle of its own (a connection, a file): kept while the handle lives."""

    async def held(self) -> bool:
        if await self._kept():
            return True
        if not await self._take():
            return False
        log.info("this process is the sweeper now (pid %d)", os.getpid())
        return True

    @abstractmethod
    async def _kept(self) -> bool:
        """Whether this process still holds the lock it took."""

    @abstractmethod
    async def _take(self) -> bool:
        """Take the lock if it is free."""


class PostgresSweepLock(_HandleLock):
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.connection: AsyncConnection | None = None

    async def _kept(self) -> bool:
        if self.connection is None:
            return False
        try:
            await self.connection.exec_driver_sql("SELECT 1")  # the lock lives as long as this connection
            await self.connection.commit()
            return True
        except (DBAPIError, OSError):
            log.warning("the sweeper's connection was lost: the lock is free for another instance")
            await self.release()
            return False

    async def _take(self) -> bool:
        try:
            connection = await self.engine.connect()
        except (DBAPIError, OSError):
            return False
        try:
            taken = (
                await connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": SWEEPER_LOCK})
            ).scalar()
            await connection.commit()  # a session lock outlives the transaction that took it
        except (DBAPIError, OSError):
            taken = False
        if taken:
            self.connection = connection
            return True
        await connection.close()
        return False

    async def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(DBAPIError, OSError):
                await connection.close()  # closing the session ends its advisory locks


class FileSweepLock(_HandleLock):
    def __init__(self, path: str) -> None:
        self.path = path
        self.fd: int | None = None

    async def _kept(self) -> bool:
        return self.fd is not None

    async def _take(self) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self.fd = fd
        return True

    async def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)  # closing the file lets go of its lock


def sweep_lock(engine: AsyncEngine) -> SweepLock:
    """The lock for the database `engine` reaches: PostgreSQL's advisory lock, or a file beside SQLite's."""
    if engine.url.get_backend_name() == "postgresql":
        return PostgresSweepLock(engine)
    return FileSweepLock(sqlite_sidecar(engine, "sweeper.lock"))
