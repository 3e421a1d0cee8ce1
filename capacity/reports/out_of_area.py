"""Out-of-area placements (OAPs), measured as NHS statistics publish them (DOMAIN.md).

An OAP is a placement recorded `out_of_area` (its unit's provider is not in the home area's local
network) in an inpatient bed (`acute_adult`, `acute_older_adult`, `picu`), of a person whose home area is
reported on. It is *inappropriate* when its reason is `10` (unavailable bed at the referring
organisation). For the period (local dates `from`..`to`):

- started / ended: the start / end instant falls on a local date of the period;
- active_at_end: started by the end of `to` and not ended by then (ended_at null or after local midnight
  ending `to`);
- bed_days: nights in the period that have passed (see `reports.sql`); cost: each night at the placement's
  daily cost;
- private_share: the share of bed days in providers of the private sector;
- length_bands: OAPs that ended in the period, by their whole length in nights (a stay that ended on the
  day it started, 0 nights, counts as 1-7);
- distance_bands: OAPs that started in the period, by distance from the home area's centre in km, each
  band including its lower bound (`25-50` is 25 <= d < 50).

Every figure is aggregated in one CTE of the OAPs that overlap the period, grouped per breakdown, all in one
statement (a UNION ALL over the CTE, which both engines read once), made once (`capacity.reports.common.Period`).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    CompoundSelect,
    Label,
    Row,
    Select,
    SQLColumnExpression,
    String,
    case,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Area, Provider, Unit
from capacity.codes import ACUTE_KINDS, INAPPROPRIATE_OAP_REASON, OapReason, values
from capacity.reports.common import Period, ReportQuery, banded, coded, integer, money, ratio
from capacity.reports.sql import nights_in, stay_nights, total

INAPPROPRIATE = INAPPROPRIATE_OAP_REASON.value
# NHS Data Dictionary, "referred out of area reason".
OAP_REASONS = {
    reason.value: f"{reason.label} (inappropriate)" if reason == INAPPROPRIATE else reason.label for reason in OapReason
}
LENGTH_BANDS = ("1-7", "8-14", "15-30", "31-90", "91+")
DISTANCE_BANDS = ("<25", "25-50", "50-100", "100-200", "200-300", "300+")


def _oaps(p: Period) -> CTE:
    """One row per OAP that overlaps the period, with its measures for the period."""
    nights = nights_in(Placement.started_at, Placement.ended_at, p.first, p.nights_after)
    length = stay_nights(Placement.started_at, Placement.ended_at)
    distance = Placement.distance_km
    return (
        select(
            coded(Placement.oap_reason, values(OapReason), "not_recorded").label("reason"),
            Placement.home_area.label("area_code"),
            Area.name.label("area_name"),
            Provider.id.label("provider_id"),
            Provider.name.label("provider_name"),
            Provider.sector.label("sector"),
            Unit.kind.label("kind"),
            case((p.in_period(Placement.started_at), 1), else_=0).label("started"),
            case((p.in_period(Placement.ended_at), 1), else_=0).label("ended"),
            case((or_(Placement.ended_at.is_(None), Placement.ended_at > p.end), 1), else_=0).label("active"),
            nights.label("nights"),
            (nights * Placement.daily_cost).label("cost"),
            case((Provider.sector == "private", nights), else_=0).label("private_nights"),
            case((Placement.oap_reason == INAPPROPRIATE, 1), else_=0).label("inappropriate"),
            # Whole nights: a stay below 8 nights is 1-7 long. An OAP not yet ended has no length.
            banded(length, (8, 15, 31, 91), LENGTH_BANDS, (Placement.ended_at.is_(None), None)).label("length_band"),
            banded(distance, (25, 50, 100, 200, 300), DISTANCE_BANDS, (distance.is_(None), "not_known")).label(
                "distance_band"
            ),
        )
        .select_from(Placement)
        .join(Unit, Unit.id == Placement.unit_id)
        .join(Provider, Provider.id == Unit.provider_id)
        .join(Area, Area.code == Placement.home_area)
        .where(
            Placement.out_of_area.is_(True),
            Unit.kind.in_(sorted(ACUTE_KINDS)),
            p.in_areas(Placement.home_area),
            Placement.started_at < p.end,
            or_(Placement.ended_at.is_(None), Placement.ended_at >= p.start),
        )
        .cte("oap")
    )


MEASURES = ("started", "ended", "active_at_end", "bed_days", "cost")
# Each breakdown's grouping keys, in the order its rows are sorted; the totals have none.
BREAKDOWNS: dict[str, tuple[str, ...]] = {
    "totals": (),
    "by_reason": ("reason",),
    "by_sending_area": ("area_code", "area_name"),
    "by_receiving_provider": ("provider_name", "provider_id", "sector"),
    "by_bed_type": ("kind",),
    "length_bands": ("length_band",),
    "distance_bands": ("distance_band",),
}
KEYS = max(len(keys) for keys in BREAKDOWNS.values())


def _measures(oap: CTE, only: ColumnElement[bool] | None = None, prefix: str = "") -> list[Label[Any]]:
    def summed(column: SQLColumnExpression[Any]) -> ColumnElement[Any]:
        return total(column if only is None else case((only, column), else_=0))

    return [
        summed(oap.c.started).label(f"{prefix}started"),
        summed(oap.c.ended).label(f"{prefix}ended"),
        summed(oap.c.active).label(f"{prefix}active_at_end"),
        summed(oap.c.nights).label(f"{prefix}bed_days"),
        summed(oap.c.cost).label(f"{prefix}cost"),
    ]


def _grouped(oap: CTE, breakdown: str) -> Select:
    """One breakdown's rows: its name, its keys (padded with NULLs to KEYS), and every measure."""
    keys = [oap.c[name] for name in BREAKDOWNS[breakdown]]
    padding = [null() for _ in range(KEYS - len(keys))]
    stmt = select(
        literal_column(f"'{breakdown}'", String).label("breakdown"),
        *(key.label(f"k{i}") for i, key in enumerate([*keys, *padding])),
        *_measures(oap),
        total(oap.c.private_nights).label("private_nights"),
        *_measures(oap, oap.c.inappropriate == 1, prefix="inappropriate_"),
    )
    return stmt.group_by(*keys) if keys else stmt


def _figures(row: Row, prefix: str = "") -> dict:
    return {name: (money if name == "cost" else integer)(getattr(row, prefix + name)) for name in MEASURES}


@cache
def _totals(all_areas: bool) -> Select:
    return _grouped(_oaps(Period(all_areas)), "totals")


@cache
def _report(all_areas: bool) -> CompoundSelect:
    """Every breakdown of the one CTE, as one UNION ALL sorted by breakdown and keys (so each breakdown's
    rows come in the order its keys sort in on the engine)."""
    oap = _oaps(Period(all_areas))
    return union_all(*(_grouped(oap, name) for name in BREAKDOWNS)).order_by(
        "breakdown", *(f"k{i}" for i in range(KEYS))
    )


async def out_of_area_totals(session: AsyncSession, q: ReportQuery) -> dict:
    """The report's `totals` and `inappropriate` figures alone (one query): what the monthly trend shows."""
    totals = (await session.execute(_totals(q.areas is None), q.bound())).one()
    return {"totals": _figures(totals), "inappropriate": _figures(totals, "inappropriate_")}


async def out_of_area_report(session: AsyncSession, q: ReportQuery) -> dict:
    """The whole report in one statement (`_report`)."""
    rows: dict[str, list[Row]] = {name: [] for name in BREAKDOWNS}
    for row in (await session.execute(_report(q.areas is None), q.bound())).all():
        rows[row.breakdown].append(row)

    (totals,) = rows["totals"]
    all_figures, inappropriate_figures = _figures(totals), _figures(totals, "inappropriate_")
    bed_days = integer(totals.bed_days)
    cost = money(totals.cost)
    appropriate_figures = {
        name: (money(value - inappropriate_figures[name]) if name == "cost" else value - inappropriate_figures[name])
        for name, value in all_figures.items()
    }
    # Bands: OAPs that ended in the period by length, those that started in it by distance.
    lengths = {row.k0: integer(row.ended) for row in rows["length_bands"]}
    distances = {row.k0: integer(row.started) for row in rows["distance_bands"]}

    return {
        "totals": {
            **all_figures,
            "average_cost_per_bed_day": None if bed_days == 0 else round(cost / bed_days, 2),
            "private_bed_days": integer(totals.private_nights),
            "private_share": ratio(totals.private_nights, bed_days),
        },
        "inappropriate": inappropriate_figures,
        "appropriate": appropriate_figures,
        "by_reason": [
            {"reason": row.k0, "description": OAP_REASONS.get(row.k0, "not recorded"), **_figures(row)}
            for row in rows["by_reason"]
        ],
        "by_sending_area": [{"area_code": row.k0, "name": row.k1, **_figures(row)} for row in rows["by_sending_area"]],
        "by_receiving_provider": [
            {"provider_id": row.k1, "name": row.k0, "sector": row.k2, **_figures(row)}
            for row in rows["by_receiving_provider"]
        ],
        "by_bed_type": [{"kind": row.k0, **_figures(row)} for row in rows["by_bed_type"]],
        "length_bands": {band: lengths.get(band, 0) for band in LENGTH_BANDS},
        "distance_bands": {
            **{band: distances.get(band, 0) for band in DISTANCE_BANDS},
            "not_known": distances.get("not_known", 0),
        },
    }
