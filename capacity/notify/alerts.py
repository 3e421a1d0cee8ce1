"""Scheduled alerts: holds about to expire, the s136 clock's warnings, stale figures.

Every instance runs these jobs. An alert is sent exactly once because it is first recorded in
`alerts_sent`, whose uniqueness constraint lets only one instance's INSERT succeed (ON CONFLICT DO
NOTHING ... RETURNING); only that instance publishes it, after its commit. Expired holds and s136
breaches are announced by the sweep, whose conditional UPDATEs are exactly-once in the same way.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, UniqueConstraint, and_, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from capacity.booking.detentions.models import Episode
from capacity.booking.holds.models import Hold
from capacity.booking.holds.service import hold_event
from capacity.booking.placements.service import leg_events
from capacity.booking.units.models import Unit
from capacity.db.base import Base, IdMixin
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.events import unit_event


class AlertSent(IdMixin, Base):
    __tablename__ = "alerts_sent"
    kind: Mapped[str] = mapped_column(String(24))
    object_id: Mapped[str] = mapped_column(String(36))
    # What makes this alert distinct for the object, e.g. the threshold and the deadline it was for.
    key: Mapped[str] = mapped_column(String(80))
    sent_at: Mapped[datetime]
    __table_args__ = (UniqueConstraint("kind", "object_id", "key"),)


async def claim(session: AsyncSession, kind: str, object_id: str, key: str, now: datetime) -> bool:
    """Record the alert; True only for the one transaction that recorded it first."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = (
        insert(AlertSent)
        .values(kind=kind, object_id=object_id, key=key, sent_at=now)
        .on_conflict_do_nothing()
        .returning(AlertSent.id)
    )
    return (await session.execute(stmt)).first() is not None


async def alert_expiring_holds(uow: UnitOfWork) -> int:
    session, now, settings = uow.session, uow.now, uow.settings
    soon = now + timedelta(minutes=settings.hold_expiring_minutes)
    rows = (
        await session.execute(
            select(Hold, Unit)
            .join(Unit, Unit.id == Hold.unit_id)
            .where(Hold.status == "held", Hold.expires_at > now, Hold.expires_at <= soon)
        )
    ).all()
    sent = 0
    for hold, unit in rows:
        # Keyed by the expiry, so a hold extended and then nearing its new expiry is warned again.
        if await claim(session, "hold.expiring", hold.id, hold.expires_at.isoformat(), now):
            minutes = round((hold.expires_at - now).total_seconds() / 60, 1)
            uow.emit(hold_event("hold.expiring", hold, unit, now, minutes_left=minutes))
            sent += 1
    return sent


async def alert_s136_deadlines(uow: UnitOfWork) -> int:
    """Warn before the deadline of every open s135/s136 episode, wherever the person is now."""
    session, now, settings = uow.session, uow.now, uow.settings
    thresholds = sorted(settings.s136_warning_minutes, reverse=True)
    due = (
        await session.scalars(
            select(Episode).where(
                Episode.ended_at.is_(None),
                Episode.breached_at.is_(None),
                Episode.deadline > now,
                Episode.deadline <= now + timedelta(minutes=thresholds[0]),
            )
        )
    ).all()
    warned: list[tuple[Episode, float, int]] = []
    for episode in due:
        left = (episode.deadline - now).total_seconds() / 60
        # Only the nearest threshold crossed: a 30-minute warning does not also send the 2-hour one late.
        threshold = min(t for t in thresholds if left <= t)
        # Keyed by the deadline too, so an extended episode is warned again before its new deadline.
        if await claim(session, "s136.warning", episode.id, f"{threshold}@{episode.deadline.isoformat()}", now):
            warned.append((episode, left, threshold))
    events = await leg_events(uow, "s136.warning", [episode for episode, _, _ in warned])
    for event, (_, left, threshold) in zip(events, warned, strict=True):
        event.data.update(minutes_left=round(left, 1), threshold_minutes=threshold)
        uow.emit(event)
    return len(events)


async def alert_stale_units(uow: UnitOfWork) -> int:
    session, now, settings = uow.session, uow.now, uow.settings
    windows = settings.stale_minutes
    stale = or_(
        *(
            and_(Unit.kind == kind, Unit.last_confirmed_at < now - timedelta(minutes=minutes))
            for kind, minutes in windows.items()
        )
    )
    # This stale spell's reminder was sent if one was sent after the last confirmation (which re-arms it:
    # a reminder comes at least the kind's window after it, a confirmation at or after the last reminder).
    # Only units without one are claimed, so a sweep costs the newly stale units, not every stale one.
    reminded = (
        select(AlertSent.id)
        .where(
            AlertSent.kind == "unit.stale", AlertSent.object_id == Unit.id, AlertSent.sent_at > Unit.last_confirmed_at
        )
        .exists()
    )
    columns = (
        Unit.id,
        Unit.provider_id,
        Unit.area_code,
        Unit.kind,
        Unit.name,
        Unit.last_confirmed_at,
        Unit.last_confirmed_by,
    )
    sent = 0
    for unit in (await session.execute(select(*columns).where(stale, ~reminded))).all():
        # One reminder per stale episode, claimed by exactly one instance.
        if await claim(session, "unit.stale", unit.id, unit.last_confirmed_at.isoformat(), now):
            data = {
                "name": unit.name,
                "last_confirmed_at": unit.last_confirmed_at.isoformat(),
                "last_confirmed_by": unit.last_confirmed_by,
                "stale_after_minutes": windows[unit.kind],
            }
            # A reminder changes nothing of the unit: a read model need not re-read it.
            uow.emit(unit_event("unit.stale", unit, now, data, rereads_unit=False))
            sent += 1
    return sent


async def send_alerts(db: Database) -> int:
    async def work(uow: UnitOfWork) -> int:
        return await alert_expiring_holds(uow) + await alert_s136_deadlines(uow) + await alert_stale_units(uow)

    return await db.write(work)
