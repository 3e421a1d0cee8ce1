"""Placements: a person staying at a unit, from arrival or direct admission to discharge; the s136 clock."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from capacity.audit.service import audited_read
from capacity.auth.scope import ensure_role, ensure_sees_person, person_filter
from capacity.auth.security import Actor
from capacity.booking.detentions.episodes import (
    DETENTION_BASES,
    Person,
    check_transfer_outcome,
    continue_episode,
    current_legs,
    detention_event,
    end_leg,
    extend,
    leg_start,
    open_episode,
)
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.detentions.schemas import ExtensionIn
from capacity.booking.eligibility import check_age_exception, check_person, check_takes_detained, check_unit_takes
from capacity.booking.person_reads import audited_list
from capacity.booking.persons import person_columns
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import DischargeIn, PlacementIn, PlacementPatch
from capacity.booking.units.availability import great_circle_km, is_out_of_area, unit_figures
from capacity.booking.units.models import Area, Unit
from capacity.booking.units.service import availability_event, ensure_manages
from capacity.codes import ACUTE_KINDS, Advisory
from capacity.db.base import new_id
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid, NotFound
from capacity.events import Event, unit_event

# Times a little ahead of the server's clock are accepted (device clocks drift); beyond that, refused.
FUTURE_TOLERANCE = timedelta(minutes=5)


def placement_geography(home: Area, unit: Unit) -> tuple[bool, float]:
    """Whether a placement is out of area (DHSC 2016: the unit is not in the home area's local network,
    decided per unit by `is_out_of_area`), and its distance from the home area's centre."""
    out_of_area = is_out_of_area(home.code, unit.local_to_areas)
    return out_of_area, round(great_circle_km(home.lat, home.lon, unit.lat, unit.lon), 1)


def site_columns(home: Area, unit: Unit) -> dict:
    """A placement's columns that follow from where it is: out of area or not, the distance from home
    (`placement_geography`) and the unit's daily cost."""
    out_of_area, distance = placement_geography(home, unit)
    return {"out_of_area": out_of_area, "distance_km": distance, "daily_cost": unit.daily_cost}


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


async def close_leg(
    uow: UnitOfWork, leg: Placement | S136Detention, *, outcome: str, ended_at: datetime | None
) -> datetime:
    """The person leaves the place of this leg (a placement, a detention elsewhere) at `ended_at`, now if
    not given: end the leg with a conditional UPDATE (a second end racing the first finds it done), then
    its episode as `end_leg` says, if it is a leg of one. Returns when it ended."""
    at_unit = isinstance(leg, Placement)
    ended_at = not_in_future(ended_at or uow.now, uow.now, "ended_at")
    if ended_at < leg_start(leg):
        arrived = "the placement started" if at_unit else "detained_at"
        raise Invalid(f"ended_at is before {arrived}", field="ended_at")
    model = type(leg)
    done = await uow.session.execute(
        update(model)
        .where(model.id == leg.id, model.ended_at.is_(None))
        .values(ended_at=ended_at, outcome=outcome)
        .returning(model.id)
    )
    if done.first() is None:
        raise Conflict(f"the {'placement' if at_unit else 'detention'} has already ended")
    if leg.episode is not None:
        await end_leg(uow, leg.episode, outcome=outcome, ended_at=ended_at)
    await uow.session.refresh(leg)
    return ended_at


def placement_event(kind: str, placement: Placement, unit: Unit, at: datetime) -> Event:
    data = {
        "placement_id": placement.id,
        "hold_id": placement.hold_id,
        "legal_basis": placement.legal_basis,
        "started_at": placement.started_at.isoformat(),
        "ended_at": placement.ended_at.isoformat() if placement.ended_at else None,
        "detention_id": placement.detention_id,
        "s136_deadline": placement.episode.deadline.isoformat() if placement.episode else None,
        "person": {"ref": placement.person_ref, "age": placement.person_age, "sex": placement.person_sex},
    }
    return unit_event(kind, unit, at, data, home_area=placement.home_area)


async def leg_events(uow: UnitOfWork, kind: str, episodes: list[Episode]) -> list[Event]:
    """One event of `kind` per episode, about the leg its person is at (or last was at): at a unit it is
    heard as the placement's events are, elsewhere as the detention's."""
    legs = await current_legs(uow.session, episodes)
    unit_ids = {leg.unit_id for leg in legs.values() if isinstance(leg, Placement)}
    units = {u.id: u for u in (await uow.session.scalars(select(Unit).where(Unit.id.in_(unit_ids)))).all()}
    return [
        placement_event(kind, leg, units[leg.unit_id], uow.now)
        if isinstance(leg := legs[e.id], Placement)
        else detention_event(kind, leg, uow.now)
        for e in episodes
    ]


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
    detention_id: str | None,
    oap_reason: str | None,
    hold_id: str | None,
    age_exception_reason: str | None = None,
) -> Placement:
    """Write a placement on a unit already locked by the caller, with its OAP facts and, under s135/s136,
    its episode: continued when `detention_id` names one, else opened with the clock starting here."""
    site = site_columns(home, unit)
    if (problem := oap_reason_problem(site["out_of_area"], unit.kind, oap_reason)) is not None:
        raise Invalid(problem, field="oap_reason")
    placement = Placement(
        id=new_id(),
        unit_id=unit.id,
        hold_id=hold_id,
        legal_basis=legal_basis,
        started_at=started_at,
        oap_reason=oap_reason,
        **site,
        created_by=actor.username,
        age_exception_reason=age_exception_reason,
        **person,
    )
    placement.episode = await _episode_for(
        uow, placement, detention_id=detention_id, s136_clock_started_at=s136_clock_started_at
    )
    uow.session.add(placement)
    await uow.session.flush()
    _audit(uow, actor, "placement.start", placement)
    return placement


async def _episode_for(
    uow: UnitOfWork, placement: Placement, *, detention_id: str | None, s136_clock_started_at: datetime | None
) -> Episode | None:
    if placement.legal_basis not in DETENTION_BASES:
        if detention_id is not None:
            raise Invalid(
                "detention_id continues an s135 or s136 detention: legal_basis must be one", field="legal_basis"
            )
        if s136_clock_started_at is not None:
            raise Invalid("s136_clock_started_at is only for legal_basis s136 or s135", field="s136_clock_started_at")
        return None
    if detention_id is not None:
        if s136_clock_started_at is not None:
            raise Invalid(
                "the clock is the detention's and never restarts: leave s136_clock_started_at out",
                field="s136_clock_started_at",
            )
        return await continue_episode(
            uow,
            detention_id=detention_id,
            person=Person(placement.person_ref, placement.home_area),
            legal_basis=placement.legal_basis,
            arrived_at=placement.started_at,
        )
    # The clock starts on arrival at the first place of safety, which may have been earlier.
    clock_start = s136_clock_started_at or placement.started_at
    if clock_start > placement.started_at:
        raise Invalid("the s136 clock cannot start after arrival here", field="s136_clock_started_at")
    return open_episode(uow, first_leg_id=placement.id, legal_basis=placement.legal_basis, clock_started_at=clock_start)


def placement_snapshot(p: Placement) -> dict:
    keys = (
        "unit_id",
        "hold_id",
        "detention_id",
        "legal_basis",
        "started_at",
        "ended_at",
        "outcome",
        "out_of_area",
        "oap_reason",
        "person_ref",
        "home_area",
    )
    return {k: (v.isoformat() if isinstance(v := getattr(p, k), datetime) else v) for k in keys}


def _audit(uow: UnitOfWork, actor: Actor, action: str, placement: Placement, before: dict | None = None) -> None:
    """A change to a placement, audited with what it was (`before`) and what it is now."""
    after = placement_snapshot(placement)
    uow.audit(actor, action, "placement", placement.id, before=before, after=after)


async def admit(db: Database, actor: Actor, body: PlacementIn) -> tuple[Placement, list[Advisory]]:
    """A bed manager's direct admission: takes a place like a hold does, so it locks and checks first.
    What happened is recorded even where the rules say it should not have: an admission to a full unit
    (acknowledged with `over_capacity`, then warned of) and the emergency admission of a 16- or
    17-year-old to an adult ward (with its `age_exception_reason`)."""

    async def work(uow: UnitOfWork) -> tuple[Placement, list[Advisory]]:
        unit = await uow.lock_unit(body.unit_id)
        now, session = uow.now, uow.session
        ensure_manages(actor, unit)
        home = await check_person(session, body.person.ref, body.person.home_area)
        age_exception = check_age_exception(unit, body.person.age, body.age_exception_reason)
        await check_unit_takes(
            session, unit, body.person.age, body.person.sex, body.person.home_area, age_exception=age_exception
        )
        check_takes_detained(unit, body.legal_basis, "legal_basis")
        if (await unit_figures(uow, unit)).available < 1 and not body.over_capacity:
            raise Conflict(
                "no place is free at this unit; if the person has been admitted all the same, record it with "
                "over_capacity true",
                field="unit_id",
            )
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
            detention_id=body.detention_id,
            oap_reason=body.oap_reason,
            hold_id=None,
            age_exception_reason=body.age_exception_reason,
        )
        after = await unit_figures(uow, unit)
        uow.emit(placement_event("placement.started", placement, unit, now))
        uow.emit(availability_event(after, now))
        if Advisory.OVER_OCCUPIED in after.advisories:
            data = {"name": unit.name, "open_places": unit.open_places, "occupied": after.occupied}
            uow.emit(unit_event("unit.over_occupied", unit, now, data))
        return placement, after.advisories

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
    await audited_list(db, actor, "placement", found)
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
        _audit(uow, actor, "placement.correct", placement, before)
        return placement

    return await db.write(work)


async def discharge(db: Database, actor: Actor, placement_id: str, body: DischargeIn) -> Placement:
    """The person leaves the unit. Under s135/s136 the episode ends with the placement's outcome, or
    goes on when the outcome is `transferred` (the person is on the way to another place of safety)."""

    async def work(uow: UnitOfWork) -> Placement:
        placement, unit = await _lock_placement(uow, actor, placement_id)
        now = uow.now
        ensure_role(actor, "bed_manager", action="discharge")
        check_transfer_outcome(body.outcome, placement.detention_id)
        before = placement_snapshot(placement)
        await close_leg(uow, placement, outcome=body.outcome, ended_at=body.ended_at)
        _audit(uow, actor, "placement.discharge", placement, before)
        uow.emit(placement_event("placement.discharged", placement, unit, now))
        uow.emit(availability_event(await unit_figures(uow, unit), now))
        return placement

    return await db.write(work)


async def extend_s136(db: Database, actor: Actor, placement_id: str, body: ExtensionIn) -> Placement:
    """Record the episode's one extension where the person is placed now."""

    async def work(uow: UnitOfWork) -> Placement:
        placement, unit = await _lock_placement(uow, actor, placement_id)
        ensure_role(actor, "bed_manager", "amhp", action="record an s136 extension")
        if placement.episode is None:
            raise Conflict("only an s135 or s136 placement has a clock to extend")
        if placement.ended_at is not None:
            raise Conflict("the person is no longer at this unit: record the extension where they are now")
        await extend(uow, actor, placement.episode, body)
        uow.emit(placement_event("s136.extended", placement, unit, uow.now))
        return placement

    return await db.write(work)
