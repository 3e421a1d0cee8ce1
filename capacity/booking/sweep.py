"""The periodic sweep: records what time has already decided. Safe on every instance at once.

Expiry is already exact at read time; the sweep only marks expired holds and records s136 breaches,
each with one set-based conditional UPDATE, so two instances running it together change each row once
and announce it once (the instance whose UPDATE returned the row).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.booking.availability import unit_figures
from capacity.booking.holds import hold_event
from capacity.booking.models import Hold, Placement, S136Detention, Unit
from capacity.booking.placements import placement_event
from capacity.booking.scope import SYSTEM
from capacity.booking.units import availability_event
from capacity.clock import Clock
from capacity.db.engine import Database
from capacity.notify.events import record_event


@dataclass
class SweepResult:
    expired: list[str]
    breached: list[str]


async def expire_holds(db: Database, clock: Clock) -> list[str]:
    async def work(session: AsyncSession) -> list[str]:
        now = clock.now()
        due = select(Hold.unit_id).where(Hold.status == "held", Hold.expires_at <= now)
        # Lock the affected units in a fixed order, as every other capacity change does (rule 1).
        units = {u.id: u for u in (await session.scalars(
            select(Unit).where(Unit.id.in_(due)).order_by(Unit.id).with_for_update())).all()}
        expired = (await session.scalars(
            update(Hold).where(Hold.status == "held", Hold.expires_at <= now)
            .values(status="expired", ended_at=Hold.expires_at, ended_by="system")
            .returning(Hold)
        )).all()
        for hold in expired:
            unit = units.get(hold.unit_id) or await session.get(Unit, hold.unit_id)
            audit.record(session, at=now, actor=SYSTEM, action="hold.expire", object_type="hold",
                         object_id=hold.id, after={"status": "expired", "expires_at": hold.expires_at.isoformat()})
            record_event(session, hold_event("hold.expired", hold, unit, now))
        for unit_id in sorted({h.unit_id for h in expired}):
            figures = await unit_figures(session, unit_id, now, db.settings)
            record_event(session, availability_event(figures, now))
        return [h.id for h in expired]

    return await db.write(work)


async def record_s136_breaches(db: Database, clock: Clock) -> list[str]:
    async def work(session: AsyncSession) -> list[str]:
        now = clock.now()
        breached = (await session.scalars(
            update(Placement)
            .where(Placement.legal_basis == "s136", Placement.ended_at.is_(None),
                   Placement.s136_breached_at.is_(None), Placement.s136_deadline <= now)
            .values(s136_breached_at=Placement.s136_deadline)
            .returning(Placement)
        )).all()
        for placement in breached:
            unit = await session.get(Unit, placement.unit_id)
            audit.record(session, at=now, actor=SYSTEM, action="placement.s136_breach", object_type="placement",
                         object_id=placement.id, after={"s136_deadline": placement.s136_deadline.isoformat()})
            record_event(session, placement_event("s136.breach", placement, unit, now))
        # Detentions at places that are not units: recorded for the reports; no unit hears of them.
        elsewhere = (await session.scalars(
            update(S136Detention)
            .where(S136Detention.ended_at.is_(None), S136Detention.breached_at.is_(None), S136Detention.deadline <= now)
            .values(breached_at=S136Detention.deadline)
            .returning(S136Detention.id)
        )).all()
        for detention_id in elsewhere:
            audit.record(session, at=now, actor=SYSTEM, action="s136_detention.breach", object_type="s136_detention",
                         object_id=detention_id)
        return [p.id for p in breached] + list(elsewhere)

    return await db.write(work)


async def sweep(db: Database, clock: Clock) -> SweepResult:
    return SweepResult(expired=await expire_holds(db, clock), breached=await record_s136_breaches(db, clock))
