"""The s135/s136 episode: one detention, one 24-hour clock, whatever places of safety it passes through
(DOMAIN.md "Section 136", S136-CASES.md).

A leg is a placement at a unit or an `S136Detention` at an emergency department, police station or other
place. The first leg opens the episode, whose clock starts on arrival there; a later leg names the
episode's `detention_id` and continues it: the clock and any extension are the episode's and never
restart, and the leg before it ends `transferred`. The one extension is the episode's, wherever it is
recorded. A leg ending any other way ends the episode. Every change to an episode is a conditional
UPDATE on its row (rule 3), so a second transfer, extension or end racing the first finds it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.auth.security import Actor
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.detentions.schemas import ExtensionIn
from capacity.booking.placements.models import Placement
from capacity.codes import DetentionBasis, Outcome, PlaceType, values
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid, NotFound
from capacity.events import Event

S136_HOURS = 24  # s136(2A) Mental Health Act 1983; s135(3ZA) the same for s135
DETENTION_BASES: frozenset[str] = frozenset(values(DetentionBasis))
TRANSFERRED = Outcome.TRANSFERRED.value
# The extension as the API shows it and the audit log records it (its note, free text, is in neither).
EXTENSION_SHOWN = ("extension_hours", "extension_reason", "extension_authorised_by", "extension_superintendent")


def open_episode(uow: UnitOfWork, *, first_leg_id: str, legal_basis: str, clock_started_at: datetime) -> Episode:
    """The episode a first leg opens, named by that leg's id."""
    episode = Episode(
        id=first_leg_id,
        legal_basis=legal_basis,
        clock_started_at=clock_started_at,
        deadline=clock_started_at + timedelta(hours=S136_HOURS),
        legs=1,
    )
    uow.session.add(episode)
    return episode


@dataclass
class Person:
    ref: str
    home_area: str


async def _open_legs(session: AsyncSession, detention_id: str) -> tuple[list[S136Detention], list[str]]:
    """The episode's legs still open: detentions elsewhere, and the ids of placements at units."""
    elsewhere = (
        await session.scalars(
            select(S136Detention).where(S136Detention.detention_id == detention_id, S136Detention.ended_at.is_(None))
        )
    ).all()
    placed = (
        await session.scalars(
            select(Placement.id).where(Placement.detention_id == detention_id, Placement.ended_at.is_(None))
        )
    ).all()
    return list(elsewhere), list(placed)


async def find_open_episode(session: AsyncSession, detention_id: str, person: Person) -> Episode:
    """The open episode `detention_id` names, of this person (404 for another's: outside the caller's
    scope it does not exist; 409 once it has ended)."""
    episode = await session.get(Episode, detention_id, populate_existing=True)
    if episode is None or await _first_person(session, detention_id) != person:
        raise NotFound(f"no s136 detention with id {detention_id} for this person", field="detention_id")
    if episode.ended_at is not None:
        raise Conflict("that detention has ended: a new detention starts a new episode", field="detention_id")
    return episode


async def continue_episode(
    uow: UnitOfWork, *, detention_id: str, person: Person, legal_basis: str, arrived_at: datetime
) -> Episode:
    """A new leg of an open episode: count it (which locks the episode's row), end the leg at the place
    the person came from `transferred` at `arrived_at`, and give the new leg the episode's clock."""
    session = uow.session
    counted = await session.execute(
        update(Episode)
        .where(Episode.id == detention_id, Episode.ended_at.is_(None))
        .values(legs=Episode.legs + 1)
        .returning(Episode.id)
    )
    episode = await find_open_episode(session, detention_id, person)
    if counted.first() is None:  # it ended before this transaction could count the new leg
        raise Conflict("that detention has ended: a new detention starts a new episode", field="detention_id")
    if legal_basis != episode.legal_basis:
        raise Invalid(
            f"this continues a {episode.legal_basis} detention: legal_basis must be {episode.legal_basis}",
            field="legal_basis",
        )
    if arrived_at < episode.clock_started_at:
        raise Invalid("the arrival is before the detention's clock started", field="arrived_at")
    elsewhere, placed = await _open_legs(session, detention_id)
    if placed:
        raise Conflict(
            "the person is still placed at a unit under this detention: its bed manager records the discharge "
            "with outcome transferred first, which frees the place",
            field="detention_id",
        )
    for leg in elsewhere:
        if arrived_at < leg.detained_at:
            raise Invalid("the arrival is before the person reached the place they came from", field="arrived_at")
        leg.ended_at, leg.outcome = arrived_at, TRANSFERRED
    await session.flush()
    return episode


async def _first_person(session: AsyncSession, detention_id: str) -> Person:
    """Who the episode is about: the person of its first leg (whose id it has)."""
    for model in (S136Detention, Placement):
        row = (
            await session.execute(select(model.person_ref, model.home_area).where(model.id == detention_id))
        ).one_or_none()
        if row is not None:
            return Person(row.person_ref, row.home_area)
    raise NotFound(f"no s136 detention with id {detention_id}", field="detention_id")


async def end_leg(uow: UnitOfWork, episode: Episode, *, outcome: str, ended_at: datetime) -> None:
    """A leg has ended: `transferred` leaves the episode open (the person is still detained, on the way to
    the next place); any other outcome ends it, recording a breach if it ended after the deadline."""
    if outcome == TRANSFERRED:
        return
    if ended_at < episode.clock_started_at:
        raise Invalid("ended_at is before the detention's clock started", field="ended_at")
    done = await uow.session.execute(
        update(Episode)
        .where(Episode.id == episode.id, Episode.ended_at.is_(None))
        .values(
            ended_at=ended_at,
            outcome=outcome,
            breached_at=func.coalesce(Episode.breached_at, episode.deadline if ended_at > episode.deadline else None),
        )
        .returning(Episode.id)
    )
    if done.first() is None:
        raise Conflict("the detention has already ended")
    await uow.session.refresh(episode)


def check_transfer_outcome(outcome: str, detention_id: str | None) -> None:
    if outcome == TRANSFERRED and detention_id is None:
        raise Invalid("transferred is only for a leg of an s135 or s136 detention", field="outcome")


async def extend(uow: UnitOfWork, actor: Actor, episode: Episode, body: ExtensionIn) -> Episode:
    """Record the episode's one extension (s136B, s135(3ZA)), audited: up to 12 hours, before the
    deadline, only for the person's condition; at a police station a superintendent authorises it too."""
    superintendent = body.superintendent
    now, session = uow.now, uow.session
    elsewhere, _ = await _open_legs(session, episode.id)
    at_police_station = any(leg.place_type == PlaceType.POLICE_STATION for leg in elsewhere)
    if at_police_station and not superintendent:
        raise Invalid(
            "at a police station an extension needs an officer of the rank of superintendent or above",
            field="superintendent",
        )
    if not at_police_station and superintendent:
        raise Invalid("a superintendent authorises an extension only at a police station", field="superintendent")
    done = await session.execute(
        update(Episode)
        .where(
            Episode.id == episode.id,
            Episode.ended_at.is_(None),
            Episode.extension_hours.is_(None),
            Episode.deadline > now,
        )
        .values(
            # Only an extension moves the deadline, and this UPDATE runs once: the value read is current.
            deadline=episode.deadline + timedelta(hours=body.hours),
            extension_hours=body.hours,
            extension_reason=body.reason,
            extension_authorised_by=body.authorised_by,
            extension_superintendent=superintendent,
            extension_note=body.note,
            extension_recorded_at=now,
        )
        .returning(Episode.id)
    )
    if done.first() is None:
        await session.refresh(episode)
        if episode.ended_at is not None:
            raise Conflict("the detention has ended")
        if episode.extension_hours is not None:
            raise Conflict("this detention has already been extended once: there is one extension per detention")
        raise Conflict("an extension must be recorded before the deadline; the deadline has passed")
    await session.refresh(episode)
    uow.audit(actor, "s136.extension", "detention", episode.id, after=episode_snapshot(episode))
    return episode


def episode_snapshot(episode: Episode) -> dict:
    """The episode as its audit entries record it (no free text: the note stays out)."""
    keys = (
        "legal_basis",
        "clock_started_at",
        "deadline",
        "legs",
        *EXTENSION_SHOWN,
        "breached_at",
        "ended_at",
        "outcome",
    )
    return {k: (v.isoformat() if isinstance(v := getattr(episode, k), datetime) else v) for k in keys}


def episode_fields(episode: Episode | None) -> dict:
    """The clock as a leg shows it (API.md: a placement's s136_* fields; a detention's deadline)."""
    if episode is None:
        return {}
    clock = ("clock_started_at", "deadline", *EXTENSION_SHOWN, "breached_at")
    return {"detention_id": episode.id, **{f"s136_{name}": getattr(episode, name) for name in clock}}


def detention_event(kind: str, leg: S136Detention, at: datetime, **extra: object) -> Event:
    """An event about a person detained at a place that is not a unit: heard by those who see the person
    (AMHPs of their home area, conveyance, admins), as the REST API shows the detention."""
    episode = leg.episode
    data = {
        "detention_id": episode.id,
        "s136_detention_id": leg.id,
        "legal_basis": episode.legal_basis,
        "place_type": leg.place_type,
        "place_name": leg.place_name,
        "s136_deadline": episode.deadline.isoformat(),
        "person": {"ref": leg.person_ref, "age": leg.person_age, "sex": leg.person_sex, "home_area": leg.home_area},
        **extra,
    }
    return Event(type=kind, at=at, data=data, home_area=leg.home_area)


async def current_legs(session: AsyncSession, episodes: list[Episode]) -> dict[str, Placement | S136Detention]:
    """The leg each episode's person is at: the open one, else the latest (on the way to the next place)."""
    ids = [e.id for e in episodes]
    legs: dict[str, list[Placement | S136Detention]] = {}
    if ids:
        placed = (await session.scalars(select(Placement).where(Placement.detention_id.in_(ids)))).all()
        elsewhere = (await session.scalars(select(S136Detention).where(S136Detention.detention_id.in_(ids)))).all()
        every: list[Placement | S136Detention] = [*placed, *elsewhere]
        for leg in every:
            assert leg.detention_id is not None
            legs.setdefault(leg.detention_id, []).append(leg)
    return {key: max(found, key=lambda leg: (leg.ended_at is None, leg_start(leg))) for key, found in legs.items()}


def leg_start(leg: Placement | S136Detention) -> datetime:
    return leg.started_at if isinstance(leg, Placement) else leg.detained_at
