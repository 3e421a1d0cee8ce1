"""The reports (commissioner, admin): JSON by default, CSV with `format=csv` or `Accept: text/csv`, XLSX with
`format=xlsx` (or its media type in Accept). Thin handlers: one service call, then rendering."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any

from litestar import Controller, Request, Response, get
from litestar.enums import MediaType
from litestar.handlers import HTTPRouteHandler
from litestar.params import QueryParameter

from capacity.auth.security import require_roles
from capacity.deps import ActorDep, DbDep
from capacity.errors import Invalid
from capacity.reports.render import CSV_MEDIA_TYPE, XLSX_MEDIA_TYPE, to_csv, to_xlsx
from capacity.reports.service import MAX_MONTHS, parse_month, run_report, run_trend

FORMATS = ("json", "csv", "xlsx")
# Dates and the format are checked here, not by Litestar, so that a 422 names the query parameter itself.
FromDate = Annotated[
    str,
    QueryParameter(
        name="from",
        description="first day of the period, a Europe/London calendar date (YYYY-MM-DD), inclusive",
        schema_extra={"format": "date"},
    ),
]
ToDate = Annotated[
    str,
    QueryParameter(
        description="last day of the period, a Europe/London calendar date (YYYY-MM-DD), inclusive",
        schema_extra={"format": "date"},
    ),
]
AreaCode = Annotated[
    str | None,
    QueryParameter(
        description="ONS code of the home area reported on (for the capacity report's occupancy, the "
        "area the units stand in); default: all of a commissioner's areas, or all areas "
        "for an admin"
    ),
]
Format = Annotated[
    str | None,
    QueryParameter(
        name="format",
        description="json (default), csv or xlsx; `Accept: text/csv` also gives CSV",
        schema_extra={"enum": list(FORMATS)},
    ),
]
FromMonth = Annotated[
    str,
    QueryParameter(
        name="from",
        description="first month of the trend (YYYY-MM), Europe/London, inclusive",
        schema_extra={"pattern": r"^\d{4}-\d{2}$", "examples": ["2026-01"]},
    ),
]
ToMonth = Annotated[
    str,
    QueryParameter(
        description=f"last month of the trend (YYYY-MM), inclusive; at most {MAX_MONTHS} months from `from`",
        schema_extra={"pattern": r"^\d{4}-\d{2}$", "examples": ["2026-12"]},
    ),
]
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date(value: str, field: str) -> date:
    if not _ISO_DATE.match(value):
        raise Invalid(f"{field} must be a calendar date, YYYY-MM-DD", field=field)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Invalid(f"{field} is not a calendar date: {value}", field=field) from None


def _format(requested: str | None, accept: str) -> str:
    if requested is not None:
        if requested not in FORMATS:
            raise Invalid(f"format must be one of {', '.join(FORMATS)}", field="format")
        return requested
    accept = accept.lower()
    if "text/csv" in accept:
        return "csv"
    if XLSX_MEDIA_TYPE in accept:
        return "xlsx"
    return "json"


def _download(report: dict[str, Any], filename: str, fmt: str) -> Response[Any]:
    content, media_type = (to_csv(report), CSV_MEDIA_TYPE) if fmt == "csv" else (to_xlsx(report), XLSX_MEDIA_TYPE)
    return Response(
        content, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


def _report(name: str, summary: str) -> HTTPRouteHandler:
    """`GET /api/reports/<name, with - for _>`: the report `name` of `capacity.reports.service.REPORTS` for a
    period of dates, in the format asked for. The four reports take the same parameters."""
    slug = name.replace("_", "-")

    async def handler(
        self: Controller,
        request: Request[Any, Any, Any],
        db: DbDep,
        actor: ActorDep,
        from_: FromDate,
        to: ToDate,
        area: AreaCode = None,
        format_: Format = None,
    ) -> Response[dict[str, Any]]:
        first, last = _date(from_, "from"), _date(to, "to")
        fmt = _format(format_, request.headers.get("accept", ""))
        report = await run_report(db, actor, name, first, last, area, fmt)
        if fmt == "json":
            return Response(report, media_type=MediaType.JSON)
        areas = report["parameters"]["areas"].replace(" ", "+")
        return _download(report, f"{slug}_{areas}_{first.isoformat()}_{last.isoformat()}.{fmt}", fmt)

    # Named as if written in ReportController: the OpenAPI operationId, and the order of the paths, come from it.
    handler.__name__, handler.__qualname__ = name, f"ReportController.{name}"
    return get(f"/{slug}", summary=summary)(handler)


class ReportController(Controller):
    path = "/api/reports"
    tags = ["Reports"]
    guards = [require_roles("commissioner", "admin")]

    out_of_area = _report(
        "out_of_area",
        "Out-of-area placements: started, ended, active, bed days, cost, by reason, "
        "area, provider, bed type, length and distance bands",
    )
    s136 = _report(
        "s136",
        "Section 136 detentions: places of safety, under-18s, durations, breaches, "
        "conveyance, ambulance response, outcomes, repeats, out of hours",
    )
    capacity = _report(
        "capacity",
        "Capacity use: occupancy by unit and kind, hold outcomes, time to arrival, unmet demand",
    )
    equality = _report(
        "equality",
        "Equality monitoring: detentions and placements by ethnicity, sex and age band, small counts suppressed",
    )

    @get(
        "/trend",
        summary=f"Out-of-area trend: each month's totals and inappropriate figures (bed days, cost, ...), "
        f"as the out-of-area report gives them for that month; up to {MAX_MONTHS} months in one call",
    )
    async def trend(
        self, db: DbDep, actor: ActorDep, from_: FromMonth, to: ToMonth, area: AreaCode = None
    ) -> Response[dict[str, Any]]:
        first, last = parse_month(from_, "from"), parse_month(to, "to")
        return Response(await run_trend(db, actor, first, last, area), media_type=MediaType.JSON)
