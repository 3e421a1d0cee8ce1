"""Placements: a person staying at a unit, from arrival or direct admission to discharge; the s136 clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity import audit
from capacity.auth.security import Actor
from capacity.booking.availability import great_circle_km, unit_figures
from capacity.booking.eligibility import check_person, check_unit_takes
from capacity.booking.models import Area, Placement, Unit
from capacity.booking.persons import person_columns
from capacity.booking.schemas import DischargeIn, PlacementIn, S136ExtensionIn
from capacity.booking.scope import ensure_role, ensure_sees
from capacity.booking.units import availability_event, ensure_manages, lock_unit
from capacity.clock import Clock
from capacity.db.engine import Database
from capacity.errors import Conflict, Invalid, NotFound
from capacity.kinds import ACUTE_KINDS
from capacity.notify.events import Event, record_event

S136_HOURS = 24  # s136(2A) Mental Health Act 1983
# Times a little ahead of the server's clock are accepted (device clocks drift); beyond that, refused.
FUTURE_TOLERANCE = timedelta(minutes=5)


def placement_geography(home: Area, unit: Unit, local_provider_ids: set[str]) -> tuple[bool, float]:
    """Whether a placement is out of area (DHSC 2016), and its distance from the home area's centre."""
    out_of_area = unit.provider_id not in local_provider_ids
    return out_of_area, round(great_circle_km(home.lat, home.lon, unit.lat, unit.lon), 1)


def not_in_future(value: datetime, now: datetime, field: str) -> datetime:
    if value - now > FUTURE_TOLERANCE:
        raise Invalid(f"{field} is in the future", field=field)
    return value


def placement_event(kind: str, placement: Placement, unit: Unit, at: datetime) -> Event:
    return Event(
        type=kind,
        at=at,
        unit_id=unit.id,
        provider_id=unit.provider_id,
        unit_area=unit.area_code,
        home_area=placement.home_area,
        data={
            "placement_id": placement.id,
            "hold_id": placement.hold_id,
            "unit_id": unit.id,
            "legal_basis": placement.legal_basis,
            "started_at": placement.started_at.isoformat(),
            "ended_at": placement.ended_at.isoformat() if placement.ended_at else None,
            "s136_deadline": placement.s136_deadline.isoformat() if placement.s136_deadline else None,
            "person": {"ref": placement.person_ref, "age": placement.person_age, "sex": placement.person_sex},
        },
    )


async def start_placement(
    session: AsyncSession,
    *,
    actor: Actor,
    unit: Unit,
    home: Area,
    person: dict,
    legal_basis: str,
    started_at: datetime,
    s136_clock_started_at: datetime | None,
    oap_reason: str | None,
    hold_id: str | None,
    now: datetime,
) -> Placement:
    """Write a placement on a unit already locked by the caller, with its OAP and s136 facts."""
    out_of_area, distance = placement_geography(home, unit, set(home.local_provider_ids))
    if out_of_area and unit.kind in ACUTE_KINDS and oap_reason is None:
        raise Invalid("an out-of-area placement in an inpatient bed needs an oap_reason (10-14, 99)",
                      field="oap_reason")
    if oap_reason is not None and not out_of_area:
        raise Invalid("oap_reason is only for out-of-area placements", field="oap_reason")
    clock_start = deadline = None
    if legal_basis == "s136":
        # The clock starts on arrival at the first place of safety, which may have been earlier.
        clock_start = s136_clock_started_at or started_at
        if clock_start > started_at:
            raise Invalid("the s136 clock cannot start after arrival here", field="s136_clock_started_at")
        deadline = clock_start + timedelta(hours=S136_HOURS)
    elif s136_clock_started_at is not None:
        raise Invalid("s136_clock_started_at is only for legal_basis s136", field="s136_clock_started_at")
    placement = Placement(
        unit_id=unit.id, hold_id=hold_id, legal_basis=legal_basis, started_at=started_at,
        out_of_area=out_of_area, oap_reason=oap_reason, distance_km=distance, daily_cost=unit.daily_cost,
        created_by=actor.username, s136_clock_started_at=clock_start, s136_deadline=deadline, **person,
    )
    session.add(placement)
    await session.flush()
    audit.record(session, at=now, actor=actor, action="placement.start", object_type="placement",
                 object_id=placement.id, after=placement_snapshot(placement))
    return placement


def placement_snapshot(p: Placement) -> dict:
    keys = ("unit_id", "hold_id", "legal_basis", "started_at", "ended_at", "outcome", "out_of_area", "oap_reason",
            "s136_deadline", "s136_extension_hours", "s136_breached_at", "person_ref", "home_area")
    return {k: (v.isoformat() if isinstance(v := getattr(p, k), datetime) else v) for k in keys}


async def admit(db: Database, clock: Clock, actor: Actor, body: PlacementIn) -> Placement:
    """A bed manager's direct admission: takes a place like a hold does, so it locks and checks first."""

    async def work(session: AsyncSession) -> Placement:
        unit = await lock_unit(session, db, body.unit_id)
        now = clock.now()
        ensure_manages(actor, unit)
        home = await check_person(session, body.person.ref, body.person.home_area)
        await check_unit_takes(session, unit, body.person.age, body.person.sex, body.person.home_area)
        figures = await unit_figures(session, unit.id, now, db.settings)
        if figures.available < 1:
            raise Conflict("no place is free at this unit", field="unit_id")
        started_at = not_in_future(body.started_at or now, now, "started_at")
        placement = await start_placement(
            session, actor=actor, unit=unit, home=home, person=person_columns(body.person),
            legal_basis=body.legal_basis, started_at=started_at,
            s136_clock_started_at=body.s136_clock_started_at, oap_reason=body.oap_reason, hold_id=None, now=now,
        )
        record_event(session, placement_event("placement.started", placement, unit, now))
        record_event(session, availability_event(await unit_figures(session, unit.id, now, db.settings), now))
        return placement

    return await db.write(work)


async def _load_in_scope(session: AsyncSession, actor: Actor, placement_id: str) -> tuple[Placement, Unit]:
    placement = await session.get(Placement, placement_id, populate_existing=True)
    if placement is None:
        raise NotFound(f"no placement with id {placement_id}")
    unit = await session.get(Unit, placement.unit_id)
    ensure_sees(actor, placement.home_area, unit, "placement", placement_id)
    return placement, unit


async def read_placement(db: Database, clock: Clock, actor: Actor, placement_id: str) -> Placement:
    """A placement in the caller's scope; the read of person data is audited."""

    async def work(session: AsyncSession) -> Placement:
        placement, _ = await _load_in_scope(session, actor, placement_id)
        audit.record(session, at=clock.now(), actor=actor, action="placement.read", object_type="placement",
                     object_id=placement.id)
        return placement

    return await db.write(work)


async def list_placements(db: Database, clock: Clock, actor: Actor, active: bool | None) -> list[Placement]:
    async def work(session: AsyncSession) -> list[Placement]:
        stmt = select(Placement, Unit).join(Unit, Unit.id == Placement.unit_id).order_by(Placement.started_at)
        if active is not None:
            stmt = stmt.where(Placement.ended_at.is_(None) if active else Placement.ended_at.is_not(None))
        if actor.role == "bed_manager":
            stmt = stmt.where(Unit.provider_id == actor.provider_id)
        elif actor.role in ("amhp", "conveyance"):
            stmt = stmt.where(Placement.home_area.in_(actor.areas))
        rows = (await session.execute(stmt.limit(1000))).all()
        found = [p for p, _ in rows]
        audit.record(session, at=clock.now(), actor=actor, action="placement.list", object_type="placement",
                     object_id=None, after={"ids": [p.id for p in found]})
        return found

    return await db.write(work)


async def _lock_placement(session: AsyncSession, db: Database, actor: Actor, placement_id: str):
    placement = await session.get(Placement, placement_id)
    if placement is None:
        raise NotFound(f"no placement with id {placement_id}")
    await lock_unit(session, db, placement.unit_id)
    return await _load_in_scope(session, actor, placement_id)


async def discharge(db: Database, clock: Clock, actor: Actor, placement_id: str, body: DischargeIn) -> Placement:
    async def work(session: AsyncSession) -> Placement:
        placement, unit = await _lock_placement(session, db, actor, placement_id)
        now = clock.now()
        ensure_role(actor, "bed_manager", action="discharge")
        ended_at = not_in_future(body.ended_at or now, now, "ended_at")
        if ended_at < placement.started_at:
            raise Invalid("ended_at is before the placement started", field="ended_at")
        before = placement_snapshot(placement)
        values: dict = {"ended_at": ended_at, "outcome": body.outcome}
        if placement.s136_deadline is not None and ended_at > placement.s136_deadline:
            values["s136_breached_at"] = placement.s136_breached_at or placement.s136_deadline
        done = await session.execute(
            update(Placement).where(Placement.id == placement.id, Placement.ended_at.is_(None))
            .values(**values).returning(Placement.id)
        )
        if done.first() is None:
            raise Conflict("the placement has already ended")
        await session.refresh(placement)
        audit.record(session, at=now, actor=actor, action="placement.discharge", object_type="placement",
                     object_id=placement.id, before=before, after=placement_snapshot(placement))
        record_event(session, placement_event("placement.discharged", placement, unit, now))
        record_event(session, availability_event(await unit_figures(session, unit.id, now, db.settings), now))
        return placement

    return await db.write(work)


async def extend_s136(
    db: Database, clock: Clock, actor: Actor, placement_id: str, body: S136ExtensionIn
) -> Placement:
    """Record the one s136B extension of up to 12 hours, authorised before the 24 hours end."""

    async def work(session: AsyncSession) -> Placement:
        placement, unit = await _lock_placement(session, db, actor, placement_id)
        now = clock.now()
        ensure_role(actor, "bed_manager", "amhp", action="record an s136 extension")
        if placement.legal_basis != "s136":
            raise Conflict("only an s136 placement has a clock to extend")
        before = placement_snapshot(placement)
        done = await session.execute(
            update(Placement)
            .where(Placement.id == placement.id, Placement.ended_at.is_(None),
                   Placement.s136_extension_hours.is_(None), Placement.s136_deadline > now)
            .values(s136_deadline=placement.s136_deadline + timedelta(hours=body.hours),
                    s136_extension_hours=body.hours, s136_extension_authorised_by=body.authorised_by,
                    s136_extension_reason=body.reason, s136_extension_recorded_at=now)
            .returning(Placement.id)
        )
        if done.first() is None:
            raise Conflict("an extension may be recorded once, before the deadline, while the person is detained")
        await session.refresh(placement)
        audit.record(session, at=now, actor=actor, action="placement.s136_extension", object_type="placement",
                     object_id=placement.id, before=before, after=placement_snapshot(placement))
        record_event(session, placement_event("s136.extended", placement, unit, now))
        return placement

    return await db.write(work)

