"""Holds and conveyance: thin handlers, one service call each."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, cast

from litestar import Controller, Response, get, post, put
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody

from capacity.auth.scope import PERSON_ROLES
from capacity.auth.security import Actor, require_roles
from capacity.booking.holds import conveyance as conveyance_service
from capacity.booking.holds import service as hold_service
from capacity.booking.holds.conveyance import conveyance_out
from capacity.booking.holds.models import Hold
from capacity.booking.holds.schemas import ArriveIn, ConveyanceIn, ConveyanceOut, DeclineIn, ExtendIn, HoldIn, HoldOut
from capacity.booking.holds.service import HoldView
from capacity.booking.persons import person_out
from capacity.booking.placements.controllers import placement_out
from capacity.booking.placements.schemas import PlacementOut
from capacity.codes import Advisory, HoldStatus
from capacity.db.engine import Database
from capacity.deps import ActorDep, DbDep
from capacity.settings import Settings

# The hold's columns HoldOut shows as they are stored.
HOLD_SHOWN = (
    "id",
    "unit_id",
    "purpose",
    "note",
    "created_at",
    "created_by",
    "expires_at",
    "ended_at",
    "extensions",
    "extended_minutes",
    "decline_reason",
    "detention_id",
)


def hold_out(view: HoldView, now: datetime, settings: Settings, warnings: list[Advisory] | None = None) -> HoldOut:
    h = view.hold
    return HoldOut(
        **{name: getattr(h, name) for name in HOLD_SHOWN},
        status=cast(HoldStatus, view.status),  # the table's check constraint keeps it to HoldStatus
        person=person_out(h),
        risk_flags=list(h.risk_flags or []),
        placement_id=view.placement_id,
        conveyance=conveyance_out(view.conveyance, now, settings.ambulance_standard_minutes)
        if view.conveyance
        else None,
        warnings=warnings or [],
    )


class HoldController(Controller):
    path = "/api/holds"
    tags = ["Holds"]
    guards = [require_roles(*PERSON_ROLES)]

    async def _view(self, db: Database, actor: Actor, hold_id: str) -> HoldOut:
        view, now = await hold_service.read_hold(db, actor, hold_id)
        return hold_out(view, now, db.settings)

    async def _after(self, db: Database, actor: Actor, change: Awaitable[Hold]) -> HoldOut:
        """The hold as it is once `change` is made, read again as GET shows it."""
        hold = await change
        return await self._view(db, actor, hold.id)

    @post("/", summary="Hold a place for a person (AMHP)", status_code=201)
    async def create(
        self,
        db: DbDep,
        actor: ActorDep,
        data: JSONBody[HoldIn],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", max_length=200, required=False)
        ] = None,
    ) -> Response[HoldOut]:
        result = await hold_service.create_hold(db, actor, data, idempotency_key)
        view = HoldView(result.hold, hold_service.effective_status(result.hold, result.now), None, None)
        return Response(
            hold_out(view, result.now, db.settings, result.warnings), status_code=201 if result.created else 200
        )

    @get("/", summary="Holds in the caller's scope, newest first")
    async def list_holds(
        self, db: DbDep, actor: ActorDep, status: FromQuery[HoldStatus | None] = None
    ) -> list[HoldOut]:
        views, now = await hold_service.list_holds(db, actor, status)
        return [hold_out(v, now, db.settings) for v in views]

    @get("/{hold_id:str}", summary="One hold")
    async def get_hold(self, db: DbDep, actor: ActorDep, hold_id: FromPath[str]) -> HoldOut:
        return await self._view(db, actor, hold_id)

    @post("/{hold_id:str}/extend", summary="Extend a live hold, with a reason", status_code=200)
    async def extend(self, db: DbDep, actor: ActorDep, hold_id: FromPath[str], data: JSONBody[ExtendIn]) -> HoldOut:
        return await self._after(db, actor, hold_service.extend_hold(db, actor, hold_id, data))

    @post("/{hold_id:str}/release", summary="Release a hold (AMHP)", status_code=200)
    async def release(self, db: DbDep, actor: ActorDep, hold_id: FromPath[str]) -> HoldOut:
        return await self._after(db, actor, hold_service.release_hold(db, actor, hold_id))

    @post("/{hold_id:str}/decline", summary="Decline a hold (the unit's bed manager)", status_code=200)
    async def decline(self, db: DbDep, actor: ActorDep, hold_id: FromPath[str], data: JSONBody[DeclineIn]) -> HoldOut:
        return await self._after(db, actor, hold_service.decline_hold(db, actor, hold_id, data))

    @post("/{hold_id:str}/arrive", summary="Record arrival: the hold becomes a placement", status_code=201)
    async def arrive(
        self, db: DbDep, actor: ActorDep, hold_id: FromPath[str], data: JSONBody[ArriveIn]
    ) -> PlacementOut:
        return placement_out(await hold_service.arrive(db, actor, hold_id, data))

    @put("/{hold_id:str}/conveyance", summary="Record conveyance: mode, times and ETA")
    async def conveyance(
        self, db: DbDep, actor: ActorDep, hold_id: FromPath[str], data: JSONBody[ConveyanceIn]
    ) -> ConveyanceOut:
        result = await conveyance_service.update_conveyance(db, actor, hold_id, data)
        return conveyance_out(result.conveyance, result.now, db.settings.ambulance_standard_minutes)
