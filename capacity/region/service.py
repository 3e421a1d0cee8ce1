"""One region's status now: what a regional sitrep reports, from the same figures every page shows.

A region is the areas whose `region` it is. Its units are the active units standing in those areas; their
places come from the one availability calculator (`figures`), so they are what GET /api/units says of
each unit. The people counted are those whose home area is in the region: s136 episodes with an open leg
at an emergency department (waiting there for a place of safety, for as long as the episode's clock has
run), and out-of-area placements active now, as the out-of-area report counts them. Only counts,
minutes and codes leave: never a person, a reference or an id of anything about a person.

- open places: of open units (a closed unit's places are none); held, occupied and available as the
  calculator gives them; closed and stale units by kind;
- an empty 136 suite: open, no one placed there and no live hold on it;
- providers at OPEL 3 or 4: those running a unit in the region whose latest level is 3 or 4 (stale or not,
  flagged), and how many of the region's providers' declarations are stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from capacity.auth.scope import report_areas
from capacity.auth.security import Actor
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.escalation.service import escalation_of
from capacity.booking.units.availability import UnitFigures, figures
from capacity.booking.units.models import Area, Provider, Unit
from capacity.codes import ESCALATED_LEVELS, KINDS, PlaceType, UnitKind
from capacity.db.engine import Database
from capacity.db.unit_of_work import Reading
from capacity.errors import Forbidden, Invalid
from capacity.reports.common import ReportQuery
from capacity.reports.out_of_area import out_of_area_totals
from capacity.reports.sql import london_date_of


async def region_areas(reading: Reading, actor: Actor, region: str) -> list[Area]:
    """The region's areas, if the caller may see it: an admin any region, a commissioner the regions of
    their own areas (scope.report_areas), 403 for another; 422 naming `region` for no such region."""
    areas = list((await reading.session.scalars(select(Area).where(Area.region == region).order_by(Area.code))).all())
    if not areas:
        raise Invalid(f"no region named {region!r}", field="region")
    own = report_areas(actor, None)
    if own is not None and not set(own) & {a.code for a in areas}:
        raise Forbidden(f"a commissioner sees only the regions of their own areas ({', '.join(own)})")
    return areas


def _places(kind: str, found: Sequence[UnitFigures]) -> dict[str, Any]:
    return {
        "kind": kind,
        "units": len(found),
        "open_places": sum(f.unit.open_places for f in found if f.unit.status == "open"),
        "held": sum(f.held for f in found),
        "occupied": sum(f.occupied for f in found),
        "available": sum(f.available for f in found),
        "closed_units": sum(1 for f in found if f.unit.status != "open"),
        "stale_units": sum(1 for f in found if f.stale),
    }


def _is_empty_suite(f: UnitFigures) -> bool:
    return f.unit.kind == UnitKind.S136_SUITE and f.unit.status == "open" and f.occupied == 0 and f.held == 0


async def _waiting_in_ed(reading: Reading, home_areas: Sequence[str]) -> list[dict[str, Any]]:
    """Open s136 legs at an emergency department, longest waiting first, timed by the episode's clock."""
    rows = await reading.session.execute(
        select(S136Detention.home_area, Episode.clock_started_at, Episode.deadline, Episode.breached_at)
        .join(Episode, Episode.id == S136Detention.detention_id)
        .where(
            S136Detention.place_type == PlaceType.EMERGENCY_DEPARTMENT.value,
            S136Detention.ended_at.is_(None),
            Episode.ended_at.is_(None),
            S136Detention.home_area.in_(home_areas),
        )
        .order_by(Episode.clock_started_at, S136Detention.home_area)
    )
    return [
        {
            "n": n,
            "home_area": row.home_area,
            "waiting_minutes": int((reading.now - row.clock_started_at).total_seconds() // 60),
            "clock_started_at": row.clock_started_at.isoformat(),
            "deadline": row.deadline.isoformat(),
            "breached": row.breached_at is not None,
        }
        for n, row in enumerate(rows, start=1)
    ]


async def region_status(db: Database, actor: Actor, region: str) -> dict[str, Any]:
    async with db.read() as reading:
        session, now = reading.session, reading.now
        areas = await region_areas(reading, actor, region)
        codes = [a.code for a in areas]
        units = (
            await session.scalars(
                select(Unit).where(Unit.area_code.in_(codes), Unit.active.is_(True)).order_by(Unit.name)
            )
        ).all()
        found = list((await figures(reading, units)).values())
        providers = (
            await session.scalars(
                select(Provider).where(Provider.id.in_({u.provider_id for u in units})).order_by(Provider.name)
            )
        ).all()
        levels = {p.id: escalation_of(p, now, reading.settings) for p in providers}
        waiting = await _waiting_in_ed(reading, codes)
        today = london_date_of(now)
        oaps = await out_of_area_totals(session, ReportQuery(today, today, tuple(codes), now))

    escalated = [
        {
            "provider_id": p.id,
            "name": p.name,
            "escalation_level": levels[p.id].level,
            "escalation_at": p.escalation_at.isoformat(),
            "escalation_stale": levels[p.id].stale,
        }
        for p in providers
        if p.escalation_at is not None and levels[p.id].level in ESCALATED_LEVELS
    ]
    stale_units = [
        {
            "unit_id": f.unit.id,
            "name": f.unit.name,
            "kind": f.unit.kind,
            "last_confirmed_at": f.unit.last_confirmed_at.isoformat(),
        }
        for f in found
        if f.stale
    ]
    by_kind = [_places(kind, [f for f in found if f.unit.kind == kind]) for kind in KINDS]
    totals = _places("all", found)
    del totals["kind"]
    return {
        "region": region,
        "at": now.isoformat(),
        "areas": [{"code": a.code, "name": a.name} for a in areas],
        "totals": {
            **totals,
            "s136_suites_empty": sum(1 for f in found if _is_empty_suite(f)),
            "providers_at_level_3_4": len(escalated),
            "escalations_stale": sum(1 for p in providers if levels[p.id].stale),
            "waiting_in_ed_s136": len(waiting),
            "longest_ed_wait_minutes": max((w["waiting_minutes"] for w in waiting), default=None),
            "out_of_area_active": oaps["totals"]["active_at_end"],
        },
        "places_by_kind": by_kind,
        "stale_units": stale_units,
        "providers_at_level_3_4": escalated,
        "waiting_in_ed_s136": waiting,
    }
