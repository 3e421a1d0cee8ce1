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
from datetime import date

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
from capacity.reports.out_of_area import out_of_area_report
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


async def run_report(
    db: Database, actor: Actor, name: str, first: date, last: date, area: str | None, fmt: str
) -> dict:
    """The report as JSON-ready data: `parameters` first, then its sections; the run is audited."""
    check_period(first, last)
    build = REPORTS[name]
    async with db.read() as reading:
        session, now = reading.session, reading.now
        if not db.is_sqlite:
            await session.connection(
                execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
            )
        areas = await _areas(session, actor, area)
        query = ReportQuery(first, last, areas, now)
        body = await build(session, query, db)
        await session.rollback()
    report = {"parameters": query.parameters(name), **body}

    async def record(uow: UnitOfWork) -> None:
        uow.audit(
            actor=actor,
            action=f"report.{name}",
            object_type="report",
            object_id=name,
            after={
                "from": first.isoformat(),
                "to": last.isoformat(),
                "areas": "all" if areas is None else list(areas),
                "format": fmt,
            },
        )

    await db.write(record)
    return report
