"""Crisis alternatives: thin handlers, one service call each."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, patch, post
from litestar.params import FromPath, JSONBody, QueryParameter

from capacity.alternatives import service
from capacity.alternatives.schemas import (
    AdminAlternativeOut,
    AlternativeIn,
    AlternativeOut,
    AlternativePatch,
    OpeningHours,
)
from capacity.auth.security import require_roles
from capacity.codes import AlternativeKind
from capacity.deps import ActorDep, DbDep


def _shown(found: service.Found) -> dict[str, Any]:
    """What both answers show of an alternative: who it serves, when it is open, how to refer."""
    a = found.alternative
    return dict(
        id=a.id,
        name=a.name,
        kind=AlternativeKind(a.kind),
        areas=a.areas,
        min_age=a.min_age,
        max_age=a.max_age,
        open_now=found.open_now,
        opening_hours=msgspec.convert(a.opening_hours, OpeningHours),
        how_to_refer=a.how_to_refer,
        phone=a.phone,
    )


def alternative_out(found: service.Found) -> AlternativeOut:
    return AlternativeOut(**_shown(found), distance_km=found.distance_km)


def admin_alternative_out(found: service.Found) -> AdminAlternativeOut:
    a = found.alternative
    return AdminAlternativeOut(**_shown(found), code=a.code, lat=a.lat, lon=a.lon, active=a.active)


class AlternativeController(Controller):
    path = "/api/alternatives"
    tags = ["Crisis alternatives"]
    guards = [require_roles("amhp", "admin")]

    @get("/", summary="Crisis alternatives that serve this person, open now first, then nearest")
    async def find(
        self,
        db: DbDep,
        age: Annotated[int | None, QueryParameter(ge=0, le=120)] = None,
        home_area: Annotated[str | None, QueryParameter(pattern=r"^[EWSN]\d{8}$", description="ONS code")] = None,
        open_now: Annotated[bool, QueryParameter(description="only those open now")] = False,
    ) -> list[AlternativeOut]:
        found = await service.find_alternatives(db, age=age, home_area=home_area, open_now=open_now)
        return [alternative_out(f) for f in found]


class AdminAlternativeController(Controller):
    path = "/api/admin/alternatives"
    tags = ["Administration"]
    guards = [require_roles("admin")]

    @get("/", summary="Crisis alternatives with every attribute, retired ones too")
    async def list_alternatives(self, db: DbDep) -> list[AdminAlternativeOut]:
        return [admin_alternative_out(f) for f in await service.list_alternatives(db)]

    @post("/", summary="Add a crisis alternative", status_code=201)
    async def create(self, db: DbDep, actor: ActorDep, data: JSONBody[AlternativeIn]) -> AdminAlternativeOut:
        return admin_alternative_out(await service.create_alternative(db, actor, data))

    @patch("/{alternative_id:str}", summary="Change or retire a crisis alternative")
    async def update(
        self, db: DbDep, actor: ActorDep, alternative_id: FromPath[str], data: JSONBody[AlternativePatch]
    ) -> AdminAlternativeOut:
        return admin_alternative_out(await service.update_alternative(db, actor, alternative_id, data))
