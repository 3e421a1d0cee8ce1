"""Availability is derived, never typed in (rule 2): open places less active placements less live holds.

A live hold is one still `held` whose `expires_at` is in the future, so expiry is exact at read time
whether or not the sweep has marked it yet.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Area, Unit, UnitAreaRule, UnitLocalArea
from capacity.codes import Advisory
from capacity.errors import Invalid, NotFound
from capacity.settings import Settings

EARTH_RADIUS_KM = 6371.0088


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance between two points, in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    return haversine_km(p1, math.cos(p1), lon1, p2, math.cos(p2), lon2)


def haversine_km(p1: float, cos_p1: float, lon1: float, p2: float, cos_p2: float, lon2: float) -> float:
    """great_circle_km from latitudes already in radians with their cosines (a read model precomputes a
    unit's), longitudes in degrees: the same arithmetic, so the same distance to the last bit."""
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + cos_p1 * cos_p2 * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def is_out_of_area(home_area: str, local_to_areas: Collection[str]) -> bool:
    """The one out-of-area rule (DHSC 2016), for placements and search alike: a person is out of area at a
    unit that does not form part of the usual local network of services for where they live, that is, a
    unit whose own local areas (`unit_local_areas`) do not include their home area. Per unit, never per
    provider: one trust may run a ward local to the person's area and a PICU that is not."""
    return home_area not in local_to_areas


class Snapshot(Protocol):
    """Where figures are computed: a write's unit of work (after its locks) or a read; both give one instant."""

    session: AsyncSession
    settings: Settings

    @property
    def now(self) -> datetime: ...

    async def checked(self) -> None: ...


@dataclass
class UnitFigures:
    """A unit with its derived figures at one instant."""

    unit: Any  # a Unit, or a plain row of the units table's columns (the search reads no ORM objects)
    held: int
    occupied: int
    stale: bool
    distance_km: float | None = None
    out_of_area: bool | None = None

    @property
    def available(self) -> int:
        if self.unit.status != "open":
            return 0
        return max(0, self.unit.open_places - self.occupied - self.held)

    @property
    def advisories(self) -> list[Advisory]:
        """What a person relying on these figures should be warned of."""
        found = [Advisory.STALE] if self.stale else []
        if self.unit.open_places < self.occupied:
            found.append(Advisory.OVER_OCCUPIED)
        return found

    def with_one_more_hold(self) -> UnitFigures:
        """The figures after a hold this transaction has just written under the unit's lock."""
        return replace(self, held=self.held + 1)


def is_stale(unit: Any, now: datetime, settings: Settings) -> bool:
    return bool(now - unit.last_confirmed_at > timedelta(minutes=settings.stale_minutes[unit.kind]))


def _live_hold(now: datetime | BindParameter[datetime]) -> tuple[ColumnElement[bool], ...]:
    """What makes a hold live, and counted against its unit: still held, and not yet expired."""
    return Hold.status == "held", Hold.expires_at > now


def _active_placement() -> ColumnElement[bool]:
    """What makes a placement occupy a place at its unit: it has not ended."""
    return Placement.ended_at.is_(None)


async def live_holds(
    session: AsyncSession, now: datetime, unit_ids: Collection[str] | None = None
) -> dict[str, dict[str, datetime]]:
    """The live holds, hold id -> expiry, by unit id (absent means none), of these units or all: what lets
    a read model expire holds at read time, and apply each hold's own event to them."""
    query = select(Hold.unit_id, Hold.id, Hold.expires_at).where(*_live_hold(now))
    if unit_ids is not None:
        query = query.where(Hold.unit_id.in_(sorted(unit_ids)))
    found: dict[str, dict[str, datetime]] = {}
    for unit_id, hold_id, expires_at in (await session.execute(query)).all():
        found.setdefault(unit_id, {})[hold_id] = expires_at
    return found


async def _counts(session: AsyncSession, unit_ids: Sequence[str], now: datetime) -> tuple[dict, dict]:
    """Live holds and active placements of these units, by unit id (absent means none), in one statement.

    count(*), not count(id): the indexes on holds (unit_id, status, expires_at) and on active placements
    answer it without reading rows."""
    held = (
        select(Hold.unit_id, literal("held").label("what"), func.count().label("n"))
        .where(Hold.unit_id.in_(unit_ids), *_live_hold(now))
        .group_by(Hold.unit_id)
    )
    occupied = (
        select(Placement.unit_id, literal("occupied").label("what"), func.count().label("n"))
        .where(Placement.unit_id.in_(unit_ids), _active_placement())
        .group_by(Placement.unit_id)
    )
    counts: dict[str, dict] = {"held": {}, "occupied": {}}
    for unit_id, what, n in (await session.execute(union_all(held, occupied))).all():
        counts[what][unit_id] = n
    return counts["held"], counts["occupied"]


async def figures(at: Snapshot, units: Sequence[Any]) -> dict[str, UnitFigures]:
    """The one availability calculator (rule 2): open places less active placements less live holds, at
    `at.now`, for a batch of units (ORM objects or plain rows), by unit id.

    In a write, call it after `lock_units`, as statements of their own: on PostgreSQL a statement's
    snapshot is taken when it starts, so only a statement that starts after the lock was granted sees
    the holds committed by the transactions it waited for."""
    found: dict[str, UnitFigures] = {}
    for start in range(0, len(units), _BATCH):
        page = units[start : start + _BATCH]
        held, occupied = await _counts(at.session, [u.id for u in page], at.now)
        for unit in page:
            found[unit.id] = UnitFigures(
                unit, held.get(unit.id, 0), occupied.get(unit.id, 0), is_stale(unit, at.now, at.settings)
            )
    await at.checked()
    return found


# Units counted per statement: IN lists stay well under SQLite's bound-parameter limit.
_BATCH = 500


def one_unit_figures(*also: ColumnElement[Any]) -> Select:
    """The statement of one unit's figures: `held` and `occupied` at the unit `:unit_id` at `:now`, with
    `also` (checks a write makes under the same lock, with bound values of their own) as further columns,
    so that a hold's checks and figures take one round trip. Build it once: only the values change."""
    unit_id: BindParameter[str] = bindparam("unit_id")
    now: BindParameter[datetime] = bindparam("now")
    held = select(func.count()).where(Hold.unit_id == unit_id, *_live_hold(now)).scalar_subquery()
    occupied = select(func.count()).where(Placement.unit_id == unit_id, _active_placement()).scalar_subquery()
    return select(held.label("held"), occupied.label("occupied"), *also)


_ONE_UNIT = one_unit_figures()


async def unit_figures_with(at: Snapshot, unit: Any, statement: Select, **values: Any) -> tuple[UnitFigures, Row]:
    """One unit's figures from `statement` (one_unit_figures with further columns), with the row that
    holds the further columns' values. In a write, after `lock_units` (see `figures`)."""
    row = (await at.session.execute(statement, {"unit_id": unit.id, "now": at.now, **values})).one()
    await at.checked()
    return UnitFigures(unit, row.held, row.occupied, is_stale(unit, at.now, at.settings)), row


async def unit_figures(at: Snapshot, unit: Any) -> UnitFigures:
    return (await unit_figures_with(at, unit, _ONE_UNIT))[0]


async def read_unit(at: Snapshot, unit_id: str) -> UnitFigures:
    """One unit with its eligibility attributes and figures."""
    unit = await at.session.scalar(select(Unit).where(Unit.id == unit_id).options(selectinload(Unit.area_rules)))
    if unit is None:
        raise NotFound(f"no unit with id {unit_id}")
    return await unit_figures(at, unit)


@dataclass(frozen=True)
class UnitSearch:
    kinds: tuple[str, ...] = ()
    sex: str | None = None
    age: int | None = None
    home_area: str | None = None
    near: tuple[float, float] | None = None
    available_only: bool = False
    limit: int | None = None
    # Eligibility flags the person needs the unit to have (accepts_intoxicated, accepts_detained, ...).
    flags: tuple[str, ...] = ()


def _eligibility_filters(search: UnitSearch) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [Unit.active.is_(True)]  # a retired unit is never offered
    if search.kinds:
        filters.append(Unit.kind.in_(search.kinds))
    if search.sex in ("female", "male"):
        filters.append(Unit.sex.in_(("any", search.sex)))
    if search.age is not None:
        filters.append(Unit.min_age <= search.age)
        filters.append(or_(Unit.max_age.is_(None), Unit.max_age >= search.age))
    if search.home_area:
        rule = UnitAreaRule
        filters.append(
            ~exists().where(rule.unit_id == Unit.id, rule.rule == "refuses", rule.area_code == search.home_area)
        )
        # A unit that lists the areas it accepts takes no one from elsewhere.
        filters.append(
            or_(
                ~exists().where(rule.unit_id == Unit.id, rule.rule == "accepts"),
                exists().where(
                    and_(rule.unit_id == Unit.id, rule.rule == "accepts", rule.area_code == search.home_area)
                ),
            )
        )
    for flag in search.flags:
        filters.append(getattr(Unit, flag).is_(True))
    return filters


async def search_units(at: Snapshot, search: UnitSearch) -> list[UnitFigures]:
    """Units matching the search, fresh before stale, nearest first when `near` is given."""
    session, now = at.session, at.now
    # Each unit's local areas as far as this search needs them: the home area, for the units local to it.
    local_to: dict[str, set[str]] | None = None
    if search.home_area:
        if await session.scalar(select(Area.code).where(Area.code == search.home_area)) is None:
            raise Invalid(f"no area with code {search.home_area}", field="home_area")
        local_units = await session.scalars(
            select(UnitLocalArea.unit_id).where(UnitLocalArea.area_code == search.home_area)
        )
        local_to = {unit_id: {search.home_area} for unit_id in local_units}

    # Order first, from the units' own columns (plain rows, not ORM objects); then count holds and
    # placements only for as many units as the answer needs: a national search matches hundreds of
    # units and answers with a page of them.
    candidates = list((await session.execute(search_statement(search))).all())
    distance = rank(candidates, search, now, at.settings)

    results: list[UnitFigures] = []
    page_size = max(2 * search.limit, 50) if search.limit else _BATCH
    for start in range(0, len(candidates), page_size):
        page = await figures(at, candidates[start : start + page_size])
        for unit in candidates[start : start + page_size]:
            found = page[unit.id]
            if search.available_only and found.available == 0:
                continue
            found.distance_km = distance.get(unit.id)
            if local_to is not None and search.home_area:
                found.out_of_area = is_out_of_area(search.home_area, local_to.get(unit.id, set()))
            results.append(found)
            if search.limit and len(results) == search.limit:
                return results
    return results


def rank(candidates: list[Any], search: UnitSearch, now: datetime, settings: Settings) -> dict[str, float]:
    """Sort a search's units (rows of the units table's columns) in its answer's order, fresh before stale,
    nearest first when `near` is given, then by name; returns their distances by unit id (empty without
    `near`). The SQL search and the read model (capacity.booking.units.read_model) both rank by it."""
    stale = {u.id: is_stale(u, now, settings) for u in candidates}
    distance: dict[str, float] = {}
    if search.near:
        distance = {u.id: round(great_circle_km(*search.near, u.lat, u.lon), 1) for u in candidates}
    candidates.sort(key=lambda u: rank_key(stale[u.id], distance.get(u.id), u.name))
    return distance


def rank_key(stale: bool, distance_km: float | None, name: str) -> tuple[bool, float, str]:
    """A unit's place in a search's answer: fresh before stale, nearest first (its distance rounded as
    answered), then by name."""
    return stale, distance_km or 0.0, name


def search_statement(search: UnitSearch) -> Select:
    """The units a search considers, as plain rows of their own columns."""
    return select(*Unit.__table__.columns).where(*_eligibility_filters(search))
