"""Section 136 activity: detentions (episodes) at every kind of place of safety, durations, breaches,
transfers, conveyance.

A detention is an episode (`Episode`): one s135 or s136 detention with one clock, whatever places of
safety it passed through, of a person from the areas reported on, whose clock started on a local date of
the period. What it is counted by comes from its first leg (whose id the episode has): the person, the
place of safety (a placement at a 136 suite is `health_based_place_of_safety`, at any other unit
`other_health_setting`, a detention elsewhere its `place_type`) and the conveyance there.

- duration: clock start to the episode's end, in hours, of those that have ended; median and 90th
  percentile by the nearest-rank method (`reports.sql`);
- breaches and extensions: the episode's; transfers: its legs after the first (never a repeat);
- conveyance: a placement's mode is that of its hold's conveyance, a detention's its `conveyance_mode`;
  `not_recorded` when there is none. Police vehicle use is counted per stated reason;
- ambulance response: request to at scene in minutes, where both are recorded (for a placement, when
  the conveyance was by ambulance); median and the share within CAPACITY_AMBULANCE_STANDARD_MINUTES;
- to a health-based place of safety: for episodes that started elsewhere and reached a 136 suite, the
  minutes from the clock's start to arrival at the first suite;
- in an emergency department: for episodes with an ended leg at one, the hours spent there;
- no further action: episodes that ended `discharged` (no admission, no referral);
- under 18 in a police station: episodes with a leg at one of a person under 18 (a never event);
- repeat detentions: detentions of the period whose person (same pseudonymous reference and home area)
  had another episode whose clock started in the year before this one's (29 February counts back to
  28 February); only counts leave the database;
- out of hours: the clock started outside Monday to Friday 09:00-17:00 local time (17:00 is out of hours).

Disclosure control (`capacity.reports.common`): every count here is of the same people the equality
report breaks down by ethnicity, sex and age band, and under 18 is itself an age band; any exact count
of them (by place, by conveyance, by outcome) would give away the total those breakdowns add up to. So
every count is 0, "*" (1 to 7) or rounded to the nearest 5, all protected together with the equality
report's detentions (`detention_counts`); shares are of the published counts (none of a "*"); medians
and percentiles are not counts. Only codes leave the database: a value outside its codes is counted
as `other` (or `not_recorded`), never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import CTE, SQLColumnExpression, case, exists, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.holds.models import Conveyance
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Unit
from capacity.codes import ConveyanceMode, Outcome, PlaceType, PoliceVehicleReason, UnitKind, values
from capacity.reports.common import (
    PERSON_BREAKDOWNS,
    Count,
    ReportQuery,
    coded,
    disclosed,
    integer,
    number,
    person_bands,
    protect,
    share,
)
from capacity.reports.sql import count_if, london_hour, london_isodow, nearest_rank, seconds_between, year_before

# A placement's place of safety is one of the first two (by its unit's kind), a detention's its place type.
PLACES = ("health_based_place_of_safety", "other_health_setting", *values(PlaceType))
MODES = (*values(ConveyanceMode), "not_recorded")
# An episode's outcome is never `transferred` (that ends a leg, not the episode).
OUTCOMES = (*(o for o in values(Outcome) if o != Outcome.TRANSFERRED), "not_recorded", "ongoing")
REASONS = (*values(PoliceVehicleReason), "not_recorded")
MEDIAN, P90 = (1, 2), (9, 10)


def _all_detentions(q: ReportQuery) -> CTE:
    """Every episode of the areas whose clock started in the period or the year (and a day) before it:
    the period's detentions and those that can make them repeats."""
    since = q.start - timedelta(days=367)
    ambulance = Conveyance.mode == ConveyanceMode.AMBULANCE.value
    first_placements = (
        select(
            Placement.detention_id.label("episode_id"),
            Placement.home_area,
            Placement.person_ref,
            Placement.person_age.label("age"),
            Placement.person_sex.label("sex"),
            Placement.person_ethnicity.label("ethnicity"),
            case(
                (Unit.kind == UnitKind.S136_SUITE.value, literal("health_based_place_of_safety")),
                else_=literal("other_health_setting"),
            ).label("place"),
            func.coalesce(Conveyance.mode, "not_recorded").label("mode"),
            Conveyance.police_vehicle_reason.label("police_vehicle_reason"),
            case((ambulance, Conveyance.requested_at)).label("ambulance_requested_at"),
            case((ambulance, Conveyance.at_scene_at)).label("ambulance_at_scene_at"),
        )
        .select_from(Placement)
        .join(Unit, Unit.id == Placement.unit_id)
        .outerjoin(Conveyance, Conveyance.hold_id == Placement.hold_id)
        .where(Placement.id == Placement.detention_id, q.in_areas(Placement.home_area))
    )
    d = S136Detention
    first_detentions = select(
        d.detention_id,
        d.home_area,
        d.person_ref,
        d.person_age,
        d.person_sex,
        d.person_ethnicity,
        d.place_type,
        func.coalesce(d.conveyance_mode, "not_recorded"),
        d.police_vehicle_reason,
        d.ambulance_requested_at,
        d.ambulance_at_scene_at,
    ).where(d.id == d.detention_id, q.in_areas(d.home_area))
    first = union_all(first_placements, first_detentions).subquery("first_legs")
    e = Episode
    suite = aliased(Placement)
    suite_unit = aliased(Unit)
    reached_suite = (
        select(func.min(suite.started_at))
        .join(suite_unit, suite_unit.id == suite.unit_id)
        .where(suite.detention_id == e.id, suite_unit.kind == UnitKind.S136_SUITE.value)
        .scalar_subquery()
    )
    ed = aliased(S136Detention)
    ed_seconds = (
        select(func.sum(seconds_between(ed.detained_at, ed.ended_at)))
        .where(ed.detention_id == e.id, ed.place_type == PlaceType.EMERGENCY_DEPARTMENT.value, ed.ended_at.is_not(None))
        .scalar_subquery()
    )
    station = aliased(S136Detention)
    child_in_station = exists().where(
        station.detention_id == e.id, station.place_type == PlaceType.POLICE_STATION.value, station.person_age < 18
    )
    return (
        select(
            *first.c,
            e.clock_started_at.label("clock_start"),
            e.ended_at.label("ended_at"),
            e.outcome.label("outcome"),
            case((e.breached_at.is_not(None), 1), else_=0).label("breached"),
            case((e.extension_hours.is_not(None), 1), else_=0).label("extended"),
            (e.legs - 1).label("transfers"),
            case((child_in_station, 1), else_=0).label("child_in_police_station"),
            case(
                (first.c.place != "health_based_place_of_safety", seconds_between(e.clock_started_at, reached_suite))
            ).label("to_suite_seconds"),
            ed_seconds.label("ed_seconds"),
        )
        .join(e, e.id == first.c.episode_id)
        .where(e.clock_started_at >= since, e.clock_started_at < q.end)
        .cte("all_detentions")
    )


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
            every.c.transfers,
            every.c.child_in_police_station,
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
            (every.c.to_suite_seconds / 60.0).label("to_suite_minutes"),
            (every.c.ed_seconds / 3600.0).label("ed_hours"),
        )
        .where(q.in_period(every.c.clock_start))
        .cte("detentions")
    )


async def _counts(
    session: AsyncSession, column: SQLColumnExpression[Any], keys: tuple[str, ...], otherwise: str | None = None
) -> dict[str, Count]:
    """One count per code, in the codes' order; a value that is none of them (there should be none) is
    counted as `otherwise` (the last code unless told), so that only codes leave the database."""
    key = coded(column, keys, otherwise or keys[-1])
    found: dict[str, int] = dict((await session.execute(select(key, func.count()).group_by(key))).all())
    return {k: Count(found.get(k)) for k in keys}


def _shown(cells: dict[str, Count]) -> dict[str, int | str]:
    return {key: count.shown for key, count in cells.items()}


@dataclass
class Detentions:
    """The period's detentions as the counts the s136 and equality reports publish. They are all counts of
    the same people, tied together as a `Count` tree (`total` split by each breakdown, counts of some of
    them within it) and protected together, so that both reports show the same figures for the same
    counts and no figure of one undoes a "*" of the other."""

    total: Count
    people: dict[str, dict[str, Count]]  # by_ethnicity, by_sex, by_age_band
    by_place: dict[str, Count]
    conveyance: dict[str, Count]
    police_vehicle_reasons: dict[str, Count]
    outcomes: dict[str, Count]
    ended: Count
    under_18_in_police_station: Count
    within: dict[str, Count]  # breaches, extensions, ... (each at most the total)
    within_standard: Count  # at most the ambulance responses measured
    transfers: int  # moves between places, not people: rounded alone


async def detention_counts(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> Detentions:
    det = period_detentions(q)
    totals = (
        await session.execute(
            select(
                func.count().label("detentions"),
                count_if(det.c.ended_at.is_not(None)).label("ended"),
                count_if(det.c.child_in_police_station == 1).label("under_18_in_police_station"),
                count_if(det.c.breached == 1).label("breaches"),
                count_if(det.c.extended == 1).label("extensions"),
                count_if(det.c.out_of_hours == 1).label("out_of_hours"),
                count_if(det.c.repeat == 1).label("repeat_detentions"),
                func.coalesce(func.sum(det.c.transfers), 0).label("transfers"),
                count_if(det.c.transfers > 0).label("transferred"),
                count_if(det.c.ambulance_minutes.is_not(None)).label("ambulance_measured"),
                count_if(det.c.ambulance_minutes <= ambulance_standard_minutes).label("within_standard"),
                count_if(det.c.to_suite_minutes.is_not(None)).label("to_suite_measured"),
                count_if(det.c.ed_hours.is_not(None)).label("ed_measured"),
            )
        )
    ).one()
    people = select(*person_bands(det.c.age, det.c.sex, det.c.ethnicity)).subquery("detained")
    breakdowns = {name: await _counts(session, people.c[column], keys) for name, column, keys in PERSON_BREAKDOWNS}
    police = select(det.c.police_vehicle_reason).where(det.c.mode == ConveyanceMode.POLICE_VEHICLE.value).subquery()
    counts = Detentions(
        total=Count(totals.detentions),
        people=breakdowns,
        by_place=await _counts(session, det.c.place, PLACES),
        conveyance=await _counts(session, det.c.mode, MODES),
        police_vehicle_reasons=await _counts(session, police.c.police_vehicle_reason, REASONS, "other"),
        outcomes=await _counts(session, det.c.outcome, OUTCOMES, Outcome.OTHER.value),
        ended=Count(totals.ended),
        under_18_in_police_station=Count(totals.under_18_in_police_station),
        within={
            name: Count(getattr(totals, name))
            for name in (
                "breaches",
                "extensions",
                "out_of_hours",
                "repeat_detentions",
                "transferred",
                "ambulance_measured",
                "to_suite_measured",
                "ed_measured",
            )
        },
        within_standard=Count(totals.within_standard),
        transfers=integer(totals.transfers),
    )
    total = counts.total
    for cells in (*breakdowns.values(), counts.by_place, counts.conveyance):
        total.split(cells.values())
    counts.conveyance[ConveyanceMode.POLICE_VEHICLE.value].split(counts.police_vehicle_reasons.values())
    # Outcomes: those still detained, and those that ended by how.
    total.split([counts.outcomes["ongoing"], counts.ended])
    counts.ended.split(count for outcome, count in counts.outcomes.items() if outcome != "ongoing")
    breakdowns["by_age_band"]["0-17"].includes(counts.under_18_in_police_station)
    total.includes(*counts.within.values())
    counts.within["ambulance_measured"].includes(counts.within_standard)
    protect(total)
    return counts


async def s136_report(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> dict:
    counts = await detention_counts(session, q, ambulance_standard_minutes)
    det = period_detentions(q)
    durations = (await session.execute(nearest_rank(select(det.c.duration_hours), MEDIAN, P90))).one()
    response = (await session.execute(nearest_rank(select(det.c.ambulance_minutes), MEDIAN, P90))).one()
    to_suite = (await session.execute(nearest_rank(select(det.c.to_suite_minutes), MEDIAN, P90))).one()
    in_ed = (await session.execute(nearest_rank(select(det.c.ed_hours), MEDIAN, P90))).one()

    shown = {name: count.shown for name, count in counts.within.items()}
    detentions, ended = counts.total.shown, counts.ended.shown
    no_further_action = counts.outcomes[Outcome.DISCHARGED.value].shown
    within_standard = counts.within_standard.shown
    return {
        "totals": {
            "detentions": detentions,
            "ended": ended,
            "under_18": counts.people["by_age_band"]["0-17"].shown,
            "under_18_in_police_station": counts.under_18_in_police_station.shown,
            "breaches": shown["breaches"],
            "extensions": shown["extensions"],
            "out_of_hours": shown["out_of_hours"],
            "out_of_hours_share": share(shown["out_of_hours"], detentions),
            "repeat_detentions": shown["repeat_detentions"],
            "repeat_share": share(shown["repeat_detentions"], detentions),
            "transfers": disclosed(counts.transfers),
            "transferred": shown["transferred"],
            "no_further_action": no_further_action,
            "no_further_action_share": share(no_further_action, ended),
        },
        "by_place_of_safety": _shown(counts.by_place),
        "duration_hours": {"ended": ended, "median": number(durations[1], 2), "p90": number(durations[2], 2)},
        "conveyance": _shown(counts.conveyance),
        "police_vehicle_reasons": [
            {"reason": reason, "count": count.shown} for reason, count in counts.police_vehicle_reasons.items()
        ],
        "ambulance_response": {
            "standard_minutes": ambulance_standard_minutes,
            "measured": shown["ambulance_measured"],
            "median_minutes": number(response[1], 1),
            "p90_minutes": number(response[2], 1),
            "within_standard": within_standard,
            "within_standard_share": share(within_standard, shown["ambulance_measured"]),
        },
        "to_health_based_place_of_safety": {
            "measured": shown["to_suite_measured"],
            "median_minutes": number(to_suite[1], 1),
            "p90_minutes": number(to_suite[2], 1),
        },
        "emergency_department_hours": {
            "measured": shown["ed_measured"],
            "median": number(in_ed[1], 2),
            "p90": number(in_ed[2], 2),
        },
        "outcomes": _shown(counts.outcomes),
    }
