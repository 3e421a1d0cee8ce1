"""s135/s136 detentions at places of safety that are not bookable units (emergency departments,
police stations, elsewhere): each a leg of an episode (`episodes`), so that the clock is kept wherever
the person is and the s136 report counts every detention.

s136A: a police station is never a place of safety for a person under 18 (when it happens all the same,
it is recorded only as the never event it is, acknowledged with a note, and alerted to admins); for an
adult only when every criterion of the Places of Safety Regulations 2017 holds and an inspector or above
has authorised it.
"""

from __future__ import annotations

from sqlalchemy import select

from capacity.audit.service import audited_read
from capacity.auth.scope import ensure_role, ensure_sees_person, person_filter
from capacity.auth.security import Actor
from capacity.booking.detentions.episodes import (
    TRANSFERRED,
    Person,
    continue_episode,
    detention_event,
    end_leg,
    extend,
    open_episode,
)
from capacity.booking.detentions.models import AS_RECORDED, S136Detention
from capacity.booking.detentions.schemas import POLICE_STATION_CRITERIA, DetentionEndIn, DetentionIn, ExtensionIn
from capacity.booking.eligibility import check_person, ensure_amhp_area
from capacity.booking.person_reads import audited_list
from capacity.booking.persons import person_columns
from capacity.booking.placements.service import close_leg, not_in_future
from capacity.db.base import new_id
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Invalid, NotFound


def _check(body: DetentionIn) -> None:
    never_event = body.place_type == "police_station" and body.person.age < 18
    if never_event and not body.never_event_acknowledged:
        raise Invalid(
            "s136A: a police station may never be a place of safety for a person under 18; if it has happened, "
            "record it as a never event (never_event_acknowledged true, with a note)",
            field="place_type",
        )
    if never_event and not body.note:
        raise Invalid("a never event is recorded with a note of what happened", field="note")
    if body.never_event_acknowledged and not never_event:
        raise Invalid("only an under-18 in a police station is a never event", field="never_event_acknowledged")
    if body.place_type == "police_station" and not never_event:
        missing = [c for c in POLICE_STATION_CRITERIA if c not in body.police_station_criteria]
        if missing:
            raise Invalid(
                f"an adult may be kept in a police station only if all the Places of Safety "
                f"Regulations 2017 criteria hold; missing: {', '.join(missing)}",
                field="police_station_criteria",
            )
        if not body.authorising_inspector:
            raise Invalid(
                "a police station needs the authorising officer (inspector or above)", field="authorising_inspector"
            )
    elif body.place_type != "police_station" and (body.police_station_criteria or body.authorising_inspector):
        raise Invalid("police station criteria are only for a police station", field="police_station_criteria")
    if body.conveyance_mode == "police_vehicle" and body.police_vehicle_reason is None:
        raise Invalid("a police vehicle should not be used; say why one was", field="police_vehicle_reason")
    if body.outcome == TRANSFERRED:
        raise Invalid("a transfer is recorded by the next place naming this detention_id", field="outcome")
    if body.ended_at is not None and body.outcome is None:
        raise Invalid("an ended detention needs its outcome", field="outcome")
    if body.outcome is not None and body.ended_at is None:
        raise Invalid("an outcome needs ended_at", field="ended_at")
    if body.ended_at is not None and body.ended_at < body.detained_at:
        raise Invalid("ended_at is before detained_at", field="ended_at")
    if (
        body.ambulance_at_scene_at
        and body.ambulance_requested_at
        and body.ambulance_at_scene_at < body.ambulance_requested_at
    ):
        raise Invalid("ambulance_at_scene_at is before ambulance_requested_at", field="ambulance_at_scene_at")


def _snapshot(d: S136Detention) -> dict:
    return {
        "detention_id": d.detention_id,
        "place_type": d.place_type,
        "detained_at": d.detained_at.isoformat(),
        "home_area": d.home_area,
        "person_ref": d.person_ref,
        "ended_at": d.ended_at.isoformat() if d.ended_at else None,
        "outcome": d.outcome,
        "never_event_acknowledged": d.never_event_acknowledged,
    }


def _audit(uow: UnitOfWork, actor: Actor, action: str, detention: S136Detention, before: dict | None = None) -> None:
    """A change to a detention, audited with what it was (`before`) and what it is now."""
    after = _snapshot(detention)
    uow.audit(actor, action, "s136_detention", detention.id, before=before, after=after)


async def record_detention(db: Database, actor: Actor, body: DetentionIn) -> S136Detention:
    ensure_role(actor, "amhp", action="record an s136 detention")
    ensure_amhp_area(actor, body.person.home_area)
    _check(body)

    async def work(uow: UnitOfWork) -> S136Detention:
        now, session = uow.now, uow.session
        not_in_future(body.detained_at, now, "detained_at")
        if body.ended_at:
            not_in_future(body.ended_at, now, "ended_at")
        await check_person(session, body.person.ref, body.person.home_area)
        detention = S136Detention(
            id=new_id(),
            **{name: getattr(body, name) for name in AS_RECORDED},
            police_station_criteria=list(body.police_station_criteria),
            created_by=actor.username,
            created_at=now,
            **person_columns(body.person),
        )
        if body.detention_id is not None:
            detention.episode = await continue_episode(
                uow,
                detention_id=body.detention_id,
                person=Person(body.person.ref, body.person.home_area),
                legal_basis=body.legal_basis,
                arrived_at=body.detained_at,
            )
        else:
            detention.episode = open_episode(
                uow, first_leg_id=detention.id, legal_basis=body.legal_basis, clock_started_at=body.detained_at
            )
        session.add(detention)
        await session.flush()
        if body.ended_at is not None and body.outcome is not None:
            detention.ended_at, detention.outcome = body.ended_at, body.outcome
            await end_leg(uow, detention.episode, outcome=body.outcome, ended_at=body.ended_at)
        _audit(uow, actor, "s136_detention.record", detention)
        uow.emit(detention_event("s136.recorded", detention, now, detained_at=detention.detained_at.isoformat()))
        if detention.never_event_acknowledged:
            uow.emit(detention_event("s136.never_event", detention, now))
        return detention

    return await db.write(work)


def _in_scope(actor: Actor, detention: S136Detention | None, detention_id: str) -> S136Detention:
    if detention is None:
        raise NotFound(f"no s136 detention with id {detention_id}")
    # A place of safety that is not a unit: no provider or unit area decides who sees it.
    ensure_sees_person(
        actor, "s136 detention", detention_id, home_area=detention.home_area, provider_id=None, unit_area=None
    )
    return detention


async def read_detention(db: Database, actor: Actor, detention_id: str) -> S136Detention:
    async with db.read() as reading:
        detention = _in_scope(actor, await reading.session.get(S136Detention, detention_id), detention_id)
    await audited_read(db, actor, action="s136_detention.read", object_type="s136_detention", object_id=detention.id)
    return detention


async def end_detention(db: Database, actor: Actor, detention_id: str, body: DetentionEndIn) -> S136Detention:
    async def work(uow: UnitOfWork) -> S136Detention:
        detention = _in_scope(actor, await uow.session.get(S136Detention, detention_id), detention_id)
        if body.outcome == TRANSFERRED:
            raise Invalid("a transfer is recorded by the next place naming this detention_id", field="outcome")
        before = _snapshot(detention)
        ended_at = await close_leg(uow, detention, outcome=body.outcome, ended_at=body.ended_at)
        _audit(uow, actor, "s136_detention.end", detention, before)
        ended = {"outcome": body.outcome, "ended_at": ended_at.isoformat()}
        uow.emit(detention_event("s136.ended", detention, uow.now, **ended))
        return detention

    return await db.write(work)


async def extend_detention(db: Database, actor: Actor, detention_id: str, body: ExtensionIn) -> S136Detention:
    """Record the episode's one extension through this detention: where the person is now, or was."""

    async def work(uow: UnitOfWork) -> S136Detention:
        detention = _in_scope(actor, await uow.session.get(S136Detention, detention_id), detention_id)
        await extend(uow, actor, detention.episode, body)
        uow.emit(detention_event("s136.extended", detention, uow.now))
        return detention

    return await db.write(work)


async def list_detentions(db: Database, actor: Actor) -> list[S136Detention]:
    async with db.read() as reading:
        stmt = (
            select(S136Detention)
            .where(person_filter(actor, home_area=S136Detention.home_area))
            .order_by(S136Detention.detained_at.desc())
            .limit(500)
        )
        found = list((await reading.session.scalars(stmt)).all())
    await audited_list(db, actor, "s136_detention", found)
    return found
