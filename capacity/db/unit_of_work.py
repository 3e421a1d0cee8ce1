"""The unit of work: one object per write transaction, which owns it.

A service is handed a `UnitOfWork` by `Database.write` and does everything through it, in this order
(ARCHITECTURE rule 1): `lock_units(ids)` first, then `now` (read once, after the locks), then checks
and writes on `session`, `audit(...)` for the log and `emit(event)` for the live stream. The events
are published only after the commit (rule 5); the audit entries commit, or roll back, with the change.

How units are locked is a strategy (`UnitLocks`): row locks in production, and for the concurrency
tests' control only, `NO_LOCKS`, which runs every statement on its own so that the read-check-write
race the locks exist to prevent can be shown to happen.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.interfaces import ORMOption

from capacity.clock import Clock
from capacity.db.base import Base
from capacity.errors import NotFound

if TYPE_CHECKING:
    from capacity.events import Event
    from capacity.settings import Settings


@functools.cache
def _unit_model() -> Any:
    """The model of the `units` table, found through the declarative registry: db/ names no domain
    package, so that nothing it imports can import it back."""
    units = Base.metadata.tables["units"]
    return next(m.class_ for m in Base.registry.mappers if m.local_table is units)


@dataclass(frozen=True)
class UnitLocks:
    """How a write transaction locks the units it changes.

    `row_locks`: SELECT ... FOR UPDATE on PostgreSQL; on SQLite the transaction begins IMMEDIATE and this
    process queues its writers, so the database's one write lock is held from the first statement.
    Without them (the control), every statement commits on its own: nothing is locked at all."""

    name: str
    row_locks: bool


ROW_LOCKS = UnitLocks("row locks", row_locks=True)
NO_LOCKS = UnitLocks("no locks (a test's control only)", row_locks=False)


class UnitOfWork:
    def __init__(
        self,
        session: AsyncSession,
        clock: Clock,
        settings: Settings,
        locks: UnitLocks,
        after_check: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self._clock = clock
        self._locks = locks
        self._after_check = after_check
        self._now: datetime | None = None
        self.events: list[Event] = []
        self.audit_entries: list[dict[str, Any]] = []

    @property
    def now(self) -> datetime:
        """The transaction's one instant, read on first use: after the locks, when there are any."""
        if self._now is None:
            self._now = self._clock.now()
        return self._now

    async def lock_units(self, ids: Iterable[str], *options: ORMOption) -> dict[str, Any]:
        """Lock these units for the rest of the transaction, in sorted order (so two transactions that
        lock the same units cannot deadlock); 404 for an id that does not exist. `options` are loader
        options for the units read (a caller that needs less of them says so)."""
        if not self.session.in_transaction():
            raise RuntimeError("lock_units runs only inside a write transaction")
        if self._now is not None:
            raise RuntimeError("lock the units before reading the clock: a time read before a lock wait is stale")
        unit = _unit_model()
        wanted = sorted(set(ids))
        stmt = select(unit).where(unit.id.in_(wanted)).order_by(unit.id).options(*options)
        if self._locks.row_locks:
            stmt = stmt.with_for_update()
        units = {u.id: u for u in (await self.session.scalars(stmt)).all()}
        for unit_id in wanted:
            if unit_id not in units:
                raise NotFound(f"no unit with id {unit_id}")
        return units

    async def lock_unit(self, unit_id: str, *options: ORMOption) -> Any:
        return (await self.lock_units([unit_id], *options))[unit_id]

    async def lock_unit_of(self, model: Any, object_id: str, what: str) -> tuple[Any, Any]:
        """Lock the unit a row of `model` (a hold, a placement) is at, then read that row afresh under
        the lock: what it says now, not what it said before the lock wait. 404 naming `what`."""
        unit_id = await self.session.scalar(select(model.unit_id).where(model.id == object_id))
        if unit_id is None:
            raise NotFound(f"no {what} with id {object_id}")
        unit = await self.lock_unit(unit_id)
        return await self.session.get(model, object_id, populate_existing=True), unit

    async def checked(self) -> None:
        """Called by the availability calculator between a check and the write that follows it: a test
        interleaves a second transaction here to show what the locks prevent."""
        if self._after_check is not None:
            await self._after_check()

    def emit(self, event: Event) -> None:
        """Announce `event` once the transaction has committed; never if it rolls back."""
        self.events.append(event)

    def audit(
        self,
        actor: Any,
        action: str,
        object_type: str,
        object_id: str | None,
        *,
        before: dict | None = None,
        after: dict | None = None,
    ) -> None:
        """Add an entry to the append-only audit log at this transaction's instant: who did what to which
        object, with the object's state before and after where they apply (`before=`, `after=`).
        `Database.write` inserts the transaction's entries, in one statement, just before it commits."""
        self.audit_entries.append(
            dict(
                at=self.now,
                username=actor.username,
                role=actor.role,
                action=action,
                object_type=object_type,
                object_id=object_id,
                before=before,
                after=after,
            )
        )

    async def write_audit(self) -> None:
        if self.audit_entries:
            await self.session.execute(insert(Base.metadata.tables["audit_log"]), self.audit_entries)


@dataclass
class Reading:
    """A read: a session outside any write lock, and the one instant the answer is computed at."""

    session: AsyncSession
    now: datetime
    settings: Settings

    async def checked(self) -> None:
        """A read changes nothing, so there is nothing to interleave."""
