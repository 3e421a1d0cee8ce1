"""Holds: a place reserved for one person for a limited time, that can never double-book.

Every change locks the unit's row first, then reads the clock, then checks, then writes (rule 1), and
every transition is a conditional UPDATE on `status = 'held' AND expires_at > now` (rule 3), so it
happens exactly once however many instances, retries or jobs race for it. A hold past its expiry is
expired at read time, whether or not the sweep has marked it yet (rule 2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import raiseload

from capacity.audit.service import audited_read
from capacity.auth.scope import ensure_role, ensure_sees_person, person_filter
from capacity.auth.security import Actor
from capacity.booking.detentions.episodes import Person, find_open_episode
from capacity.booking.detentions.models import Episode
from capacity.booking.eligibility import (
    HOLD_CHECKS,
    check_hold_eligibility,
    check_person,
    check_takes_detained,
    check_unit_takes,
    ensure_amhp_area,
)
from capacity.booking.holds.models import Conveyance, Hold
from capacity.booking.holds.schemas import ArriveIn, DeclineIn, ExtendIn, HoldIn
from capacity.booking.persons import person_columns
from capacity.booking.placements.models import Placement
from capacity.booking.placements.service import not_in_future, placement_event, start_placement
from capacity.booking.units.availability import UnitFigures, one_unit_figures, unit_figures, unit_figures_with
from capacity.booking.units.models import Unit, UnmetDemand
from capacity.booking.units.service import availability_event
from capacity.codes import Advisory
from capacity.db.base import new_id, table_of
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid, NotFound
from capacity.events import Event, unit_event

# How long before its hold an arrival may be recorded (the person was already there).
ARRIVED_BEFORE_HOLD = timedelta(hours=24)
# The legal basis a placement takes from the purpose of its hold, unless the arrival says otherwise.
LEGAL_BASIS_OF_PURPOSE = {"s136": "s136", "crisis": "informal", "respite": "informal", "admission": "informal"}


_INSERT_HOLD = insert(table_of(Hold))
_HOLD_KEYS = [c.key for c in table_of(Hold).columns]
# A hold's checks of its person and unit, and the unit's figures, read in one statement after the lock.
_FIGURES_AND_CHECKS = one_unit_figures(*HOLD_CHECKS)


def effective_status(hold: Hold, now: datetime) -> str:
    """A hold past its expiry is expired, whether or not the sweep has recorded it yet."""
    return "expired" if hold.status == "held" and hold.expires_at <= now else hold.status


def hold_snapshot(hold: Hold) -> dict:
    return {
        "status": hold.status,
        "expires_at": hold.expires_at.isoformat(),
        "extensions": hold.extensions,
        "extended_minutes": hold.extended_minutes,
        "unit_id": hold.unit_id,
        "person_ref": hold.person_ref,
        "home_area": hold.home_area,
    }


def hold_event(kind: str, hold: Hold, unit: Unit, at: datetime, **extra: object) -> Event:
    person = {"ref": hold.person_ref, "age": hold.person_age, "sex": hold.person_sex, "home_area": hold.home_area}
    data = {
        "hold_id": hold.id,
        "status": hold.status,
        "purpose": hold.purpose,
        "expires_at": hold.expires_at.isoformat(),
        "person": person,
        **extra,
    }
    # A change of holds alone: a read model applies it in place (capacity.booking.units.read_model).
    return unit_event(kind, unit, at, data, home_area=hold.home_area, rereads_unit=False)


def figures_after_holds(figures: UnitFigures, at: datetime) -> Event:
    """The unit's figures after a change of its holds alone, which the hold's own event has said."""
    return msgspec.structs.replace(availability_event(figures, at), rereads_unit=False)


def request_hash(body: HoldIn) -> str:
    return hashlib.sha256(msgspec.json.encode(body)).hexdigest()


@dataclass
class HoldResult:
    hold: Hold
    created: bool
    now: datetime  # the instant the hold was made or found at
    # What the AMHP is warned of: the figures the hold relied on were stale (phone to confirm).
    warnings: list[Advisory] = field(default_factory=list)


async def _by_idempotency_key(session: AsyncSession, actor: Actor, key: str, digest: str) -> Hold | None:
    hold = await session.scalar(select(Hold).where(Hold.created_by == actor.username, Hold.idempotency_key == key))
    if hold is not None and hold.request_hash != digest:
        raise Invalid("this Idempotency-Key was used with a different request", field="Idempotency-Key")
    return hold


async def create_hold(db: Database, actor: Actor, body: HoldIn, idempotency_key: str | None = None) -> HoldResult:
    """Hold one place for one person; 409 (recorded as unmet demand) when none is free."""
    ensure_role(actor, "amhp", action="place a hold")
    ensure_amhp_area(actor, body.person.home_area)
    digest = request_hash(body)

    async def work(uow: UnitOfWork) -> HoldResult | None:
        # A hold needs none of the unit's local areas (only a placement decides out of area).
        unit = await uow.lock_unit(body.unit_id, raiseload(Unit.local_areas))
        now, session = uow.now, uow.session
        if idempotency_key and (earlier := await _by_idempotency_key(session, actor, idempotency_key, digest)):
            return HoldResult(earlier, created=False, now=now)
        person = body.person
        before, checked = await unit_figures_with(uow, unit, _FIGURES_AND_CHECKS, home_area=person.home_area)
        check_hold_eligibility(unit, person.ref, person.age, person.sex, person.home_area, checked)
        check_takes_detained(unit, body.purpose, "purpose")
        if body.detention_id is not None:
            await find_open_episode(session, body.detention_id, Person(person.ref, person.home_area))
        if before.available < 1:
            session.add(
                UnmetDemand(at=now, source="hold", kind=unit.kind, home_area=body.person.home_area, unit_id=unit.id)
            )
            return None  # committed, so the unmet demand is kept; the caller answers 409
        hold = Hold(
            id=new_id(),
            unit_id=unit.id,
            purpose=body.purpose,
            created_by=actor.username,
            created_at=now,
            expires_at=now + timedelta(seconds=db.settings.hold_seconds[unit.kind]),
            risk_flags=list(body.risk_flags),
            note=body.note,
            detention_id=body.detention_id,
            idempotency_key=idempotency_key,
            request_hash=digest,
            status="held",
            extensions=0,
            extended_minutes=0,
            ended_at=None,
            ended_by=None,
            decline_reason=None,
            decline_note=None,
            **person_columns(body.person),
        )
        # A Core insert: the Hold object is only the value answered and announced; no ORM unit of work.
        await session.execute(_INSERT_HOLD, {c: getattr(hold, c) for c in _HOLD_KEYS})
        uow.audit(actor, "hold.create", "hold", hold.id, after=hold_snapshot(hold))
        uow.emit(hold_event("hold.created", hold, unit, now))
        uow.emit(figures_after_holds(before.with_one_more_hold(), now))
        return HoldResult(hold, created=True, now=now, warnings=before.advisories)

    try:
        result = await db.write(work)
    except IntegrityError:
        if not idempotency_key:
            raise
        # The same key raced in on another unit's lock: answer as the winner was answered.
        async with db.read() as reading:
            earlier = await _by_idempotency_key(reading.session, actor, idempotency_key, digest)
        if earlier is None:
            raise
        return HoldResult(earlier, created=False, now=reading.now)
    if result is None:
        raise Conflict("no place is free at this unit", field="unit_id")
    return result


async def lock_hold(uow: UnitOfWork, actor: Actor, hold_id: str) -> tuple[Hold, Unit]:
    """Lock the hold's unit, then read the hold afresh under that lock, within the caller's scope."""
    hold, unit = await uow.lock_unit_of(Hold, hold_id, "hold")
    ensure_sees_person(
        actor, "hold", hold_id, home_area=hold.home_area, provider_id=unit.provider_id, unit_area=unit.area_code
    )
    return hold, unit


async def _transition(uow: UnitOfWork, hold: Hold, **values: object) -> None:
    """Apply a change to a live hold exactly once; 409 if it is no longer `held`."""
    done = await uow.session.execute(
        update(Hold)
        .where(Hold.id == hold.id, Hold.status == "held", Hold.expires_at > uow.now)
        .values(**values)
        .returning(Hold.id)
    )
    if done.first() is None:
        raise Conflict(f"the hold is {effective_status(hold, uow.now)}, no longer held")
    await uow.session.refresh(hold)


Change = Callable[[UnitOfWork, Hold, Unit], Awaitable[str]]


async def _change(db: Database, actor: Actor, hold_id: str, action: str, apply: Change) -> Hold:
    """The shape every hold action shares: lock, check scope and rules, change, audit, announce."""

    async def work(uow: UnitOfWork) -> Hold:
        hold, unit = await lock_hold(uow, actor, hold_id)
        before = hold_snapshot(hold)
        event_type = await apply(uow, hold, unit)
        uow.audit(actor, action, "hold", hold.id, before=before, after=hold_snapshot(hold))
        uow.emit(hold_event(event_type, hold, unit, uow.now))
        uow.emit(figures_after_holds(await unit_figures(uow, unit), uow.now))
        return hold

    return await db.write(work)


async def extend_hold(db: Database, actor: Actor, hold_id: str, body: ExtendIn) -> Hold:
    settings = db.settings

    async def apply(uow: UnitOfWork, hold: Hold, unit: Unit) -> str:
        ensure_role(actor, "amhp", action="extend a hold")
        if effective_status(hold, uow.now) == "held":
            if hold.extensions >= settings.max_hold_extensions:
                raise Invalid(f"a hold may be extended at most {settings.max_hold_extensions} times", field="minutes")
            if hold.extended_minutes + body.minutes > settings.max_hold_extension_minutes:
                left = settings.max_hold_extension_minutes - hold.extended_minutes
                raise Invalid(
                    f"extensions may add at most {settings.max_hold_extension_minutes} minutes in all; {left} remain",
                    field="minutes",
                )
        await _transition(
            uow,
            hold,
            expires_at=hold.expires_at + timedelta(minutes=body.minutes),
            extensions=hold.extensions + 1,
            extended_minutes=hold.extended_minutes + body.minutes,
        )
        return "hold.extended"

    return await _change(db, actor, hold_id, "hold.extend", apply)


async def release_hold(db: Database, actor: Actor, hold_id: str) -> Hold:
    async def apply(uow: UnitOfWork, hold: Hold, unit: Unit) -> str:
        ensure_role(actor, "amhp", action="release a hold")
        await _transition(uow, hold, status="released", ended_at=uow.now, ended_by=actor.username)
        return "hold.released"

    return await _change(db, actor, hold_id, "hold.release", apply)


async def decline_hold(db: Database, actor: Actor, hold_id: str, body: DeclineIn) -> Hold:
    async def apply(uow: UnitOfWork, hold: Hold, unit: Unit) -> str:
        ensure_role(actor, "bed_manager", action="decline a hold")
        await _transition(
            uow,
            hold,
            status="declined",
            ended_at=uow.now,
            ended_by=actor.username,
            decline_reason=body.reason,
            decline_note=body.note,
        )
        return "hold.declined"

    return await _change(db, actor, hold_id, "hold.decline", apply)


async def arrive(db: Database, actor: Actor, hold_id: str, body: ArriveIn) -> Placement:
    """The person has arrived: the hold ends and a placement starts, in one transaction."""

    async def work(uow: UnitOfWork) -> Placement:
        hold, unit = await lock_hold(uow, actor, hold_id)
        now, session = uow.now, uow.session
        ensure_role(actor, "amhp", "bed_manager", action="record an arrival")
        before = hold_snapshot(hold)
        arrived_at = not_in_future(body.arrived_at or now, now, "arrived_at")
        # The person may already have been there when the hold was made; not a day before, which is a typo.
        if arrived_at < hold.created_at - ARRIVED_BEFORE_HOLD:
            raise Invalid("arrived_at is more than a day before the hold was placed", field="arrived_at")
        detention_id = body.detention_id or hold.detention_id
        if body.detention_id and hold.detention_id and body.detention_id != hold.detention_id:
            raise Invalid("the hold was made for another detention", field="detention_id")
        # Eligibility again: the unit may have changed since the hold, and no under-18 is ever placed
        # where the age range excludes them. A unit closed since the hold still takes its held person.
        legal_basis = (
            body.legal_basis or await _continued_basis(session, detention_id) or (LEGAL_BASIS_OF_PURPOSE[hold.purpose])
        )
        if unit.status == "open":
            await check_unit_takes(session, unit, hold.person_age, hold.person_sex, hold.home_area)
        check_takes_detained(unit, legal_basis, "legal_basis")
        home = await check_person(session, hold.person_ref, hold.home_area)
        await _transition(uow, hold, status="arrived", ended_at=arrived_at, ended_by=actor.username)
        person = {
            k: getattr(hold, k) for k in ("person_ref", "person_age", "person_sex", "person_ethnicity", "home_area")
        }
        placement = await start_placement(
            uow,
            actor=actor,
            unit=unit,
            home=home,
            person=person,
            legal_basis=legal_basis,
            started_at=arrived_at,
            s136_clock_started_at=body.s136_clock_started_at,
            detention_id=detention_id,
            oap_reason=body.oap_reason,
            hold_id=hold.id,
        )
        uow.audit(actor, "hold.arrive", "hold", hold.id, before=before, after=hold_snapshot(hold))
        uow.emit(hold_event("hold.arrived", hold, unit, now, placement_id=placement.id))
        uow.emit(placement_event("placement.started", placement, unit, now))
        uow.emit(availability_event(await unit_figures(uow, unit), now))
        return placement

    return await db.write(work)


async def _continued_basis(session: AsyncSession, detention_id: str | None) -> str | None:
    """The legal basis of the detention an arrival continues: an s135 episode goes on under s135."""
    if detention_id is None:
        return None
    return await session.scalar(select(Episode.legal_basis).where(Episode.id == detention_id))


@dataclass
class HoldView:
    hold: Hold
    status: str
    placement_id: str | None
    conveyance: Conveyance | None


async def _views(session: AsyncSession, holds: list[Hold], now: datetime) -> list[HoldView]:
    ids = [h.id for h in holds]
    placements = (
        dict((await session.execute(select(Placement.hold_id, Placement.id).where(Placement.hold_id.in_(ids)))).all())
        if ids
        else {}
    )
    conveyances = (
        {c.hold_id: c for c in (await session.scalars(select(Conveyance).where(Conveyance.hold_id.in_(ids)))).all()}
        if ids
        else {}
    )
    return [HoldView(h, effective_status(h, now), placements.get(h.id), conveyances.get(h.id)) for h in holds]


async def read_hold(db: Database, actor: Actor, hold_id: str) -> tuple[HoldView, datetime]:
    """One hold in the caller's scope, and the instant it was read at; the read of person data is audited."""
    async with db.read() as reading:
        row = (
            await reading.session.execute(
                select(Hold, Unit.provider_id, Unit.area_code)
                .join(Unit, Unit.id == Hold.unit_id)
                .where(Hold.id == hold_id)
            )
        ).one_or_none()
        if row is None:
            raise NotFound(f"no hold with id {hold_id}")
        hold, provider_id, unit_area = row
        ensure_sees_person(
            actor, "hold", hold_id, home_area=hold.home_area, provider_id=provider_id, unit_area=unit_area
        )
        view = (await _views(reading.session, [hold], reading.now))[0]
    await audited_read(db, actor, action="hold.read", object_type="hold", object_id=hold.id)
    return view, reading.now


async def list_holds(db: Database, actor: Actor, status: str | None) -> tuple[list[HoldView], datetime]:
    """The caller's holds, newest first; `status` is the effective status (expiry exact at read time)."""
    async with db.read() as reading:
        now = reading.now
        stmt = (
            select(Hold)
            .join(Unit, Unit.id == Hold.unit_id)
            .where(
                person_filter(actor, home_area=Hold.home_area, provider_id=Unit.provider_id, unit_area=Unit.area_code)
            )
            .order_by(Hold.created_at.desc())
            .limit(500)
        )
        if status == "held":
            stmt = stmt.where(Hold.status == "held", Hold.expires_at > now)
        elif status == "expired":
            stmt = stmt.where((Hold.status == "expired") | ((Hold.status == "held") & (Hold.expires_at <= now)))
        elif status is not None:
            stmt = stmt.where(Hold.status == status)
        holds = list((await reading.session.scalars(stmt)).all())
        views = await _views(reading.session, holds, now)
    await audited_read(
        db, actor, action="hold.list", object_type="hold", object_id=None, after={"ids": [h.id for h in holds]}
    )
    return views, now
