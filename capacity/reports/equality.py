"""Equality monitoring: s136 detentions and placements by ethnic category, sex and age band.

Detentions are those of the s136 report; placements are all placements (any unit, any legal basis) of
people from the areas that started in the period. Each is broken down by NHS ethnic category (no
category recorded: `not_known`), by sex and by age band (0-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+).

Disclosure control (`capacity.reports.common`, the MHSDS rule): every count here, the totals too, is 0,
"*" (1 to 7) or rounded to the nearest 5, with secondary suppression where the published figures would
still pin a "*" to one value. The detentions are protected together with every count the s136 report
gives of the same people (`s136.detention_counts`), so that the two reports of a period show the same
figures and neither undoes the other's "*".
"""

from __future__ import annotations

from sqlalchemy import Subquery, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.placements.models import Placement
from capacity.reports.common import PERSON_BREAKDOWNS, Count, ReportQuery, coded, person_bands, protect
from capacity.reports.s136 import detention_counts


async def _placement_counts(session: AsyncSession, placed: Subquery) -> tuple[Count, dict[str, dict[str, Count]]]:
    total = Count((await session.execute(select(func.count()).select_from(placed))).scalar_one())
    breakdowns: dict[str, dict[str, Count]] = {}
    for name, column, keys in PERSON_BREAKDOWNS:
        key = coded(placed.c[column], keys, keys[-1])
        found: dict[str, int] = dict((await session.execute(select(key, func.count()).group_by(key))).all())
        breakdowns[name] = {k: Count(found.get(k)) for k in keys}
        total.split(breakdowns[name].values())
    protect(total)
    return total, breakdowns


def _published(total: Count, breakdowns: dict[str, dict[str, Count]]) -> dict:
    return {
        "total": total.shown,
        **{name: {key: count.shown for key, count in cells.items()} for name, cells in breakdowns.items()},
    }


async def equality_report(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> dict:
    detentions = await detention_counts(session, q, ambulance_standard_minutes)
    placed = (
        select(*person_bands(Placement.person_age, Placement.person_sex, Placement.person_ethnicity))
        .where(q.in_areas(Placement.home_area), q.in_period(Placement.started_at))
        .subquery("placed")
    )
    return {
        "detentions": _published(detentions.total, detentions.people),
        "placements": _published(*await _placement_counts(session, placed)),
    }
