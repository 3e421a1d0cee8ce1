"""Capacity use: occupancy of the units standing in the areas, hold outcomes, and unmet demand.

- occupancy = occupied nights / open-place nights over the period, per unit, per kind and in all, for the
  units whose `area_code` is reported on. Occupied nights: the nights of every placement at the unit
  (`reports.sql`), whoever it was for. Open-place nights: on the night of local date D a unit offers the
  `open_places` of its last availability declaration made on D or earlier (local date), or 0 if that
  declaration closed it, or if it had none yet; each declaration stays in force until the next one's
  local date (LEAD over the declarations from the last one before the period).
- hold outcomes: holds created in the period for people from the areas, by final status; a hold still
  `held` after its expiry counts as `expired` (exact at read time), one still live as `held`.
- hold to arrival: minutes from a hold's creation to the person's arrival, for holds of the period that
  ended in an arrival; median and 90th percentile, nearest rank.
- unmet demand: holds refused for want of a place and searches that found nothing, recorded for people
  from the areas, by kind (`any` when the search named none), by source and by local hour of the day.
"""

from __future__ import annotations

from sqlalchemy import Row, Subquery, and_, case, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import AvailabilityDeclaration, Unit, UnmetDemand
from capacity.codes import KINDS, HoldStatus, UnmetDemandSource, values
from capacity.reports.common import ReportQuery, coded, integer, number, ratio
from capacity.reports.sql import (
    days_between,
    greatest,
    least,
    london_date,
    london_hour,
    nearest_rank,
    nights_in,
    seconds_between,
    sql_date,
    total,
)

HOLD_STATUSES = values(HoldStatus)
MEDIAN, P90 = (1, 2), (9, 10)


def _occupied(q: ReportQuery) -> Subquery:
    nights = nights_in(Placement.started_at, Placement.ended_at, q.first, q.nights_after)
    return (
        select(Placement.unit_id.label("unit_id"), total(nights).label("nights"))
        .join(Unit, Unit.id == Placement.unit_id)
        .where(
            q.in_areas(Unit.area_code),
            Placement.started_at < q.end,
            or_(Placement.ended_at.is_(None), Placement.ended_at >= q.start),
        )
        .group_by(Placement.unit_id)
        .subquery("occupied")
    )


def _open(q: ReportQuery) -> Subquery:
    d = AvailabilityDeclaration
    declared_on = london_date(d.declared_at)
    # Only the declarations that can be in force in the period: each unit's last one made before it, and
    # those made during it; an earlier one ends before the period (its nights there are 0). One index seek
    # per unit (ix_availability_declarations_unit_at), not the whole history since the unit opened.
    earlier = aliased(AvailabilityDeclaration)
    last_before = (
        select(func.max(earlier.declared_at))
        .where(earlier.unit_id == Unit.id, earlier.declared_at < q.start)
        .scalar_subquery()
    )
    history = (
        select(
            d.unit_id.label("unit_id"),
            declared_on.label("first_night"),
            func.lead(declared_on).over(partition_by=d.unit_id, order_by=(d.declared_at, d.id)).label("next_night"),
            case((d.after_status == "open", d.after_open_places), else_=0).label("places"),
        )
        .join(Unit, Unit.id == d.unit_id)
        .where(
            q.in_areas(Unit.area_code),
            d.declared_at < q.end,
            d.declared_at >= func.coalesce(last_before, q.start),
        )
        .cte("declared")
    )
    after = sql_date(q.nights_after, "after_last")
    first = greatest(history.c.first_night, sql_date(q.first, "first_night"))
    last = least(func.coalesce(history.c.next_night, after), after)
    nights = greatest(days_between(first, last), 0)
    return (
        select(history.c.unit_id, total(nights * history.c.places).label("nights"))
        .group_by(history.c.unit_id)
        .subquery("open")
    )


def _occupancy(row: Row) -> dict:
    return {
        "occupied_nights": integer(row.occupied),
        "open_place_nights": integer(row.open),
        "occupancy": ratio(row.occupied, row.open),
    }


async def capacity_report(session: AsyncSession, q: ReportQuery) -> dict:
    occupied, open_ = _occupied(q), _open(q)
    occupied_nights = func.coalesce(occupied.c.nights, 0)
    open_nights = func.coalesce(open_.c.nights, 0)
    units = (
        select(
            Unit.id, Unit.name, Unit.kind, Unit.area_code, occupied_nights.label("occupied"), open_nights.label("open")
        )
        .outerjoin(occupied, occupied.c.unit_id == Unit.id)
        .outerjoin(open_, open_.c.unit_id == Unit.id)
        .where(q.in_areas(Unit.area_code))
        .subquery("unit_nights")
    )
    by_unit = (await session.execute(select(units).order_by(units.c.name, units.c.id))).all()
    by_kind = (
        await session.execute(
            select(units.c.kind, total(units.c.occupied).label("occupied"), total(units.c.open).label("open"))
            .group_by(units.c.kind)
            .order_by(units.c.kind)
        )
    ).all()
    overall = (
        await session.execute(select(total(units.c.occupied).label("occupied"), total(units.c.open).label("open")))
    ).one()

    holds = (
        select(
            case(
                (and_(Hold.status == "held", Hold.expires_at <= q.now), literal("expired")),
                else_=coded(Hold.status, HOLD_STATUSES, "held"),
            ).label("status"),
            case((Hold.status == "arrived", seconds_between(Hold.created_at, Hold.ended_at) / 60.0)).label(
                "to_arrival_minutes"
            ),
        )
        .where(q.in_areas(Hold.home_area), q.in_period(Hold.created_at))
        .subquery("period_holds")
    )
    outcomes: dict[str, int] = dict(
        (await session.execute(select(holds.c.status, func.count()).group_by(holds.c.status))).all()
    )
    to_arrival = (await session.execute(nearest_rank(select(holds.c.to_arrival_minutes), MEDIAN, P90))).one()

    unmet = (
        select(
            UnmetDemand.source.label("source"),
            func.coalesce(UnmetDemand.kind, "any").label("kind"),
            london_hour(UnmetDemand.at).label("hour"),
        )
        .where(q.in_areas(UnmetDemand.home_area), q.in_period(UnmetDemand.at))
        .subquery("unmet")
    )
    unmet_sources: dict[str, int] = dict(
        (await session.execute(select(unmet.c.source, func.count()).group_by(unmet.c.source))).all()
    )
    unmet_kinds: dict[str, int] = dict(
        (await session.execute(select(unmet.c.kind, func.count()).group_by(unmet.c.kind))).all()
    )
    unmet_hours: dict[int, int] = dict(
        (await session.execute(select(unmet.c.hour, func.count()).group_by(unmet.c.hour))).all()
    )

    return {
        "occupancy": _occupancy(overall),
        "by_unit": [
            {"unit_id": row.id, "name": row.name, "kind": row.kind, "area_code": row.area_code, **_occupancy(row)}
            for row in by_unit
        ],
        "by_kind": [{"kind": row.kind, **_occupancy(row)} for row in by_kind],
        "hold_outcomes": {
            "created": sum(integer(n) for n in outcomes.values()),
            **{status: integer(outcomes.get(status)) for status in HOLD_STATUSES},
        },
        "hold_to_arrival_minutes": {
            "arrived": integer(to_arrival[0]),
            "median": number(to_arrival[1], 1),
            "p90": number(to_arrival[2], 1),
        },
        "unmet_demand": {
            "total": sum(integer(n) for n in unmet_sources.values()),
            **{source: integer(unmet_sources.get(source)) for source in values(UnmetDemandSource)},
        },
        "unmet_demand_by_kind": {kind: integer(unmet_kinds.get(kind)) for kind in (*KINDS, "any")},
        "unmet_demand_by_hour": {f"{hour:02d}": integer(unmet_hours.get(hour)) for hour in range(24)},
    }
