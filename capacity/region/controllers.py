"""`GET /api/region/status` (commissioner for its areas' regions, admin): JSON, or CSV with `format=csv`."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, get
from litestar.enums import MediaType
from litestar.params import QueryParameter

from capacity.auth.security import require_roles
from capacity.deps import ActorDep, DbDep
from capacity.errors import Invalid
from capacity.region.service import region_status
from capacity.reports.render import CSV_MEDIA_TYPE, to_csv

FORMATS = ["json", "csv"]


class RegionController(Controller):
    path = "/api/region"
    tags = ["Reports"]
    guards = [require_roles("commissioner", "admin")]

    @get(
        "/status",
        summary="A region's status now: places by kind, empty 136 suites, stale units, providers at OPEL 3-4, "
        "people waiting in an emergency department under s136, active out-of-area placements",
    )
    async def status(
        self,
        db: DbDep,
        actor: ActorDep,
        region: Annotated[str, QueryParameter(description="the region's name, e.g. South West", max_length=80)],
        # Checked here, not by Litestar, so that a 422 names the query parameter itself (as the reports do).
        format_: Annotated[
            str, QueryParameter(name="format", description="json (default) or csv", schema_extra={"enum": FORMATS})
        ] = "json",
    ) -> Response[Any]:
        if format_ not in FORMATS:
            raise Invalid(f"format must be one of {', '.join(FORMATS)}", field="format")
        status = await region_status(db, actor, region)
        if format_ == "json":
            return Response(status, media_type=MediaType.JSON)
        filename = f"region-status_{region.replace(' ', '-')}_{status['at'][:16].replace(':', '')}.csv"
        return Response(
            to_csv(status),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
