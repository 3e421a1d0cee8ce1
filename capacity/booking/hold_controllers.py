"""Holds, conveyance and placements: thin handlers, one service call each."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.params import FromQuery, HeaderParameter

from capacity.auth.security import Actor, require_roles
from capacity.booking import conveyance as conveyance_service
from capacity.booking import detentions as detention_service
from capacity.booking import holds as hold_service
from capacity.booking import placements as placement_service
from capacity.booking.conveyance import conveyance_out
from capacity.booking.holds import HoldView
from capacity.booking.models import Placement, S136Detention
from capacity.booking.persons import person_out
from capacity.booking.schemas import (
    ArriveIn,
    ConveyanceIn,
    ConveyanceOut,
    DeclineIn,
    DetentionEndIn,
    DetentionIn,
    DetentionOut,
    DischargeIn,
    ExtendIn,
    HoldIn,
    HoldOut,
    HoldStatus,
    PlacementIn,
    PlacementOut,
    S136ExtensionIn,
)
from capacity.db.engine import Database
from capacity.settings import Settings

# Commissioners see aggregates only, never a hold or placement.
PERSON_ROLES = ("amhp", "bed_manager", "conveyance", "admin")


def hold_out(view: HoldView, now: datetime, settings: Settings) -> HoldOut:
    h = view.hold
    return HoldOut(
        id=h.id,
        unit_id=h.unit_id,
        status=view.status,
        purpose=h.purpose,
        person=person_out(h),  # type: ignore[arg-type]
        risk_flags=list(h.risk_flags or []),
        note=h.note,
        created_at=h.created_at,
        created_by=h.created_by,
        expires_at=h.expires_at,
        ended_at=h.ended_at,
        extensions=h.extensions,
        extended_minutes=h.extended_minutes,
        decline_reason=h.decline_reason,
        placement_id=view.placement_id,
        conveyance=conveyance_out(view.conveyance, now, settings.ambulance_standard_minutes)
        if view.conveyance
        else None,
    )


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


class HoldController(Controller):
    path = "/api/holds"
    tags = ["Holds"]
    guards = [require_roles(*PERSON_ROLES)]

    async def _view(self, db: Database, actor: Actor, hold_id: str) -> HoldOut:
        view, now = await hold_service.read_hold(db, actor, hold_id)
        return hold_out(view, now, db.settings)

    @post("/", summary="Hold a place for a person (AMHP)", status_code=201)
    async def create(
        self,
        db: Database,
        actor: Actor,
        data: HoldIn,
        idempotency_key: Annotated[
            str | None, HeaderParameter(header="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[HoldOut]:
        result = await hold_service.create_hold(db, actor, data, idempotency_key)
        view = HoldView(result.hold, hold_service.effective_status(result.hold, result.now), None, None)
        return Response(hold_out(view, result.now, db.settings), status_code=201 if result.created else 200)

    @get("/", summary="Holds in the caller's scope, newest first")
    async def list_holds(
        self, db: Database, actor: Actor, status: FromQuery[HoldStatus | None] = None
    ) -> list[HoldOut]:
        views, now = await hold_service.list_holds(db, actor, status)
        return [hold_out(v, now, db.settings) for v in views]

    @get("/{hold_id:str}", summary="One hold")
    async def get_hold(self, db: Database, actor: Actor, hold_id: str) -> HoldOut:
        return await self._view(db, actor, hold_id)

    @post("/{hold_id:str}/extend", summary="Extend a live hold, with a reason", status_code=200)
    async def extend(self, db: Database, actor: Actor, hold_id: str, data: ExtendIn) -> HoldOut:
        await hold_service.extend_hold(db, actor, hold_id, data)
        return await self._view(db, actor, hold_id)

    @post("/{hold_id:str}/release", summary="Release a hold (AMHP)", status_code=200)
    async def release(self, db: Database, actor: Actor, hold_id: str) -> HoldOut:
        await hold_service.release_hold(db, actor, hold_id)
        return await self._view(db, actor, hold_id)

    @post("/{hold_id:str}/decline", summary="Decline a hold (the unit's bed manager)", status_code=200)
    async def decline(self, db: Database, actor: Actor, hold_id: str, data: DeclineIn) -> HoldOut:
        await hold_service.decline_hold(db, actor, hold_id, data)
        return await self._view(db, actor, hold_id)

    @post("/{hold_id:str}/arrive", summary="Record arrival: the hold becomes a placement", status_code=201)
    async def arrive(self, db: Database, actor: Actor, hold_id: str, data: ArriveIn) -> PlacementOut:
        return placement_out(await hold_service.arrive(db, actor, hold_id, data))

    @put("/{hold_id:str}/conveyance", summary="Record conveyance: mode, times and ETA")
    async def conveyance(self, db: Database, actor: Actor, hold_id: str, data: ConveyanceIn) -> ConveyanceOut:
        result = await conveyance_service.update_conveyance(db, actor, hold_id, data)
        return conveyance_out(result.conveyance, result.now, db.settings.ambulance_standard_minutes)


class PlacementController(Controller):
    path = "/api/placements"
    tags = ["Placements"]
    guards = [require_roles(*PERSON_ROLES)]

    @post("/", summary="Record a direct admission (bed manager)", status_code=201)
    async def admit(self, db: Database, actor: Actor, data: PlacementIn) -> PlacementOut:
        return placement_out(await placement_service.admit(db, actor, data))

    @get("/", summary="Placements in the caller's scope")
    async def list_placements(
        self, db: Database, actor: Actor, active: FromQuery[bool | None] = None
    ) -> list[PlacementOut]:
        return [placement_out(p) for p in await placement_service.list_placements(db, actor, active)]

    @get("/{placement_id:str}", summary="One placement")
    async def get_placement(self, db: Database, actor: Actor, placement_id: str) -> PlacementOut:
        return placement_out(await placement_service.read_placement(db, actor, placement_id))

    @post("/{placement_id:str}/discharge", summary="Discharge with an outcome", status_code=200)
    async def discharge(self, db: Database, actor: Actor, placement_id: str, data: DischargeIn) -> PlacementOut:
        return placement_out(await placement_service.discharge(db, actor, placement_id, data))

    @post("/{placement_id:str}/s136-extension", summary="Record the s136B extension", status_code=200)
    async def s136_extension(
        self, db: Database, actor: Actor, placement_id: str, data: S136ExtensionIn
    ) -> PlacementOut:
        return placement_out(await placement_service.extend_s136(db, actor, placement_id, data))


def detention_out(d: S136Detention) -> DetentionOut:
    return DetentionOut(
        id=d.id,
        place_type=d.place_type,
        place_name=d.place_name,
        person=person_out(d),  # type: ignore[arg-type]
        detained_at=d.detained_at,
        deadline=d.deadline,
        ended_at=d.ended_at,
        outcome=d.outcome,
        breached_at=d.breached_at,
        police_station_criteria=list(d.police_station_criteria or []),
        authorising_inspector=d.authorising_inspector,
        conveyance_mode=d.conveyance_mode,
        police_vehicle_reason=d.police_vehicle_reason,
        ambulance_requested_at=d.ambulance_requested_at,
        ambulance_at_scene_at=d.ambulance_at_scene_at,
    )


class DetentionController(Controller):
    """s136 detentions at places of safety that are not bookable units (emergency department, police station)."""

    path = "/api/s136-detentions"
    tags = ["Section 136"]
    guards = [require_roles("amhp", "admin")]

    @post(
        "/", summary="Record an s136 detention at an emergency department, police station or elsewhere", status_code=201
    )
    async def record(self, db: Database, actor: Actor, data: DetentionIn) -> DetentionOut:
        return detention_out(await detention_service.record_detention(db, actor, data))

    @get("/", summary="s136 detentions at other places, in the caller's areas")
    async def list_detentions(self, db: Database, actor: Actor) -> list[DetentionOut]:
        return [detention_out(d) for d in await detention_service.list_detentions(db, actor)]

    @get("/{detention_id:str}", summary="One s136 detention")
    async def get_detention(self, db: Database, actor: Actor, detention_id: str) -> DetentionOut:
        return detention_out(await detention_service.read_detention(db, actor, detention_id))

    @post("/{detention_id:str}/end", summary="End a detention with its outcome", status_code=200)
    async def end(self, db: Database, actor: Actor, detention_id: str, data: DetentionEndIn) -> DetentionOut:
        return detention_out(await detention_service.end_detention(db, actor, detention_id, data))
