"""Section 136 activity: detentions at every kind of place of safety, durations, breaches, conveyance.

A detention is either a placement with legal basis `s136` (its clock starts at `s136_clock_started_at`)
or an `S136Detention` at an emergency department, police station or elsewhere (clock start
`detained_at`), of a person from the areas reported on, whose clock started on a local date of the
period. Its place of safety: a placement at a 136 suite is `health_based_place_of_safety`, at any other
unit `other_health_setting`; a detention its `place_type`.

- duration: clock start to end, in hours, of those that have ended; median and 90th percentile by the
  nearest-rank method (`reports.sql`);
- breaches: a breach was recorded (`s136_breached_at` / `breached_at`); extensions: one was recorded;
- conveyance: a placement's mode is that of its hold's conveyance, a detention's its `conveyance_mode`;
  `not_recorded` when there is none. Police vehicle use is counted per stated reason;
- ambulance response: request to at scene in minutes, where both are recorded (for a placement, when
  the conveyance was by ambulance); median and the share within CAPACITY_AMBULANCE_STANDARD_MINUTES;
- repeat detentions: detentions of the period whose person (same pseudonymous reference and home area)
  had another detention whose clock started in the year before this one's (29 February counts back to
  28 February); only counts leave the database;
- out of hours: the clock started outside Monday to Friday 09:00-17:00 local time (17:00 is out of hours).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import CTE, SQLColumnExpression, and_, case, exists, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.detentions.models import S136Detention
from capacity.booking.holds.models import Conveyance
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Unit
from capacity.codes import ConveyanceMode, LegalBasis, Outcome, PlaceType, UnitKind, values
from capacity.reports.common import ReportQuery, integer, number, ratio
from capacity.reports.sql import count_if, london_hour, london_isodow, nearest_rank, seconds_between, year_before

# A placement's place of safety is one of the first two (by its unit's kind), a detention's its place type.
PLACES = ("health_based_place_of_safety", "other_health_setting", *values(PlaceType))
MODES = (*values(ConveyanceMode), "not_recorded")
OUTCOMES = (*values(Outcome), "not_recorded", "ongoing")
MEDIAN, P90 = (1, 2), (9, 10)


def _all_detentions(q: ReportQuery) -> CTE:
    """Every detention of the areas whose clock started in the period or the year (and a day) before it:
    the period's detentions and those that can make them repeats."""
    since = q.start - timedelta(days=367)
    ambulance = Conveyance.mode == ConveyanceMode.AMBULANCE.value
    from_placements = (
        select(
            Placement.home_area.label("home_area"),
            Placement.person_ref.label("person_ref"),
            Placement.person_age.label("age"),
            Placement.person_sex.label("sex"),
            Placement.person_ethnicity.label("ethnicity"),
            Placement.s136_clock_started_at.label("clock_start"),
            Placement.ended_at.label("ended_at"),
            case(
                (Unit.kind == UnitKind.S136_SUITE.value, literal("health_based_place_of_safety")),
                else_=literal("other_health_setting"),
            ).label("place"),
            case((Placement.s136_breached_at.is_not(None), 1), else_=0).label("breached"),
            case((Placement.s136_extension_hours.is_not(None), 1), else_=0).label("extended"),
            func.coalesce(Conveyance.mode, "not_recorded").label("mode"),
            Conveyance.police_vehicle_reason.label("police_vehicle_reason"),
            case((ambulance, Conveyance.requested_at)).label("ambulance_requested_at"),
            case((ambulance, Conveyance.at_scene_at)).label("ambulance_at_scene_at"),
            Placement.outcome.label("outcome"),
        )
        .select_from(Placement)
        .join(Unit, Unit.id == Placement.unit_id)
        .outerjoin(Conveyance, Conveyance.hold_id == Placement.hold_id)
        .where(
            Placement.legal_basis == LegalBasis.S136.value,
            q.in_areas(Placement.home_area),
            Placement.s136_clock_started_at >= since,
            Placement.s136_clock_started_at < q.end,
        )
    )
    d = S136Detention
    from_detentions = select(
        d.home_area,
        d.person_ref,
        d.person_age,
        d.person_sex,
        d.person_ethnicity,
        d.detained_at,
        d.ended_at,
        d.place_type,
        case((d.breached_at.is_not(None), 1), else_=0),
        case((d.extension_hours.is_not(None), 1), else_=0),
        func.coalesce(d.conveyance_mode, "not_recorded"),
        d.police_vehicle_reason,
        d.ambulance_requested_at,
        d.ambulance_at_scene_at,
        d.outcome,
    ).where(q.in_areas(d.home_area), d.detained_at >= since, d.detained_at < q.end)
    return union_all(from_placements, from_detentions).cte("all_detentions")


def period_detentions(q: ReportQuery) -> CTE:
    """The period's detentions, one row each, with what the reports count about them."""
    every = _all_detentions(q)
    earlier = every.alias("earlier")
    repeat = exists().where(
        earlier.c.home_area == every.c.home_area,
        earlier.c.person_ref == every.c.person_ref,
        earlier.c.clock_start < every.c.clock_start,
        earlier.c.clock_start >= year_before(every.c.clock_start),
    )
    hour = london_hour(every.c.clock_start)
    return (
        select(
            every.c.age,
            every.c.sex,
            every.c.ethnicity,
            every.c.place,
            every.c.breached,
            every.c.extended,
            every.c.mode,
            every.c.ended_at,
            func.coalesce(every.c.police_vehicle_reason, "not_recorded").label("police_vehicle_reason"),
            case(
                (every.c.ended_at.is_(None), literal("ongoing")), else_=func.coalesce(every.c.outcome, "not_recorded")
            ).label("outcome"),
            case((repeat, 1), else_=0).label("repeat"),
            case((or_(london_isodow(every.c.clock_start) >= 6, hour < 9, hour >= 17), 1), else_=0).label(
                "out_of_hours"
            ),
            (seconds_between(every.c.clock_start, every.c.ended_at) / 3600.0).label("duration_hours"),
            (seconds_between(every.c.ambulance_requested_at, every.c.ambulance_at_scene_at) / 60.0).label(
                "ambulance_minutes"
            ),
        )
        .where(q.in_period(every.c.clock_start))
        .cte("detentions")
    )


async def _counts(session: AsyncSession, column: SQLColumnExpression[Any], keys: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = dict((await session.execute(select(column, func.count()).group_by(column))).all())
    return {**{key: 0 for key in keys}, **{key: integer(n) for key, n in sorted(found.items())}}


async def s136_report(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> dict:
    det = period_detentions(q)
    totals = (
        await session.execute(
            select(
                func.count().label("detentions"),
                count_if(det.c.ended_at.is_not(None)).label("ended"),
                count_if(det.c.age < 18).label("under_18"),
                count_if(and_(det.c.age < 18, det.c.place == PlaceType.POLICE_STATION.value)).label(
                    "under_18_in_police_station"
                ),
                count_if(det.c.breached == 1).label("breaches"),
                count_if(det.c.extended == 1).label("extensions"),
                count_if(det.c.out_of_hours == 1).label("out_of_hours"),
                count_if(det.c.repeat == 1).label("repeat_detentions"),
                count_if(det.c.mode == ConveyanceMode.POLICE_VEHICLE.value).label("police_vehicle"),
            )
        )
    ).one()
    detentions = integer(totals.detentions)

    durations = (await session.execute(nearest_rank(select(det.c.duration_hours), MEDIAN, P90))).one()
    response = (await session.execute(nearest_rank(select(det.c.ambulance_minutes), MEDIAN, P90))).one()
    within = (
        await session.execute(select(count_if(det.c.ambulance_minutes <= ambulance_standard_minutes)))
    ).scalar_one()
    reasons = (
        await session.execute(
            select(det.c.police_vehicle_reason, func.count())
            .where(det.c.mode == ConveyanceMode.POLICE_VEHICLE.value)
            .group_by(det.c.police_vehicle_reason)
            .order_by(func.count().desc(), det.c.police_vehicle_reason)
        )
    ).all()

    return {
        "totals": {
            "detentions": detentions,
            "ended": integer(totals.ended),
            "under_18": integer(totals.under_18),
            "under_18_in_police_station": integer(totals.under_18_in_police_station),
            "breaches": integer(totals.breaches),
            "extensions": integer(totals.extensions),
            "out_of_hours": integer(totals.out_of_hours),
            "out_of_hours_share": ratio(totals.out_of_hours, detentions),
            "repeat_detentions": integer(totals.repeat_detentions),
            "repeat_share": ratio(totals.repeat_detentions, detentions),
        },
        "by_place_of_safety": await _counts(session, det.c.place, PLACES),
        "duration_hours": {
            "ended": integer(durations[0]),
            "median": number(durations[1], 2),
            "p90": number(durations[2], 2),
        },
        "conveyance": await _counts(session, det.c.mode, MODES),
        "police_vehicle_reasons": [{"reason": reason, "count": integer(n)} for reason, n in reasons],
        "ambulance_response": {
            "standard_minutes": ambulance_standard_minutes,
            "measured": integer(response[0]),
            "median_minutes": number(response[1], 1),
            "p90_minutes": number(response[2], 1),
            "within_standard": integer(within),
            "within_standard_share": ratio(within, response[0]),
        },
        "outcomes": await _counts(session, det.c.outcome, OUTCOMES),
    }
