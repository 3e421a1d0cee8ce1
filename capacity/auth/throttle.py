"""Failed-login throttling shared by every instance, and a bound on the password checks run at once.

Failures are counted against the username (whoever tries it, from wherever) and against the client
address (whichever usernames it tries), each within `login_lockout_seconds`: in Redis sorted sets when
CAPACITY_REDIS_URL is set, in the `login_failures` table otherwise, so that every instance sees every
failure. Times come from the service's clock (tests move it). The client address is the peer, or what
X-Forwarded-For says only when the peer is one of CAPACITY_TRUSTED_PROXIES (`trusted_proxies`, applied
to the connection by uvicorn's ProxyHeadersMiddleware in `capacity.app`).

argon2 is slow by design, and a flood of logins would otherwise run one hash per request on every core:
`PasswordChecks` runs at most `login_concurrency` at once, in worker threads of lowered priority, with
at most `login_queue` waiting; beyond that a login is refused at once as busy (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, func, insert, select

from capacity.auth.models import LoginFailure
from capacity.auth.passwords import verify_password
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import ServiceBusy
from capacity.settings import Settings


def user_key(username: str) -> str:
    return "user:" + username.lower()


def address_key(client: str) -> str:
    return "addr:" + client


class FailureCounts(Protocol):
    async def counts(self, keys: Sequence[str], since: datetime) -> dict[str, tuple[int, datetime]]:
        """For each key with failures at or after `since`: their number and the oldest."""

    async def add(self, keys: Sequence[str], at: datetime, forget_before: datetime) -> None:
        """Count one failure against each key (and forget those older than `forget_before`)."""

    async def clear(self, key: str) -> None:
        """Forget the failures of one key (after a successful login)."""


class DatabaseFailures:
    """Rows of `login_failures`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def counts(self, keys: Sequence[str], since: datetime) -> dict[str, tuple[int, datetime]]:
        query = (
            select(LoginFailure.key, func.count(), func.min(LoginFailure.failed_at))
            .where(LoginFailure.key.in_(keys), LoginFailure.failed_at >= since)
            .group_by(LoginFailure.key)
        )
        async with self.db.read_sessions() as session:
            rows = (await session.execute(query)).all()
        return {key: (count, oldest) for key, count, oldest in rows}

    async def add(self, keys: Sequence[str], at: datetime, forget_before: datetime) -> None:
        async def work(uow: UnitOfWork) -> None:
            await uow.session.execute(delete(LoginFailure).where(LoginFailure.failed_at < forget_before))
            await uow.session.execute(insert(LoginFailure), [{"key": key, "failed_at": at} for key in keys])

        await self.db.write(work)

    async def clear(self, key: str) -> None:
        async def work(uow: UnitOfWork) -> None:
            await uow.session.execute(delete(LoginFailure).where(LoginFailure.key == key))

        await self.db.write(work)


class RedisFailures:
    """A sorted set per key, `capacity:<db>:login:<key>`, of failure times (scores, epoch seconds).
    While Redis is away the database counts instead (each side then sees part of the failures, for the
    length of the outage only), so that logging in never depends on Redis."""

    def __init__(self, redis: Redis, window_seconds: int, database: DatabaseFailures) -> None:
        self.redis = redis
        self.window = window_seconds
        self.database = database
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        self.prefix = f"capacity:{db}:login:"

    async def counts(self, keys: Sequence[str], since: datetime) -> dict[str, tuple[int, datetime]]:
        low = since.timestamp()
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zrangebyscore(self.prefix + key, low, "+inf", start=0, num=1, withscores=True)
                    pipe.zcount(self.prefix + key, low, "+inf")
                results = await pipe.execute()
        except (RedisError, OSError):
            return await self.database.counts(keys, since)
        found: dict[str, tuple[int, datetime]] = {}
        for index, key in enumerate(keys):
            oldest, count = results[2 * index], results[2 * index + 1]
            if count and oldest:
                found[key] = (int(count), datetime.fromtimestamp(oldest[0][1], since.tzinfo))
        return found

    async def add(self, keys: Sequence[str], at: datetime, forget_before: datetime) -> None:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zadd(self.prefix + key, {uuid.uuid4().hex: at.timestamp()})
                    pipe.zremrangebyscore(self.prefix + key, "-inf", f"({forget_before.timestamp()}")
                    pipe.expire(self.prefix + key, self.window + 60)
                await pipe.execute()
        except (RedisError, OSError):
            await self.database.add(keys, at, forget_before)

    async def clear(self, key: str) -> None:
        try:
            await self.redis.delete(self.prefix + key)
        except (RedisError, OSError):
            await self.database.clear(key)


class LoginThrottle:
    """Refuses logins for a while after repeated failures for one username or from one address."""

    def __init__(self, failures: FailureCounts, settings: Settings) -> None:
        self.failures = failures
        self.window = timedelta(seconds=settings.login_lockout_seconds)
        self.limits = (settings.login_max_failures, settings.login_max_failures_per_address)

    def _keys(self, username: str, client: str) -> tuple[str, str]:
        return user_key(username), address_key(client)

    async def retry_after(self, username: str, client: str, now: datetime) -> int | None:
        """Seconds to wait, when this username or this client has failed too often; else None."""
        keys = self._keys(username, client)
        counts = await self.failures.counts(keys, now - self.window)
        waits = [
            max(1, int((oldest + self.window - now).total_seconds()) + 1)
            for key, limit in zip(keys, self.limits, strict=True)
            if key in counts
            for count, oldest in [counts[key]]
            if count >= limit
        ]
        return max(waits) if waits else None

    async def failed(self, username: str, client: str, now: datetime) -> None:
        await self.failures.add(self._keys(username, client), now, now - self.window)

    async def succeeded(self, username: str) -> None:
        # The username's count starts again; the address's does not (one good account must not let an
        # address go on guessing others).
        await self.failures.clear(user_key(username))


def make_throttle(db: Database, redis: Redis | None, settings: Settings) -> LoginThrottle:
    database = DatabaseFailures(db)
    failures: FailureCounts = (
        RedisFailures(redis, settings.login_lockout_seconds, database) if redis is not None else database
    )
    return LoginThrottle(failures, settings)


def _lower_priority() -> None:
    # Password checks yield the CPU to the event loop (bookings, searches, live events): a niceness of
    # 10 for this worker thread, and the threads argon2 starts from it, which inherit it (Linux).
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


class PasswordChecks:
    """argon2 verification, `concurrency` at a time, with at most `queue` more waiting (else 503)."""

    def __init__(self, concurrency: int, queue: int) -> None:
        self.concurrency = concurrency
        self.queue = queue
        self.pending = 0
        self._executor: ThreadPoolExecutor | None = None  # made when first needed (again after close)

    def _pool(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.concurrency, thread_name_prefix="password-check", initializer=_lower_priority
            )
        return self._executor

    async def verify(self, password_hash: str | None, password: str) -> bool:
        if self.pending >= self.concurrency + self.queue:
            raise ServiceBusy()
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool(), verify_password, password_hash, password)
        finally:
            self.pending -= 1

    def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
