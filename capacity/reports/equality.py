"""Equality monitoring: s136 detentions and placements by ethnic category, sex and age band, suppressed.

Detentions are those of the s136 report; placements are all placements (any unit, any legal basis) of
people from the areas that started in the period. Each is broken down by NHS ethnic category (no
category recorded: `not_known`), by sex and by age band (0-17, 18-24, 25-34, 35-44, 45-54, 55-64, 65+).

Disclosure control (DOMAIN.md "Person data"): in each breakdown a count of 1 to 4 is shown as "*".
Secondary suppression: if exactly one cell of a breakdown is suppressed, it could be worked out as the
total minus the others, so the smallest non-zero cell left (the first in the listed order, on a tie) is
suppressed too. Zero stays 0; the total is always shown.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Label, SQLColumnExpression, Subquery, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.placements.models import Placement
from capacity.codes import Ethnicity, PersonSex, values
from capacity.reports.common import ReportQuery, integer
from capacity.reports.s136 import period_detentions

ETHNIC_CATEGORIES = (*values(Ethnicity), "not_known")
SEXES = values(PersonSex)
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
SUPPRESSED = "*"
SMALLEST_SHOWN = 5


def suppress(cells: dict[str, int]) -> dict[str, int | str]:
    """Counts of 1-4 become "*"; if that hides exactly one cell, the next smallest non-zero one goes too."""
    hidden = {key for key, n in cells.items() if 0 < n < SMALLEST_SHOWN}
    if len(hidden) == 1:
        shown = [(n, index, key) for index, (key, n) in enumerate(cells.items()) if n > 0 and key not in hidden]
        if shown:
            hidden.add(min(shown)[2])
    return {key: SUPPRESSED if key in hidden else n for key, n in cells.items()}


def _people(
    age: SQLColumnExpression[Any], sex: SQLColumnExpression[Any], ethnicity: SQLColumnExpression[Any]
) -> tuple[Label[Any], Label[Any], Label[str]]:
    return (
        func.coalesce(ethnicity, "not_known").label("ethnicity"),
        sex.label("sex"),
        case(
            (age < 18, "0-17"),
            (age < 25, "18-24"),
            (age < 35, "25-34"),
            (age < 45, "35-44"),
            (age < 55, "45-54"),
            (age < 65, "55-64"),
            else_="65+",
        ).label("age_band"),
    )


async def _breakdowns(session: AsyncSession, people: Subquery) -> dict:
    async def by(column: SQLColumnExpression[Any], keys: tuple[str, ...]) -> dict[str, int | str]:
        found: dict[str, int] = dict((await session.execute(select(column, func.count()).group_by(column))).all())
        cells = {**{key: 0 for key in keys}, **{key: integer(n) for key, n in sorted(found.items())}}
        return suppress(cells)

    count = (await session.execute(select(func.count()).select_from(people))).scalar_one()
    return {
        "total": integer(count),
        "by_ethnicity": await by(people.c.ethnicity, ETHNIC_CATEGORIES),
        "by_sex": await by(people.c.sex, SEXES),
        "by_age_band": await by(people.c.age_band, AGE_BANDS),
    }


async def equality_report(session: AsyncSession, q: ReportQuery) -> dict:
    det = period_detentions(q)
    detained = select(*_people(det.c.age, det.c.sex, det.c.ethnicity)).subquery("detained")
    placed = (
        select(*_people(Placement.person_age, Placement.person_sex, Placement.person_ethnicity))
        .where(q.in_areas(Placement.home_area), q.in_period(Placement.started_at))
        .subquery("placed")
    )
    return {
        "detentions": await _breakdowns(session, detained),
        "placements": await _breakdowns(session, placed),
    }
