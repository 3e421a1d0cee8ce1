"""Run a report: check the period and the caller's scope, aggregate in one read-only snapshot, audit the run.

Commissioners see only aggregates of their own areas; admins of any area, or of all areas when they name
none. The figures are read in one transaction (on PostgreSQL REPEATABLE READ, READ ONLY, so every
query of a report sees the same data; on SQLite one read transaction is already a snapshot); then the
run is recorded in the audit log in a short write transaction of its own, so that reports never hold
the write lock while they aggregate. If the audit entry cannot be written, the report is not given out.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from capacity.auth.scope import report_areas
from capacity.auth.security import Actor
from capacity.booking.units.models import Area
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Invalid
from capacity.reports.common import ReportQuery
from capacity.reports.equality import equality_report
from capacity.reports.occupancy import capacity_report
from capacity.reports.out_of_area import out_of_area_report, out_of_area_totals
from capacity.reports.s136 import s136_report

# Far enough for any backfill, near enough that local midnights exist on both engines and in Python.
EARLIEST, LATEST = date(1900, 1, 1), date(2999, 12, 31)
_ONS_CODE = re.compile(r"^[EWSN]\d{8}$")

Builder = Callable[[AsyncSession, ReportQuery, Database], Awaitable[dict]]

REPORTS: dict[str, Builder] = {
    "out_of_area": lambda session, q, db: out_of_area_report(session, q),
    "s136": lambda session, q, db: s136_report(session, q, db.settings.ambulance_standard_minutes),
    "capacity": lambda session, q, db: capacity_report(session, q),
    "equality": lambda session, q, db: equality_report(session, q, db.settings.ambulance_standard_minutes),
}


def check_period(first: date, last: date) -> None:
    for field, value in (("from", first), ("to", last)):
        if not EARLIEST <= value <= LATEST:
            raise Invalid(f"{field} must be a date from {EARLIEST} to {LATEST}", field=field)
    if first > last:
        raise Invalid("from is after to; both dates are inclusive", field="from")


async def _areas(session: AsyncSession, actor: Actor, area: str | None) -> tuple[str, ...] | None:
    """The home areas the report covers (None: all), within what the caller may see."""
    if area is not None and (not _ONS_CODE.match(area) or await session.get(Area, area) is None):
        raise Invalid(f"no area with code {area!r}", field="area")
    return report_areas(actor, area)


async def _run(
    db: Database,
    actor: Actor,
    name: str,
    area: str | None,
    build: Callable[[AsyncSession, tuple[str, ...] | None, datetime], Awaitable[tuple[dict, dict]]],
    audited: dict[str, Any],
) -> dict:
    """Build a report in one read-only snapshot, then audit its run once (or give nothing out)."""
    async with db.read() as reading:
        session, now = reading.session, reading.now
        if not db.is_sqlite:
            await session.connection(
                execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            )
        areas = await _areas(session, actor, area)
        parameters, body = await build(session, areas, now)
        await session.rollback()
    report = {"parameters": parameters, **body}

    async def record(uow: UnitOfWork) -> None:
        uow.audit(
            actor, f"report.{name}", "report", name, after={**audited, "areas": "all" if areas is None else list(areas)}
        )

    await db.write(record)
    return report


async def run_report(
    db: Database, actor: Actor, name: str, first: date, last: date, area: str | None, fmt: str
) -> dict:
    """The report as JSON-ready data: `parameters` first, then its sections; the run is audited."""
    check_period(first, last)
    builder = REPORTS[name]

    async def build(session: AsyncSession, areas: tuple[str, ...] | None, now: datetime) -> tuple[dict, dict]:
        query = ReportQuery(first, last, areas, now)
        return query.parameters(name), await builder(session, query, db)

    audited = {"from": first.isoformat(), "to": last.isoformat(), "format": fmt}
    return await _run(db, actor, name, area, build, audited)


# --- the monthly trend: the out-of-area report's totals for each month, in one call --------------------

MAX_MONTHS = 24
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def parse_month(value: str, field: str) -> date:
    """The first day of the month `YYYY-MM` (422 naming `field` otherwise)."""
    match = _MONTH.match(value)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise Invalid(f"{field} must be a month, YYYY-MM (e.g. 2026-01)", field=field)
    return date(int(match.group(1)), int(match.group(2)), 1)


def months(first: date, last: date) -> list[tuple[date, date]]:
    """The months from `first`'s to `last`'s, inclusive, as (first day, last day); at most MAX_MONTHS."""
    check_period(first, last)
    count = (last.year - first.year) * 12 + last.month - first.month + 1
    if count > MAX_MONTHS:
        raise Invalid(f"a trend covers at most {MAX_MONTHS} months; this asks for {count}", field="to")
    found = []
    for i in range(count):
        year, month = divmod(first.month - 1 + i, 12)
        start = date(first.year + year, month + 1, 1)
        following = date(start.year + start.month // 12, start.month % 12 + 1, 1)
        found.append((start, following - timedelta(days=1)))
    return found


async def run_trend(db: Database, actor: Actor, first: date, last: date, area: str | None) -> dict:
    """The out-of-area report's `totals` and `inappropriate` figures for each month from `first`'s to
    `last`'s, each computed by that report's own code for that month, all in one snapshot; audited once."""
    periods = months(first, last)
    label = {"from": first.isoformat()[:7], "to": last.isoformat()[:7]}

    async def build(session: AsyncSession, areas: tuple[str, ...] | None, now: datetime) -> tuple[dict, dict]:
        series = []
        for start, end in periods:
            figures = await out_of_area_totals(session, ReportQuery(start, end, areas, now))
            series.append({"month": start.isoformat()[:7], "from": start.isoformat(), "to": end.isoformat(), **figures})
        whole = ReportQuery(periods[0][0], periods[-1][1], areas, now)
        return {**whole.parameters("trend"), **label}, {"months": series}

    return await _run(db, actor, "trend", area, build, {**label, "report": "out_of_area", "format": "json"})
