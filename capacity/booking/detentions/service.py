"""Section 136 detentions at places of safety that are not bookable units (emergency departments,
police stations, elsewhere), so that the s136 report counts every detention.

s136A: a police station is never a place of safety for a person under 18; for an adult only when every
criterion of the Places of Safety Regulations 2017 holds and an inspector or above has authorised it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from capacity.audit.service import audited_read
from capacity.auth.scope import ensure_role, ensure_sees_person, person_filter
from capacity.auth.security import Actor
from capacity.booking.detentions.models import S136Detention
from capacity.booking.detentions.schemas import POLICE_STATION_CRITERIA, DetentionEndIn, DetentionIn
from capacity.booking.eligibility import check_person, ensure_amhp_area
from capacity.booking.persons import person_columns
from capacity.booking.placements.service import S136_HOURS, not_in_future
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid, NotFound


def _check(body: DetentionIn) -> None:
    if body.place_type == "police_station":
        if body.person.age < 18:
            raise Invalid(
                "s136A: a police station may never be a place of safety for a person under 18", field="place_type"
            )
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
    elif body.police_station_criteria or body.authorising_inspector:
        raise Invalid("police station criteria are only for a police station", field="police_station_criteria")
    if body.conveyance_mode == "police_vehicle" and body.police_vehicle_reason is None:
        raise Invalid("a police vehicle should not be used; say why one was", field="police_vehicle_reason")
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
        "place_type": d.place_type,
        "detained_at": d.detained_at.isoformat(),
        "home_area": d.home_area,
        "person_ref": d.person_ref,
        "ended_at": d.ended_at.isoformat() if d.ended_at else None,
        "outcome": d.outcome,
    }


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
        deadline = body.detained_at + timedelta(hours=S136_HOURS)
        detention = S136Detention(
            place_type=body.place_type,
            place_name=body.place_name,
            detained_at=body.detained_at,
            deadline=deadline,
            ended_at=body.ended_at,
            outcome=body.outcome,
            breached_at=deadline if body.ended_at and body.ended_at > deadline else None,
            police_station_criteria=list(body.police_station_criteria),
            authorising_inspector=body.authorising_inspector,
            conveyance_mode=body.conveyance_mode,
            police_vehicle_reason=body.police_vehicle_reason,
            police_vehicle_note=body.police_vehicle_note,
            ambulance_requested_at=body.ambulance_requested_at,
            ambulance_at_scene_at=body.ambulance_at_scene_at,
            created_by=actor.username,
            created_at=now,
            **person_columns(body.person),
        )
        session.add(detention)
        await session.flush()
        uow.audit(
            actor=actor,
            action="s136_detention.record",
            object_type="s136_detention",
            object_id=detention.id,
            after=_snapshot(detention),
        )
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
        now, session = uow.now, uow.session
        detention = _in_scope(actor, await session.get(S136Detention, detention_id), detention_id)
        ended_at = not_in_future(body.ended_at or now, now, "ended_at")
        if ended_at < detention.detained_at:
            raise Invalid("ended_at is before detained_at", field="ended_at")
        before = _snapshot(detention)
        breached = detention.breached_at or (detention.deadline if ended_at > detention.deadline else None)
        done = await session.execute(
            update(S136Detention)
            .where(S136Detention.id == detention.id, S136Detention.ended_at.is_(None))
            .values(ended_at=ended_at, outcome=body.outcome, breached_at=breached)
            .returning(S136Detention.id)
        )
        if done.first() is None:
            raise Conflict("the detention has already ended")
        await session.refresh(detention)
        uow.audit(
            actor=actor,
            action="s136_detention.end",
            object_type="s136_detention",
            object_id=detention.id,
            before=before,
            after=_snapshot(detention),
        )
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
    await audited_read(
        db,
        actor,
        action="s136_detention.list",
        object_type="s136_detention",
        object_id=None,
        after={"ids": [d.id for d in found]},
    )
    return found
