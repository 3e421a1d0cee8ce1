"""The periodic sweep: records what time has already decided. Safe on every instance at once.

Expiry is already exact at read time; the sweep only marks expired holds and records s136 breaches,
each with one set-based conditional UPDATE, so two instances running it together change each row once
and announce it once (the instance whose UPDATE returned the row).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from capacity.auth.scope import SYSTEM
from capacity.booking.detentions.models import S136Detention
from capacity.booking.holds.models import Hold
from capacity.booking.holds.service import hold_event
from capacity.booking.placements.models import Placement
from capacity.booking.placements.service import placement_event
from capacity.booking.units.availability import figures
from capacity.booking.units.models import Unit
from capacity.booking.units.service import availability_event
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork


@dataclass
class SweepResult:
    expired: list[str]
    breached: list[str]


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
        expired = (
            await uow.session.scalars(
                update(Hold)
                .where(Hold.status == "held", Hold.expires_at <= now, Hold.unit_id.in_(units))
                .values(status="expired", ended_at=Hold.expires_at, ended_by="system")
                .returning(Hold)
            )
        ).all()
        for hold in expired:
            uow.audit(
                actor=SYSTEM,
                action="hold.expire",
                object_type="hold",
                object_id=hold.id,
                after={"status": "expired", "expires_at": hold.expires_at.isoformat()},
            )
            uow.emit(hold_event("hold.expired", hold, units[hold.unit_id], now))
        changed = sorted({h.unit_id for h in expired})
        for found in (await figures(uow, [units[u] for u in changed])).values():
            uow.emit(availability_event(found, now))
        return [h.id for h in expired]

    return await db.write(work)


async def record_s136_breaches(db: Database) -> list[str]:
    async def work(uow: UnitOfWork) -> list[str]:
        now, session = uow.now, uow.session
        breached = (
            await session.scalars(
                update(Placement)
                .where(
                    Placement.legal_basis == "s136",
                    Placement.ended_at.is_(None),
                    Placement.s136_breached_at.is_(None),
                    Placement.s136_deadline <= now,
                )
                .values(s136_breached_at=Placement.s136_deadline)
                .returning(Placement)
            )
        ).all()
        units = (
            {
                u.id: u
                for u in (await session.scalars(select(Unit).where(Unit.id.in_({p.unit_id for p in breached})))).all()
            }
            if breached
            else {}
        )
        for placement in breached:
            assert placement.s136_deadline is not None
            uow.audit(
                actor=SYSTEM,
                action="placement.s136_breach",
                object_type="placement",
                object_id=placement.id,
                after={"s136_deadline": placement.s136_deadline.isoformat()},
            )
            uow.emit(placement_event("s136.breach", placement, units[placement.unit_id], now))
        # Detentions at places that are not units: recorded for the reports; no unit hears of them.
        elsewhere = (
            await session.scalars(
                update(S136Detention)
                .where(
                    S136Detention.ended_at.is_(None), S136Detention.breached_at.is_(None), S136Detention.deadline <= now
                )
                .values(breached_at=S136Detention.deadline)
                .returning(S136Detention.id)
            )
        ).all()
        for detention_id in elsewhere:
            uow.audit(
                actor=SYSTEM, action="s136_detention.breach", object_type="s136_detention", object_id=detention_id
            )
        return [p.id for p in breached] + list(elsewhere)

    return await db.write(work)


async def sweep(db: Database) -> SweepResult:
    return SweepResult(expired=await expire_holds(db), breached=await record_s136_breaches(db))
