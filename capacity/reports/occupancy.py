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

Two statements, each made once (`capacity.reports.common.Period`): the nights of each unit (computed once,
in a CTE) with their sums per kind and in all; and the holds and unmet demand of the period.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy import (
    CompoundSelect,
    Label,
    Row,
    String,
    Subquery,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import AvailabilityDeclaration, Unit, UnmetDemand
from capacity.codes import KINDS, HoldStatus, UnmetDemandSource, values
from capacity.reports.common import (
    Period,
    ReportQuery,
    coded,
    figure,
    integer,
    number,
    percentiles,
    ratio,
    read_figures,
)
from capacity.reports.sql import (
    days_between,
    greatest,
    least,
    london_date,
    london_hour,
    nights_in,
    seconds_between,
    total,
)

HOLD_STATUSES = values(HoldStatus)


def _occupied(p: Period) -> Subquery:
    nights = nights_in(Placement.started_at, Placement.ended_at, p.first, p.nights_after)
    return (
        select(Placement.unit_id.label("unit_id"), total(nights).label("nights"))
        .join(Unit, Unit.id == Placement.unit_id)
        .where(
            p.in_areas(Unit.area_code),
            Placement.started_at < p.end,
            or_(Placement.ended_at.is_(None), Placement.ended_at >= p.start),
        )
        .group_by(Placement.unit_id)
        .subquery("occupied")
    )


def _open(p: Period) -> Subquery:
    d = AvailabilityDeclaration
    declared_on = london_date(d.declared_at)
    # Only the declarations that can be in force in the period: each unit's last one made before it, and
    # those made during it; an earlier one ends before the period (its nights there are 0). One index seek
    # per unit (ix_availability_declarations_unit_at), not the whole history since the unit opened.
    earlier = aliased(AvailabilityDeclaration)
    last_before = (
        select(func.max(earlier.declared_at))
        .where(earlier.unit_id == Unit.id, earlier.declared_at < p.start)
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
            p.in_areas(Unit.area_code),
            d.declared_at < p.end,
            d.declared_at >= func.coalesce(last_before, p.start),
        )
        .cte("declared")
    )
    first = greatest(history.c.first_night, p.first)
    last = least(func.coalesce(history.c.next_night, p.nights_after), p.nights_after)
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


@cache
def _unit_nights(all_areas: bool) -> CompoundSelect:
    """Occupied and open-place nights per unit standing in the areas, per kind and in all, in one statement
    (each unit's nights computed once, in a CTE): rows of `section` unit (by name, then id), kind (by kind)
    and all."""
    p = Period(all_areas)
    occupied, open_ = _occupied(p), _open(p)
    units = (
        select(
            Unit.id,
            Unit.name,
            Unit.kind,
            Unit.area_code,
            func.coalesce(occupied.c.nights, 0).label("occupied"),
            func.coalesce(open_.c.nights, 0).label("open"),
        )
        .outerjoin(occupied, occupied.c.unit_id == Unit.id)
        .outerjoin(open_, open_.c.unit_id == Unit.id)
        .where(p.in_areas(Unit.area_code))
        .cte("unit_nights")
    )

    c = units.c

    def section(name: str) -> Label[str]:
        return literal_column(f"'{name}'", String).label("section")

    none = cast(null(), String)  # typed: PostgreSQL types a UNION's columns pairwise, left to right
    occupied_sum, open_sum = total(c.occupied), total(c.open)
    return union_all(
        select(section("unit"), c.name, c.id, c.kind, c.area_code, c.occupied, c.open),
        select(section("kind"), none, none, c.kind, none, occupied_sum, open_sum).group_by(c.kind),
        select(section("all"), none, none, none, none, occupied_sum, open_sum),
    ).order_by("section", "name", "id", "kind")


@cache
def _holds_and_unmet_demand(all_areas: bool) -> CompoundSelect:
    p = Period(all_areas)
    holds = (
        select(
            case(
                (and_(Hold.status == "held", Hold.expires_at <= p.now), literal("expired")),
                else_=coded(Hold.status, HOLD_STATUSES, "held"),
            ).label("status"),
            case((Hold.status == "arrived", seconds_between(Hold.created_at, Hold.ended_at) / 60.0)).label(
                "to_arrival_minutes"
            ),
        )
        .where(p.in_areas(Hold.home_area), p.in_period(Hold.created_at))
        .cte("period_holds")
    )
    unmet = (
        select(
            UnmetDemand.source.label("source"),
            func.coalesce(UnmetDemand.kind, "any").label("kind"),
            cast(london_hour(UnmetDemand.at), String).label("hour"),
        )
        .where(p.in_areas(UnmetDemand.home_area), p.in_period(UnmetDemand.at))
        .cte("unmet")
    )
    return union_all(
        figure("hold_outcomes", func.count(), holds.c.status).group_by(holds.c.status),
        percentiles("hold_to_arrival_minutes", select(holds.c.to_arrival_minutes)),
        *(
            figure(f"unmet_{name}", func.count(), unmet.c[name]).group_by(unmet.c[name])
            for name in ("source", "kind", "hour")
        ),
    )


async def capacity_report(session: AsyncSession, q: ReportQuery) -> dict:
    nights: dict[str, list[Row]] = {"unit": [], "kind": [], "all": []}
    bound = q.bound()
    for row in (await session.execute(_unit_nights(q.areas is None), bound)).all():
        nights[row.section].append(row)
    figures = await read_figures(session, _holds_and_unmet_demand(q.areas is None), bound)
    outcomes = {status: row.n for status, row in figures.get("hold_outcomes", {}).items()}
    to_arrival = figures["hold_to_arrival_minutes"][None]
    unmet_sources, unmet_kinds = (
        {key: row.n for key, row in figures.get(f"unmet_{name}", {}).items()} for name in ("source", "kind")
    )
    unmet_hours = {int(hour): row.n for hour, row in figures.get("unmet_hour", {}).items()}

    (overall,) = nights["all"]
    return {
        "occupancy": _occupancy(overall),
        "by_unit": [
            {"unit_id": row.id, "name": row.name, "kind": row.kind, "area_code": row.area_code, **_occupancy(row)}
            for row in nights["unit"]
        ],
        "by_kind": [{"kind": row.kind, **_occupancy(row)} for row in nights["kind"]],
        "hold_outcomes": {
            "created": sum(integer(n) for n in outcomes.values()),
            **{status: integer(outcomes.get(status)) for status in HOLD_STATUSES},
        },
        "hold_to_arrival_minutes": {
            "arrived": integer(to_arrival.n),
            "median": number(to_arrival.median, 1),
            "p90": number(to_arrival.p90, 1),
        },
        "unmet_demand": {
            "total": sum(integer(n) for n in unmet_sources.values()),
            **{source: integer(unmet_sources.get(source)) for source in values(UnmetDemandSource)},
        },
        "unmet_demand_by_kind": {kind: integer(unmet_kinds.get(kind)) for kind in (*KINDS, "any")},
        "unmet_demand_by_hour": {f"{hour:02d}": integer(unmet_hours.get(hour)) for hour in range(24)},
    }
