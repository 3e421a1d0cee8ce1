"""Placements: thin handlers, one service call each."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from capacity.auth.scope import PERSON_ROLES
from capacity.auth.security import require_roles
from capacity.booking.detentions.episodes import episode_fields
from capacity.booking.detentions.schemas import ExtensionIn
from capacity.booking.persons import person_out
from capacity.booking.placements import service as placement_service
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import (
    DischargeIn,
    PlacementIn,
    PlacementOut,
    PlacementPatch,
)
from capacity.codes import Advisory
from capacity.deps import ActorDep, DbDep


def placement_out(p: Placement, warnings: list[Advisory] | None = None) -> PlacementOut:
    return PlacementOut(
        id=p.id,
        unit_id=p.unit_id,
        hold_id=p.hold_id,
        person=person_out(p),
        legal_basis=p.legal_basis,  # type: ignore[arg-type]
        started_at=p.started_at,
        ended_at=p.ended_at,
        outcome=p.outcome,
        out_of_area=p.out_of_area,
        oap_reason=p.oap_reason,
        distance_km=p.distance_km,
        age_exception_reason=p.age_exception_reason,
        warnings=warnings or [],
        **episode_fields(p.episode),
    )


class PlacementController(Controller):
    path = "/api/placements"
    tags = ["Placements"]
    guards = [require_roles(*PERSON_ROLES)]

    @post("/", summary="Record a direct admission (bed manager)", status_code=201)
    async def admit(self, db: DbDep, actor: ActorDep, data: JSONBody[PlacementIn]) -> PlacementOut:
        return placement_out(*await placement_service.admit(db, actor, data))

    @get("/", summary="Placements in the caller's scope")
    async def list_placements(
        self, db: DbDep, actor: ActorDep, active: FromQuery[bool | None] = None
    ) -> list[PlacementOut]:
        return [placement_out(p) for p in await placement_service.list_placements(db, actor, active)]

    @get("/{placement_id:str}", summary="One placement")
    async def get_placement(self, db: DbDep, actor: ActorDep, placement_id: FromPath[str]) -> PlacementOut:
        return placement_out(await placement_service.read_placement(db, actor, placement_id))

    @patch("/{placement_id:str}", summary="Correct a placement's oap_reason (its unit's bed manager, admin)")
    async def correct(
        self, db: DbDep, actor: ActorDep, placement_id: FromPath[str], data: JSONBody[PlacementPatch]
    ) -> PlacementOut:
        return placement_out(await placement_service.correct(db, actor, placement_id, data))

    @post("/{placement_id:str}/discharge", summary="Discharge with an outcome", status_code=200)
    async def discharge(
        self, db: DbDep, actor: ActorDep, placement_id: FromPath[str], data: JSONBody[DischargeIn]
    ) -> PlacementOut:
        return placement_out(await placement_service.discharge(db, actor, placement_id, data))

    @post(
        "/{placement_id:str}/s136-extension",
        summary="Record the one extension of the s135/s136 detention (s136B) where the person is placed",
        status_code=200,
    )
    async def s136_extension(
        self, db: DbDep, actor: ActorDep, placement_id: FromPath[str], data: JSONBody[ExtensionIn]
    ) -> PlacementOut:
        return placement_out(await placement_service.extend_s136(db, actor, placement_id, data))
