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

from functools import cache
from typing import Any

from sqlalchemy import CompoundSelect, func, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.placements.models import Placement
from capacity.reports.common import (
    Count,
    Figures,
    Period,
    ReportQuery,
    figure,
    person_bands,
    person_counts,
    person_figures,
    protect,
    read_figures,
)
from capacity.reports.s136 import detention_counts, detention_figures, period_detentions


def _placement_counts(figures: Figures) -> tuple[Count, dict[str, dict[str, Count]]]:
    total = Count(figures["placements"]["total"].n)
    breakdowns = person_counts(figures, "placements_")
    for cells in breakdowns.values():
        total.split(cells.values())
    protect(total)
    return total, breakdowns


def _published(total: Count, breakdowns: dict[str, dict[str, Count]]) -> dict:
    return {
        "total": total.shown,
        **{name: {key: count.shown for key, count in cells.items()} for name, cells in breakdowns.items()},
    }


@cache
def _statement(all_areas: bool) -> CompoundSelect[Any]:
    """Both populations' counts in one statement (`capacity.reports.common.Period`)."""
    p = Period(all_areas)
    placed = (
        select(*person_bands(Placement.person_age, Placement.person_sex, Placement.person_ethnicity))
        .where(p.in_areas(Placement.home_area), p.in_period(Placement.started_at))
        .cte("placed")
    )
    return union_all(
        *detention_figures(period_detentions(p)),
        figure("placements", func.count(), "total").select_from(placed),
        *person_figures(placed, "placements_"),
    )


async def equality_report(session: AsyncSession, q: ReportQuery, ambulance_standard_minutes: int) -> dict:
    bound = q.bound(ambulance_standard_minutes=ambulance_standard_minutes)
    figures = await read_figures(session, _statement(q.areas is None), bound)
    detentions = detention_counts(figures)
    return {
        "detentions": _published(detentions.total, detentions.people),
        "placements": _published(*_placement_counts(figures)),
    }
