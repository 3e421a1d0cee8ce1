"""The directory of crisis alternatives: who is open now for this person, and its administration.

Open now is read from the service's clock in Europe/London (capacity.alternatives.hours). The answer
lists those open first, then the nearest to the centre of the person's home area; one with no location
(a crisis line) comes after those with one. Every change is one transaction, audited before and after
with the administration API's own helpers; an alternative is retired (`active` false), never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.admin.service import Audited, _changes, _ensure_free, _known_areas, _update
from capacity.alternatives import hours
from capacity.alternatives.models import Alternative, AlternativeArea
from capacity.alternatives.schemas import AlternativeIn, AlternativePatch
from capacity.auth.security import Actor
from capacity.booking.units.availability import great_circle_km
from capacity.booking.units.models import Area
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Invalid

ALTERNATIVES = Audited("alternative", AlternativePatch.__struct_fields__)


@dataclass
class Found:
    alternative: Alternative
    open_now: bool
    distance_km: float | None = None


def is_open(alternative: Alternative, at: datetime) -> bool:
    return hours.is_open(alternative.opening_hours, at)


async def find_alternatives(
    db: Database, *, age: int | None, home_area: str | None, open_now: bool = False
) -> list[Found]:
    """The active alternatives that serve this person (their age, their home area), open first, then nearest."""
    async with db.read() as reading:
        session, now = reading.session, reading.now
        centre = None
        stmt = select(Alternative).where(Alternative.active).order_by(Alternative.name)
        if home_area is not None:
            centre = await session.get(Area, home_area)
            if centre is None:
                raise Invalid(f"no area with code {home_area}", field="home_area")
            served = select(AlternativeArea.alternative_id).where(AlternativeArea.area_code == home_area)
            stmt = stmt.where(Alternative.id.in_(served))
        if age is not None:
            stmt = stmt.where(Alternative.min_age <= age)
            stmt = stmt.where((Alternative.max_age.is_(None)) | (Alternative.max_age >= age))
        found = []
        for alternative in (await session.scalars(stmt)).all():
            distance = None
            if centre is not None and alternative.lat is not None and alternative.lon is not None:
                distance = round(great_circle_km(centre.lat, centre.lon, alternative.lat, alternative.lon), 1)
            found.append(Found(alternative, is_open(alternative, now), distance))
    if open_now:
        found = [f for f in found if f.open_now]
    # Stable on the name order above: open before closed, located before not, then nearest.
    found.sort(key=lambda f: (not f.open_now, f.distance_km is None, f.distance_km or 0.0))
    return found


async def list_alternatives(db: Database) -> list[Found]:
    """Every alternative, retired ones too, by name (the administration page)."""
    async with db.read() as reading:
        rows = (await reading.session.scalars(select(Alternative).order_by(Alternative.name))).all()
        return [Found(a, is_open(a, reading.now)) for a in rows]


def body_values(body: AlternativeIn | AlternativePatch) -> dict[str, Any]:
    """A body's fields as the row keeps them (opening hours as plain JSON); a PATCH's only those it names."""
    values = _changes(body) if isinstance(body, AlternativePatch) else msgspec.structs.asdict(body)
    if "opening_hours" in values:
        values["opening_hours"] = msgspec.to_builtins(values["opening_hours"])
    return values


async def _apply(session: AsyncSession, alternative: Alternative, values: dict[str, Any]) -> None:
    """Set an alternative's attributes after checking them against the rules and the reference data."""
    with session.no_autoflush:  # nothing is written until every check has passed
        if "areas" in values:
            areas = await _known_areas(session, values.pop("areas"), "areas")
            alternative.area_links = [AlternativeArea(area_code=code) for code in areas]
        for key, value in values.items():
            setattr(alternative, key, value)
        if (found := hours.problem(alternative.opening_hours)) is not None:
            raise Invalid(found[1], field=found[0])
        if alternative.max_age is not None and alternative.max_age < alternative.min_age:
            raise Invalid("max_age is below min_age", field="max_age")
        if (alternative.lat is None) != (alternative.lon is None):
            raise Invalid("a location needs both lat and lon", field="lon" if alternative.lon is None else "lat")
        await _ensure_free(session, Alternative, "code", alternative.code, alternative.id)
    await session.flush()


async def add_alternative(uow: UnitOfWork, actor: Actor, body: AlternativeIn) -> Alternative:
    """A new alternative in `uow`'s transaction, audited (the API's and the reference import's one rule)."""
    alternative = Alternative(active=True, area_links=[])
    uow.session.add(alternative)
    await _apply(uow.session, alternative, body_values(body))
    ALTERNATIVES.created(uow, actor, alternative)
    return alternative


async def change_alternative(
    uow: UnitOfWork, actor: Actor, alternative: Alternative, changes: dict[str, Any]
) -> Alternative:
    """Change an alternative in `uow`'s transaction, audited before and after."""
    before = ALTERNATIVES.snapshot(alternative)
    await _apply(uow.session, alternative, dict(changes))
    ALTERNATIVES.updated(uow, actor, alternative, before)
    return alternative


async def create_alternative(db: Database, actor: Actor, body: AlternativeIn) -> Found:
    async def work(uow: UnitOfWork) -> Found:
        alternative = await add_alternative(uow, actor, body)
        return Found(alternative, is_open(alternative, uow.now))

    return await db.write(work)


async def update_alternative(db: Database, actor: Actor, alternative_id: str, patch: AlternativePatch) -> Found:
    """Change an alternative; retiring it (`active` false) takes it out of every answer but keeps its history."""
    changes = body_values(patch)

    async def change(uow: UnitOfWork, alternative: Alternative) -> Found:
        await change_alternative(uow, actor, alternative, changes)
        return Found(alternative, is_open(alternative, uow.now))

    return await _update(db, Alternative, alternative_id, f"no alternative with id {alternative_id}", change)
