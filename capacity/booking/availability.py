"""Availability is derived, never typed in (rule 2): open places less active placements less live holds.

A live hold is one still `held` whose `expires_at` is in the future, so expiry is exact at read time
whether or not the sweep has marked it yet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, bindparam, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from capacity.booking.models import Area, AreaLocalProvider, Hold, Placement, Unit, UnitAreaRule
from capacity.errors import Invalid, NotFound
from capacity.settings import Settings

EARTH_RADIUS_KM = 6371.0088


def great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance between two points, in kilometres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def live_holds(unit_id, now: datetime):
    """Count of a unit's live holds, as a correlated scalar subquery.

    count(*), not count(id): the index on (unit_id, status, expires_at) answers it without reading rows."""
    return (
        select(func.count()).select_from(Hold)
        .where(Hold.unit_id == unit_id, Hold.status == "held", Hold.expires_at > now)
        .scalar_subquery()
    )


def active_placements(unit_id):
    return (
        select(func.count()).select_from(Placement)
        .where(Placement.unit_id == unit_id, Placement.ended_at.is_(None))
        .scalar_subquery()
    )


@dataclass
class UnitFigures:
    """A unit with its derived figures at one instant."""

    unit: Unit
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


def is_stale(unit: Unit, now: datetime, settings: Settings) -> bool:
    return now - unit.last_confirmed_at > timedelta(minutes=settings.stale_minutes[unit.kind])


def _with_counts(now: datetime) -> Select:
    return select(
        Unit,
        live_holds(Unit.id, now).label("held"),
        active_placements(Unit.id).label("occupied"),
    )


async def unit_figures(
    session: AsyncSession, unit_id: str, now: datetime, settings: Settings, *, detail: bool = False
) -> UnitFigures:
    stmt = _with_counts(now).where(Unit.id == unit_id)
    if detail:
        stmt = stmt.options(selectinload(Unit.area_rules))
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise NotFound(f"no unit with id {unit_id}")
    unit, held, occupied = row
    return UnitFigures(unit, held, occupied, is_stale(unit, now, settings))


def _hold_checks() -> Select:
    rule, unit_id, home = UnitAreaRule, bindparam("unit_id"), bindparam("home_area")
    return select(
        live_holds(unit_id, bindparam("now", type_=Hold.expires_at.type)).label("held"),
        active_placements(unit_id).label("occupied"),
        exists().where(Area.code == home).label("home_known"),
        exists().where(rule.unit_id == unit_id, rule.rule == "refuses", rule.area_code == home).label("refused"),
        exists().where(rule.unit_id == unit_id, rule.rule == "accepts").label("accepts_listed"),
        exists().where(rule.unit_id == unit_id, rule.rule == "accepts", rule.area_code == home).label("accepted"),
    )


# Built once: only the bound values change, so SQLAlchemy neither rebuilds nor recompiles it per hold.
_HOLD_CHECKS = _hold_checks()


@dataclass
class HoldChecks:
    figures: UnitFigures
    home_known: bool
    area_refused: bool


async def hold_checks(session: AsyncSession, unit: Unit, home_area: str, now: datetime,
                      settings: Settings) -> HoldChecks:
    """In one statement: the unit's live holds and active placements, whether the person's home area
    exists, and whether the unit's area rules refuse it.

    Run it after the unit is locked, as its own statement: on PostgreSQL a statement's snapshot is taken
    when it starts, so only a statement that starts after the lock was granted sees the holds committed
    by the transactions it waited for. (Counting inside the locking SELECT would read the snapshot from
    before the lock wait, and overbook.)"""
    held, occupied, home_known, refused, accepts_listed, accepted = (await session.execute(
        _HOLD_CHECKS, {"unit_id": unit.id, "home_area": home_area, "now": now})).one()
    figures = UnitFigures(unit, held, occupied, is_stale(unit, now, settings))
    return HoldChecks(figures, bool(home_known), bool(refused) or (bool(accepts_listed) and not accepted))


@dataclass(frozen=True)
class UnitSearch:
    kinds: tuple[str, ...] = ()
    sex: str | None = None
    age: int | None = None
    home_area: str | None = None
    near: tuple[float, float] | None = None
    available_only: bool = False
    limit: int | None = None


def _eligibility_filters(search: UnitSearch) -> list:
    filters = []
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
    return filters


async def search_units(
    session: AsyncSession, search: UnitSearch, now: datetime, settings: Settings
) -> list[UnitFigures]:
    """Units matching the search, fresh before stale, nearest first when `near` is given."""
    local_providers: set[str] | None = None
    if search.home_area:
        if await session.scalar(select(Area.code).where(Area.code == search.home_area)) is None:
            raise Invalid(f"no area with code {search.home_area}", field="home_area")
        local_providers = set((await session.scalars(
            select(AreaLocalProvider.provider_id).where(AreaLocalProvider.area_code == search.home_area))).all())

    # Order first, from the units' own columns (plain rows, not ORM objects); then count holds and
    # placements only for as many units as the answer needs: a national search matches hundreds of
    # units and answers with a page of them.
    candidates: list[UnitFigures] = []
    for unit in (await session.execute(select(*Unit.__table__.columns).where(*_eligibility_filters(search)))).all():
        figures = UnitFigures(unit, 0, 0, is_stale(unit, now, settings))
        if search.near:
            figures.distance_km = round(great_circle_km(*search.near, unit.lat, unit.lon), 1)
        if local_providers is not None:
            figures.out_of_area = unit.provider_id not in local_providers
        candidates.append(figures)
    if search.near:
        candidates.sort(key=lambda f: (f.stale, f.distance_km, f.unit.name))
    else:
        candidates.sort(key=lambda f: (f.stale, f.unit.name))

    results: list[UnitFigures] = []
    batch = max(2 * search.limit, 50) if search.limit else 500
    for start in range(0, len(candidates), batch):
        page = candidates[start:start + batch]
        held, occupied = await _counts(session, [f.unit.id for f in page], now)
        for figures in page:
            figures.held, figures.occupied = held.get(figures.unit.id, 0), occupied.get(figures.unit.id, 0)
            if search.available_only and figures.available == 0:
                continue
            results.append(figures)
            if search.limit and len(results) == search.limit:
                return results
    return results


async def _counts(session: AsyncSession, unit_ids: list[str], now: datetime) -> tuple[dict, dict]:
    """Live holds and active placements of these units, by unit id (absent means none)."""
    held = (await session.execute(
        select(Hold.unit_id, func.count()).where(Hold.unit_id.in_(unit_ids), Hold.status == "held",
                                                 Hold.expires_at > now).group_by(Hold.unit_id))).all()
    occupied = (await session.execute(
        select(Placement.unit_id, func.count()).where(Placement.unit_id.in_(unit_ids), Placement.ended_at.is_(None))
        .group_by(Placement.unit_id))).all()
    return dict(held), dict(occupied)
