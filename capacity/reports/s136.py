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

The report is one statement (made once, `capacity.reports.common.Period`): a CTE of the period's
detentions, found from the episodes whose clock started in the period (never from all of an area's
history), and a UNION ALL of every figure over it (`figure`). The equality report counts the same CTE.

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
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    CompoundSelect,
    Exists,
    Integer,
    Select,
    SQLColumnExpression,
    Subquery,
    bindparam,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.holds.models import Conveyance
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Unit
from capacity.codes import ConveyanceMode, Outcome, PlaceType, PoliceVehicleReason, UnitKind, values
from capacity.reports.common import (
    Count,
    Figures,
    Period,
    ReportQuery,
    breakdown,
    counted,
    disclosed,
    figure,
    integer,
    number,
    percentiles,
    person_bands,
    person_counts,
    person_figures,
    protect,
    read_figures,
    share,
)
from capacity.reports.sql import count_if, london_hour, london_isodow, seconds_between, year_before

# A placement's place of safety is one of the first two (by its unit's kind), a detention's its place type.
PLACES = ("health_based_place_of_safety", "other_health_setting", *values(PlaceType))
MODES = (*values(ConveyanceMode), "not_recorded")
# An episode's outcome is never `transferred` (that ends a leg, not the episode).
OUTCOMES = (*(o for o in values(Outcome) if o != Outcome.TRANSFERRED), "not_recorded", "ongoing")
REASONS = (*values(PoliceVehicleReason), "not_recorded")
AMBULANCE_STANDARD = bindparam("ambulance_standard_minutes", type_=Integer())


def _first_legs(p: Period) -> Subquery:
    """The first leg of each episode whose clock started in the period, of a person from the areas: a
    placement at a unit or a detention elsewhere, whose id is the episode's. Found from the period's
    episodes (ix_detention_episodes_clock_started_at), never from all of an area's history."""
    ambulance = Conveyance.mode == ConveyanceMode.AMBULANCE.value
    first_placements = (
        select(
            Episode.id.label("episode_id"),
            Placement.home_area,
            Placement.person_ref,
            *person_bands(Placement.person_age, Placement.person_sex, Placement.person_ethnicity),
            case(
                (Unit.kind == UnitKind.S136_SUITE.value, literal("health_based_place_of_safety")),
                else_=literal("other_health_setting"),
            ).label("place"),
            func.coalesce(Conveyance.mode, "not_recorded").label("mode"),
            Conveyance.police_vehicle_reason.label("police_vehicle_reason"),
            case((ambulance, Conveyance.requested_at)).label("ambulance_requested_at"),
            case((ambulance, Conveyance.at_scene_at)).label("ambulance_at_scene_at"),
        )
        .select_from(Episode)
        .join(Placement, Placement.id == Episode.id)
        .join(Unit, Unit.id == Placement.unit_id)
        .outerjoin(Conveyance, Conveyance.hold_id == Placement.hold_id)
        .where(
            p.in_period(Episode.clock_started_at),
            Placement.id == Placement.detention_id,
            p.in_areas(Placement.home_area),
        )
    )
    d = S136Detention
    first_detentions = (
        select(
            Episode.id,
            d.home_area,
            d.person_ref,
            *person_bands(d.person_age, d.person_sex, d.person_ethnicity),
            d.place_type,
            func.coalesce(d.conveyance_mode, "not_recorded"),
            d.police_vehicle_reason,
            d.ambulance_requested_at,
            d.ambulance_at_scene_at,
        )
        .select_from(Episode)
        .join(d, d.id == Episode.id)
        .where(p.in_period(Episode.clock_started_at), d.id == d.detention_id, p.in_areas(d.home_area))
    )
    return union_all(first_placements, first_detentions).subquery("first_legs")


# The other legs and episodes the period's detentions look up. Made once: an alias costs its table's columns.
_SUITE, _SUITE_UNIT = aliased(Placement, name="suite"), aliased(Unit, name="suite_unit")
_ED, _STATION = aliased(S136Detention, name="ed"), aliased(S136Detention, name="station")
_EARLIER = aliased(Episode, name="earlier")
_EARLIER_PLACEMENT, _EARLIER_DETENTION = (
    aliased(Placement, name="earlier_placement"),
    aliased(S136Detention, name="earlier_detention"),
)


def _had_an_earlier_episode(first: Subquery, clock_start: SQLColumnExpression[datetime]) -> ColumnElement[bool]:
    """The person (the same reference and home area) had another episode whose clock started in the year
    before `clock_start`: looked up by person (ix_placements_first_leg_person, ix_s136_detentions_first_leg_person)."""
    earlier = _EARLIER

    def first_leg_of_an_earlier_episode(leg: Any) -> Exists:
        return exists().where(
            leg.home_area == first.c.home_area,
            leg.person_ref == first.c.person_ref,
            leg.id == leg.detention_id,
            earlier.id == leg.id,
            earlier.clock_started_at < clock_start,
            earlier.clock_started_at >= year_before(clock_start),
        )

    return or_(first_leg_of_an_earlier_episode(_EARLIER_PLACEMENT), first_leg_of_an_earlier_episode(_EARLIER_DETENTION))


def period_detentions(p: Period) -> CTE:
    """The period's detentions, one row each, with what the reports count about them."""
    first = _first_legs(p)
    e = Episode
    suite, suite_unit = _SUITE, _SUITE_UNIT
    reached_suite = (
        select(func.min(suite.started_at))
        .join(suite_unit, suite_unit.id == suite.unit_id)
        .where(suite.detention_id == e.id, suite_unit.kind == UnitKind.S136_SUITE.value)
        .scalar_subquery()
    )
    ed = _ED
    ed_seconds = (
        select(func.sum(seconds_between(ed.detained_at, ed.ended_at)))
        .where(ed.detention_id == e.id, ed.place_type == PlaceType.EMERGENCY_DEPARTMENT.value, ed.ended_at.is_not(None))
        .scalar_subquery()
    )
    station = _STATION
    child_in_station = exists().where(
        station.detention_id == e.id, station.place_type == PlaceType.POLICE_STATION.value, station.person_age < 18
    )
    hour = london_hour(e.clock_started_at)
    return (
        select(
            first.c.ethnicity,
            first.c.sex,
            first.c.age_band,
            first.c.place,
            first.c.mode,
            func.coalesce(first.c.police_vehicle_reason, "not_recorded").label("police_vehicle_reason"),
            e.ended_at,
            case((e.ended_at.is_(None), literal("ongoing")), else_=func.coalesce(e.outcome, "not_recorded")).label(
                "outcome"
            ),
            case((e.breached_at.is_not(None), 1), else_=0).label("breached"),
            case((e.extension_hours.is_not(None), 1), else_=0).label("extended"),
            (e.legs - 1).label("transfers"),
            case((child_in_station, 1), else_=0).label("child_in_police_station"),
            case((_had_an_earlier_episode(first, e.clock_started_at), 1), else_=0).label("repeat"),
            case((or_(london_isodow(e.clock_started_at) >= 6, hour < 9, hour >= 17), 1), else_=0).label("out_of_hours"),
            (seconds_between(e.clock_started_at, e.ended_at) / 3600.0).label("duration_hours"),
            (seconds_between(first.c.ambulance_requested_at, first.c.ambulance_at_scene_at) / 60.0).label(
                "ambulance_minutes"
            ),
            case(
                (
                    first.c.place != "health_based_place_of_safety",
                    seconds_between(e.clock_started_at, reached_suite) / 60.0,
                )
            ).label("to_suite_minutes"),
            (ed_seconds / 3600.0).label("ed_hours"),
        )
        .select_from(first)
        .join(e, e.id == first.c.episode_id)
        .cte("detentions")
    )


def detention_figures(det: CTE) -> list[Select[Any]]:
    """Every count the s136 and equality reports give of the period's detentions (`read_figures`), for
    the CAPACITY_AMBULANCE_STANDARD_MINUTES given as `AMBULANCE_STANDARD`."""
    totals: dict[str, ColumnElement[Any]] = {
        "detentions": func.count(),
        "ended": count_if(det.c.ended_at.is_not(None)),
        "under_18_in_police_station": count_if(det.c.child_in_police_station == 1),
        "breaches": count_if(det.c.breached == 1),
        "extensions": count_if(det.c.extended == 1),
        "out_of_hours": count_if(det.c.out_of_hours == 1),
        "repeat_detentions": count_if(det.c.repeat == 1),
        "transfers": func.coalesce(func.sum(det.c.transfers), 0),
        "transferred": count_if(det.c.transfers > 0),
        "ambulance_measured": count_if(det.c.ambulance_minutes.is_not(None)),
        "within_standard": count_if(det.c.ambulance_minutes <= AMBULANCE_STANDARD),
        "to_suite_measured": count_if(det.c.to_suite_minutes.is_not(None)),
        "ed_measured": count_if(det.c.ed_hours.is_not(None)),
    }
    police = det.c.mode == ConveyanceMode.POLICE_VEHICLE.value
    return [
        *(figure("totals", n, name).select_from(det) for name, n in totals.items()),
        *person_figures(det),
        breakdown("by_place", det.c.place, PLACES, PLACES[-1]),
        breakdown("conveyance", det.c.mode, MODES, MODES[-1]),
        breakdown("police_vehicle_reasons", det.c.police_vehicle_reason, REASONS, "other").where(police),
        breakdown("outcomes", det.c.outcome, OUTCOMES, Outcome.OTHER.value),
    ]


def _shown(cells: dict[str, Count]) -> dict[str, int | str]:
    return {key: count.shown for key, count in cells.items()}


# The totals that count some of the period's detentions (each at most the total).
WITHIN = (
    "breaches",
    "extensions",
    "out_of_hours",
    "repeat_detentions",
    "transferred",
    "ambulance_measured",
    "to_suite_measured",
    "ed_measured",
)


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


def detention_counts(figures: Figures) -> Detentions:
    """The detentions' counts out of `detention_figures`, protected together."""
    totals = {name: row.n for name, row in figures["totals"].items()}
    counts = Detentions(
        total=Count(totals["detentions"]),
        people=person_counts(figures),
        by_place=counted(figures, "by_place", PLACES),
        conveyance=counted(figures, "conveyance", MODES),
        police_vehicle_reasons=counted(figures, "police_vehicle_reasons", REASONS),
        outcomes=counted(figures, "outcomes", OUTCOMES),
        ended=Count(totals["ended"]),
        under_18_in_police_station=Count(totals["under_18_in_police_station"]),
        within={name: Count(totals[name]) for name in WITHIN},
        within_standard=Count(totals["within_standard"]),
        transfers=integer(totals["transfers"]),
    )
    total = counts.total
    for cells in (*counts.people.values(), counts.by_place, counts.conveyance):
        total.split(cells.values())
    counts.conveyance[ConveyanceMode.POLICE_VEHICLE.value].split(counts.police_vehicle_reasons.values())
    # Outcomes: those still detained, and those that ended by how.
    total.split([counts.outcomes["ongoing"], counts.ended])
    counts.ended.split(count for outcome, count in counts.outcomes.items() if outcome != "ongoing")
    counts.people["by_age_band"]["0-17"].includes(counts.under_18_in_police_station)
    total.includes(*counts.within.values())
    counts.within["ambulance_measured"].includes(counts.within_standard)
    protect(total)
    return counts


@cache
def _statement(all_areas: bool) -> CompoundSelect[Any]:
    """The whole report in one statement (`capacity.reports.common.Period`)."""
    det = period_detentions(Period(all_areas))
    return union_all(
        *detention_figures(det),
        percentiles("duration_hours", select(det.c.duration_hours)),
        percentiles("ambulance_minutes", select(det.c.ambulance_minutes)),
        percentiles("to_suite_minutes", select(det.c.to_suite_minutes)),
        percentiles("ed_hours", select(det.c.ed_hours)),
    )


async def s136_report(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> dict:
    bound = q.bound(ambulance_standard_minutes=ambulance_standard_minutes)
    figures = await read_figures(session, _statement(q.areas is None), bound)
    counts = detention_counts(figures)
    durations, response, to_suite, in_ed = (
        figures[name][None] for name in ("duration_hours", "ambulance_minutes", "to_suite_minutes", "ed_hours")
    )

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
        "duration_hours": {"ended": ended, "median": number(durations.median, 2), "p90": number(durations.p90, 2)},
        "conveyance": _shown(counts.conveyance),
        "police_vehicle_reasons": [
            {"reason": reason, "count": count.shown} for reason, count in counts.police_vehicle_reasons.items()
        ],
        "ambulance_response": {
            "standard_minutes": ambulance_standard_minutes,
            "measured": shown["ambulance_measured"],
            "median_minutes": number(response.median, 1),
            "p90_minutes": number(response.p90, 1),
            "within_standard": within_standard,
            "within_standard_share": share(within_standard, shown["ambulance_measured"]),
        },
        "to_health_based_place_of_safety": {
            "measured": shown["to_suite_measured"],
            "median_minutes": number(to_suite.median, 1),
            "p90_minutes": number(to_suite.p90, 1),
        },
        "emergency_department_hours": {
            "measured": shown["ed_measured"],
            "median": number(in_ed.median, 2),
            "p90": number(in_ed.p90, 2),
        },
        "outcomes": _shown(counts.outcomes),
    }
