"""Placements: a person staying at a unit, from arrival or direct admission to discharge; the s136 clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from capacity.audit.service import audited_read
from capacity.auth.scope import ensure_role, ensure_sees_person, person_filter
from capacity.auth.security import Actor
from capacity.booking.eligibility import check_person, check_takes_detained, check_unit_takes
from capacity.booking.persons import person_columns
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import DischargeIn, PlacementIn, PlacementPatch, S136ExtensionIn
from capacity.booking.units.availability import great_circle_km, is_out_of_area, unit_figures
from capacity.booking.units.models import Area, Unit
from capacity.booking.units.service import availability_event, ensure_manages
from capacity.codes import ACUTE_KINDS
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid, NotFound
from capacity.events import Event, unit_event

S136_HOURS = 24  # s136(2A) Mental Health Act 1983
# Times a little ahead of the server's clock are accepted (device clocks drift); beyond that, refused.
FUTURE_TOLERANCE = timedelta(minutes=5)


def placement_geography(home: Area, unit: Unit) -> tuple[bool, float]:
    """Whether a placement is out of area (DHSC 2016: the unit is not in the home area's local network,
    decided per unit by `is_out_of_area`), and its distance from the home area's centre."""
    out_of_area = is_out_of_area(home.code, unit.local_to_areas)
    return out_of_area, round(great_circle_km(home.lat, home.lon, unit.lat, unit.lon), 1)


def oap_reason_problem(out_of_area: bool, kind: str, oap_reason: str | None) -> str | None:
    """What is wrong with a placement's oap_reason, if anything: an out-of-area inpatient placement needs
    a reason (10-14, 99); a placement that is not out of area takes none. The importer applies it too."""
    if out_of_area and kind in ACUTE_KINDS and oap_reason is None:
        return "an out-of-area placement in an inpatient bed needs an oap_reason (10-14, 99)"
    if oap_reason is not None and not out_of_area:
        return "oap_reason is only for out-of-area placements"
    return None


def not_in_future(value: datetime, now: datetime, field: str) -> datetime:
    if value - now > FUTURE_TOLERANCE:
        raise Invalid(f"{field} is in the future", field=field)
    return value


def placement_event(kind: str, placement: Placement, unit: Unit, at: datetime) -> Event:
    data = {
        "placement_id": placement.id,
        "hold_id": placement.hold_id,
        "legal_basis": placement.legal_basis,
        "started_at": placement.started_at.isoformat(),
        "ended_at": placement.ended_at.isoformat() if placement.ended_at else None,
        "s136_deadline": placement.s136_deadline.isoformat() if placement.s136_deadline else None,
        "person": {"ref": placement.person_ref, "age": placement.person_age, "sex": placement.person_sex},
    }
    return unit_event(kind, unit, at, data, home_area=placement.home_area)


async def start_placement(
    uow: UnitOfWork,
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
) -> Placement:
    """Write a placement on a unit already locked by the caller, with its OAP and s136 facts."""
    out_of_area, distance = placement_geography(home, unit)
    if (problem := oap_reason_problem(out_of_area, unit.kind, oap_reason)) is not None:
        raise Invalid(problem, field="oap_reason")
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
        unit_id=unit.id,
        hold_id=hold_id,
        legal_basis=legal_basis,
        started_at=started_at,
        out_of_area=out_of_area,
        oap_reason=oap_reason,
        distance_km=distance,
        daily_cost=unit.daily_cost,
        created_by=actor.username,
        s136_clock_started_at=clock_start,
        s136_deadline=deadline,
        **person,
    )
    uow.session.add(placement)
    await uow.session.flush()
    uow.audit(
        actor=actor,
        action="placement.start",
        object_type="placement",
        object_id=placement.id,
        after=placement_snapshot(placement),
    )
    return placement


def placement_snapshot(p: Placement) -> dict:
    keys = (
        "unit_id",
        "hold_id",
        "legal_basis",
        "started_at",
        "ended_at",
        "outcome",
        "out_of_area",
        "oap_reason",
        "s136_deadline",
        "s136_extension_hours",
        "s136_breached_at",
        "person_ref",
        "home_area",
    )
    return {k: (v.isoformat() if isinstance(v := getattr(p, k), datetime) else v) for k in keys}


async def admit(db: Database, actor: Actor, body: PlacementIn) -> Placement:
    """A bed manager's direct admission: takes a place like a hold does, so it locks and checks first."""

    async def work(uow: UnitOfWork) -> Placement:
        unit = await uow.lock_unit(body.unit_id)
        now, session = uow.now, uow.session
        ensure_manages(actor, unit)
        home = await check_person(session, body.person.ref, body.person.home_area)
        await check_unit_takes(session, unit, body.person.age, body.person.sex, body.person.home_area)
        check_takes_detained(unit, body.legal_basis, "legal_basis")
        if (await unit_figures(uow, unit)).available < 1:
            raise Conflict("no place is free at this unit", field="unit_id")
        started_at = not_in_future(body.started_at or now, now, "started_at")
        placement = await start_placement(
            uow,
            actor=actor,
            unit=unit,
            home=home,
            person=person_columns(body.person),
            legal_basis=body.legal_basis,
            started_at=started_at,
            s136_clock_started_at=body.s136_clock_started_at,
            oap_reason=body.oap_reason,
            hold_id=None,
        )
        uow.emit(placement_event("placement.started", placement, unit, now))
        uow.emit(availability_event(await unit_figures(uow, unit), now))
        return placement

    return await db.write(work)


def _ensure_sees(actor: Actor, placement: Placement, unit: Unit) -> None:
    ensure_sees_person(
        actor,
        "placement",
        placement.id,
        home_area=placement.home_area,
        provider_id=unit.provider_id,
        unit_area=unit.area_code,
    )


async def read_placement(db: Database, actor: Actor, placement_id: str) -> Placement:
    """A placement in the caller's scope; the read of person data is audited."""
    async with db.read() as reading:
        row = (
            await reading.session.execute(
                select(Placement, Unit).join(Unit, Unit.id == Placement.unit_id).where(Placement.id == placement_id)
            )
        ).one_or_none()
    if row is None:
        raise NotFound(f"no placement with id {placement_id}")
    placement, unit = row
    _ensure_sees(actor, placement, unit)
    await audited_read(db, actor, action="placement.read", object_type="placement", object_id=placement.id)
    return placement


async def list_placements(db: Database, actor: Actor, active: bool | None) -> list[Placement]:
    async with db.read() as reading:
        stmt = (
            select(Placement)
            .join(Unit, Unit.id == Placement.unit_id)
            .where(
                person_filter(
                    actor, home_area=Placement.home_area, provider_id=Unit.provider_id, unit_area=Unit.area_code
                )
            )
            .order_by(Placement.started_at)
        )
        if active is not None:
            stmt = stmt.where(Placement.ended_at.is_(None) if active else Placement.ended_at.is_not(None))
        found = list((await reading.session.scalars(stmt.limit(1000))).all())
    await audited_read(
        db,
        actor,
        action="placement.list",
        object_type="placement",
        object_id=None,
        after={"ids": [p.id for p in found]},
    )
    return found


async def _lock_placement(uow: UnitOfWork, actor: Actor, placement_id: str) -> tuple[Placement, Unit]:
    """Lock the placement's unit, then read the placement afresh under that lock, within scope."""
    placement, unit = await uow.lock_unit_of(Placement, placement_id, "placement")
    _ensure_sees(actor, placement, unit)
    return placement, unit


async def correct(db: Database, actor: Actor, placement_id: str, body: PlacementPatch) -> Placement:
    """Correct a placement's recorded facts (its oap_reason) under the same rule as when it started."""

    async def work(uow: UnitOfWork) -> Placement:
        placement, unit = await _lock_placement(uow, actor, placement_id)
        ensure_manages(actor, unit)
        if (problem := oap_reason_problem(placement.out_of_area, unit.kind, body.oap_reason)) is not None:
            raise Invalid(problem, field="oap_reason")
        before = placement_snapshot(placement)
        placement.oap_reason = body.oap_reason
        await uow.session.flush()
        uow.audit(
            actor=actor,
            action="placement.correct",
            object_type="placement",
            object_id=placement.id,
            before=before,
            after=placement_snapshot(placement),
        )
        return placement

    return await db.write(work)


async def discharge(db: Database, actor: Actor, placement_id: str, body: DischargeIn) -> Placement:
    async def work(uow: UnitOfWork) -> Placement:
        placement, unit = await _lock_placement(uow, actor, placement_id)
        now = uow.now
        ensure_role(actor, "bed_manager", action="discharge")
        ended_at = not_in_future(body.ended_at or now, now, "ended_at")
        if ended_at < placement.started_at:
            raise Invalid("ended_at is before the placement started", field="ended_at")
        before = placement_snapshot(placement)
        values: dict = {"ended_at": ended_at, "outcome": body.outcome}
        if placement.s136_deadline is not None and ended_at > placement.s136_deadline:
            values["s136_breached_at"] = placement.s136_breached_at or placement.s136_deadline
        done = await uow.session.execute(
            update(Placement)
            .where(Placement.id == placement.id, Placement.ended_at.is_(None))
            .values(**values)
            .returning(Placement.id)
        )
        if done.first() is None:
            raise Conflict("the placement has already ended")
        await uow.session.refresh(placement)
        uow.audit(
            actor=actor,
            action="placement.discharge",
            object_type="placement",
            object_id=placement.id,
            before=before,
            after=placement_snapshot(placement),
        )
        uow.emit(placement_event("placement.discharged", placement, unit, now))
        uow.emit(availability_event(await unit_figures(uow, unit), now))
        return placement

    return await db.write(work)


async def extend_s136(db: Database, actor: Actor, placement_id: str, body: S136ExtensionIn) -> Placement:
    """Record the one s136B extension of up to 12 hours, authorised before the 24 hours end."""

    async def work(uow: UnitOfWork) -> Placement:
        placement, unit = await _lock_placement(uow, actor, placement_id)
        now = uow.now
        ensure_role(actor, "bed_manager", "amhp", action="record an s136 extension")
        if placement.legal_basis != "s136" or placement.s136_deadline is None:
            raise Conflict("only an s136 placement has a clock to extend")
        before = placement_snapshot(placement)
        done = await uow.session.execute(
            update(Placement)
            .where(
                Placement.id == placement.id,
                Placement.ended_at.is_(None),
                Placement.s136_extension_hours.is_(None),
                Placement.s136_deadline > now,
            )
            .values(
                s136_deadline=placement.s136_deadline + timedelta(hours=body.hours),
                s136_extension_hours=body.hours,
                s136_extension_authorised_by=body.authorised_by,
                s136_extension_reason=body.reason,
                s136_extension_recorded_at=now,
            )
            .returning(Placement.id)
        )
        if done.first() is None:
            raise Conflict("an extension may be recorded once, before the deadline, while the person is detained")
        await uow.session.refresh(placement)
        uow.audit(
            actor=actor,
            action="placement.s136_extension",
            object_type="placement",
            object_id=placement.id,
            before=before,
            after=placement_snapshot(placement),
        )
        uow.emit(placement_event("s136.extended", placement, unit, now))
        return placement

    return await db.write(work)
