"""Placements: thin handlers, one service call each."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody

from capacity.auth.scope import PERSON_ROLES
from capacity.auth.security import Actor, require_roles
from capacity.booking.persons import person_out
from capacity.booking.placements import service as placement_service
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import (
    DischargeIn,
    PlacementIn,
    PlacementOut,
    PlacementPatch,
    S136ExtensionIn,
)
from capacity.db.engine import Database


def placement_out(p: Placement) -> PlacementOut:
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
        s136_clock_started_at=p.s136_clock_started_at,
        s136_deadline=p.s136_deadline,
        s136_extension_hours=p.s136_extension_hours,
        s136_extension_authorised_by=p.s136_extension_authorised_by,
        s136_extension_reason=p.s136_extension_reason,
        s136_breached_at=p.s136_breached_at,
    )


class PlacementController(Controller):
    path = "/api/placements"
    tags = ["Placements"]
    guards = [require_roles(*PERSON_ROLES)]

    @post("/", summary="Record a direct admission (bed manager)", status_code=201)
    async def admit(
        self, db: NamedDependency[Database], actor: NamedDependency[Actor], data: JSONBody[PlacementIn]
    ) -> PlacementOut:
        return placement_out(await placement_service.admit(db, actor, data))

    @get("/", summary="Placements in the caller's scope")
    async def list_placements(
        self, db: NamedDependency[Database], actor: NamedDependency[Actor], active: FromQuery[bool | None] = None
    ) -> list[PlacementOut]:
        return [placement_out(p) for p in await placement_service.list_placements(db, actor, active)]

    @get("/{placement_id:str}", summary="One placement")
    async def get_placement(
        self, db: NamedDependency[Database], actor: NamedDependency[Actor], placement_id: FromPath[str]
    ) -> PlacementOut:
        return placement_out(await placement_service.read_placement(db, actor, placement_id))

    @patch("/{placement_id:str}", summary="Correct a placement's oap_reason (its unit's bed manager, admin)")
    async def correct(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        placement_id: FromPath[str],
        data: JSONBody[PlacementPatch],
    ) -> PlacementOut:
        return placement_out(await placement_service.correct(db, actor, placement_id, data))

    @post("/{placement_id:str}/discharge", summary="Discharge with an outcome", status_code=200)
    async def discharge(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        placement_id: FromPath[str],
        data: JSONBody[DischargeIn],
    ) -> PlacementOut:
        return placement_out(await placement_service.discharge(db, actor, placement_id, data))

    @post("/{placement_id:str}/s136-extension", summary="Record the s136B extension", status_code=200)
    async def s136_extension(
        self,
        db: NamedDependency[Database],
        actor: NamedDependency[Actor],
        placement_id: FromPath[str],
        data: JSONBody[S136ExtensionIn],
    ) -> PlacementOut:
        return placement_out(await placement_service.extend_s136(db, actor, placement_id, data))
