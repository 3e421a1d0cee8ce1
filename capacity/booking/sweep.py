"""The periodic sweep: records what time has already decided. Safe on every instance at once.

Expiry is already exact at read time; the sweep only marks expired holds and records the breaches of
s135/s136 episodes,
each with one set-based conditional UPDATE, so two instances running it together change each row once
and announce it once (the instance whose UPDATE returned the row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Update, select, update

from capacity.auth.scope import SYSTEM
from capacity.booking.detentions.models import Episode
from capacity.booking.holds.models import Hold
from capacity.booking.holds.service import figures_after_holds, hold_event
from capacity.booking.placements.service import leg_events
from capacity.booking.units.availability import figures
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork


@dataclass
class SweepResult:
    expired: list[str]
    breached: list[str]


async def _changed_audited(
    uow: UnitOfWork, change: Update, action: str, object_type: str, after: Callable[[Any], dict]
) -> list[Any]:
    """Run one of the sweep's conditional UPDATE ... RETURNING statements and audit, as the system, each
    row it changed: the rows this instance changed, and so the ones it announces."""
    changed = list((await uow.session.scalars(change)).all())
    for row in changed:
        uow.audit(SYSTEM, action, object_type, row.id, after=after(row))
    return changed


async def expire_holds(db: Database) -> list[str]:
    async def work(uow: UnitOfWork) -> list[str]:
        # Lock the units with holds past their expiry, as every other capacity change does (rule 1).
        due = await uow.session.scalars(
            select(Hold.unit_id).where(Hold.status == "held", Hold.expires_at <= db.clock.now()).distinct()
        )
        unit_ids = due.all()
        if not unit_ids:
            return []  # nothing due: the usual case, every sweep period
        units = await uow.lock_units(unit_ids)
        now = uow.now
        expired: list[Hold] = await _changed_audited(
            uow,
            update(Hold)
            .where(Hold.status == "held", Hold.expires_at <= now, Hold.unit_id.in_(units))
            .values(status="expired", ended_at=Hold.expires_at, ended_by="system")
            .returning(Hold),
            "hold.expire",
            "hold",
            lambda hold: {"status": "expired", "expires_at": hold.expires_at.isoformat()},
        )
        for hold in expired:
            uow.emit(hold_event("hold.expired", hold, units[hold.unit_id], now))
        changed = sorted({h.unit_id for h in expired})
        for found in (await figures(uow, [units[u] for u in changed])).values():
            uow.emit(figures_after_holds(found, now))
        return [h.id for h in expired]

    return await db.write(work)


async def record_s136_breaches(db: Database) -> list[str]:
    """Record the breach of every open s135/s136 episode past its deadline, wherever the person is."""

    async def work(uow: UnitOfWork) -> list[str]:
        breached: list[Episode] = await _changed_audited(
            uow,
            update(Episode)
            .where(Episode.ended_at.is_(None), Episode.breached_at.is_(None), Episode.deadline <= uow.now)
            .values(breached_at=Episode.deadline)
            .returning(Episode),
            "s136.breach",
            "detention",
            lambda episode: {"deadline": episode.deadline.isoformat()},
        )
        for event in await leg_events(uow, "s136.breach", breached):
            uow.emit(event)
        return [e.id for e in breached]

    return await db.write(work)


async def sweep(db: Database) -> SweepResult:
    return SweepResult(expired=await expire_holds(db), breached=await record_s136_breaches(db))
