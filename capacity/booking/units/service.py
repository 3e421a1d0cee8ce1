"""The bed manager's declarations: open places, open/closed with a reason, and confirmations."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from capacity.auth.models import SearchRecorded
from capacity.auth.security import Actor
from capacity.booking.units.availability import UnitFigures, UnitSearch, search_units, unit_figures
from capacity.booking.units.models import AvailabilityDeclaration, Unit, UnmetDemand
from capacity.booking.units.schemas import FIGURES_SHOWN, AvailabilityIn
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Forbidden, Invalid
from capacity.events import Event, unit_event

if TYPE_CHECKING:
    from capacity.booking.units.read_model import ReadModel


def ensure_manages(actor: Actor, unit: Unit) -> None:
    """A bed manager changes only their own provider's units; admins any."""
    if actor.role == "admin":
        return
    if actor.role != "bed_manager" or actor.provider_id != unit.provider_id:
        raise Forbidden("only the unit's own bed managers may change it")


def availability_event(figures: UnitFigures, at: datetime) -> Event:
    u = figures.unit
    data = {
        "status": u.status,
        "closed_reason": u.closed_reason,  # a code: every board says why a unit is closed, not only the closer's
        "open_places": u.open_places,
        **{name: getattr(figures, name) for name in FIGURES_SHOWN},
        "last_confirmed_at": u.last_confirmed_at.isoformat(),
    }
    return unit_event("unit.availability", u, at, data)


async def declare_availability(db: Database, actor: Actor, unit_id: str, body: AvailabilityIn) -> UnitFigures:
    """Record a declaration; the same figures again are a confirmation that moves `last_confirmed_at`."""
    if body.status == "closed" and body.closed_reason is None:
        raise Invalid("a closed unit needs a closed_reason", field="closed_reason")

    async def work(uow: UnitOfWork) -> UnitFigures:
        unit = await uow.lock_unit(unit_id)
        now = uow.now
        ensure_manages(actor, unit)
        closed_reason = body.closed_reason if body.status == "closed" else None
        before = {"open_places": unit.open_places, "status": unit.status, "closed_reason": unit.closed_reason}
        after = {"open_places": body.open_places, "status": body.status, "closed_reason": closed_reason}
        uow.session.add(
            AvailabilityDeclaration(
                unit_id=unit.id,
                declared_at=now,
                declared_by=actor.username,
                before_open_places=unit.open_places,
                after_open_places=body.open_places,
                before_status=unit.status,
                after_status=body.status,
                closed_reason=closed_reason,
                note=body.note,
                confirmation=before == after,
            )
        )
        unit.open_places, unit.status, unit.closed_reason = body.open_places, body.status, closed_reason
        unit.last_confirmed_at, unit.last_confirmed_by = now, actor.username
        uow.audit(
            actor, "unit.confirm" if before == after else "unit.declare", "unit", unit.id, before=before, after=after
        )
        await uow.session.flush()
        await uow.session.refresh(unit, ["area_rules"])
        figures = await unit_figures(uow, unit)
        uow.emit(availability_event(figures, now))
        return figures

    return await db.write(work)


# The same search by the same user is one unmet need, however often it is repeated (a page polling, a
# user pressing search again): recorded once per this window.
UNMET_SEARCH_WINDOW = timedelta(minutes=10)


def search_key(actor: Actor, search: UnitSearch) -> str:
    """The user and the query, hashed: the table that remembers them holds nothing readable."""
    return hashlib.sha256(repr((actor.id, dataclasses.astuple(search))).encode()).hexdigest()


async def find_units(
    db: Database, actor: Actor, search: UnitSearch, read_model: ReadModel | None = None
) -> list[UnitFigures]:
    """An eligibility search, answered from the read model when it can (no SQL), else from the database;
    an AMHP's search that finds nowhere free is recorded as unmet demand, once per user, query and
    UNMET_SEARCH_WINDOW."""
    now = db.clock.now()
    found = read_model.search(search, now) if read_model is not None else None
    if found is None:
        async with db.read() as reading:
            found = await search_units(reading, search)
        now = reading.now
    if actor.role == "amhp" and not any(f.available > 0 for f in found):
        insert = sqlite_insert if db.is_sqlite else pg_insert

        async def record(uow: UnitOfWork) -> None:
            session = uow.session
            await session.execute(delete(SearchRecorded).where(SearchRecorded.at <= now - UNMET_SEARCH_WINDOW))
            # The first of concurrent identical searches inserts; the others meet its row and do nothing.
            first = await session.execute(
                insert(SearchRecorded)
                .values(key=search_key(actor, search), at=now)
                .on_conflict_do_nothing(index_elements=["key"])
                .returning(SearchRecorded.key)
            )
            if first.first() is None:
                return
            for kind in search.kinds or (None,):
                session.add(UnmetDemand(at=now, source="search", kind=kind, home_area=search.home_area))

        await db.write(record)
    return found
