"""Reference data, codes and units: thin handlers that call one service each."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, get, put
from litestar.datastructures import State
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from sqlalchemy import select

from capacity.auth.security import require_roles
from capacity.booking.escalation import service as escalation_service
from capacity.booking.units import service as unit_service
from capacity.booking.units.availability import UnitSearch, read_unit
from capacity.booking.units.models import Area
from capacity.booking.units.read_model import ReadModel
from capacity.booking.units.schemas import (
    AreaOut,
    AvailabilityIn,
    CodesOut,
    ProviderOut,
    UnitDetail,
    UnitOut,
    codes_out,
    unit_detail,
    unit_out,
)
from capacity.codes import UnitKind
from capacity.deps import ActorDep, DbDep
from capacity.errors import Invalid


class ReferenceController(Controller):
    path = "/api"
    tags = ["Reference data"]

    @get("/areas", summary="Areas with their centres and local provider networks (retired areas are left out)")
    async def list_areas(self, db: DbDep) -> list[AreaOut]:
        async with db.read_sessions() as session:
            areas = (await session.scalars(select(Area).where(Area.active).order_by(Area.code))).all()
            return [AreaOut(a.code, a.name, a.lat, a.lon, a.local_provider_ids, a.region) for a in areas]

    @get("/providers", summary="Providers of crisis places, with their escalation levels")
    async def list_providers(self, db: DbDep) -> list[ProviderOut]:
        return await escalation_service.list_providers(db)

    @get(
        "/codes",
        summary="Every code set with its labels: unit kinds, roles, reasons, outcomes, ethnic categories and the rest",
        sync_to_thread=False,
    )
    def list_codes(self) -> CodesOut:  # type: ignore[valid-type]
        return codes_out()


def parse_near(near: str | None) -> tuple[float, float] | None:
    if near is None:
        return None
    try:
        lat, lon = (float(part) for part in near.split(","))
    except ValueError:
        raise Invalid("near must be 'lat,lon', e.g. 51.45,-2.59", field="near") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise Invalid("near is not a point on Earth", field="near")
    return lat, lon


class UnitController(Controller):
    path = "/api/units"
    tags = ["Units and availability"]

    @get("/", summary="Search units by eligibility and distance, with live availability")
    async def search(
        self,
        db: DbDep,
        actor: ActorDep,
        state: State,
        kind: FromQuery[list[UnitKind] | None] = None,
        sex: Annotated[Literal["female", "male"] | None, QueryParameter(description="the person's sex")] = None,
        age: Annotated[int | None, QueryParameter(ge=0, le=120)] = None,
        home_area: Annotated[str | None, QueryParameter(pattern=r"^[EWSN]\d{8}$", description="ONS code")] = None,
        near: Annotated[str | None, QueryParameter(description="lat,lon", max_length=60)] = None,
        available_only: FromQuery[bool] = False,
        accepts_intoxicated: Annotated[
            bool, QueryParameter(description="only units that take a person who is intoxicated")
        ] = False,
        accepts_detained: Annotated[
            bool, QueryParameter(description="only units that take a person detained under the Act")
        ] = False,
        mother_and_baby: Annotated[bool, QueryParameter(description="only mother and baby units")] = False,
        limit: Annotated[int | None, QueryParameter(ge=1, le=5000)] = None,
    ) -> list[UnitOut]:
        search = UnitSearch(
            kinds=tuple(kind or ()),
            sex=sex,
            age=age,
            home_area=home_area,
            near=parse_near(near),
            available_only=available_only,
            flags=tuple(
                name
                for name, wanted in (
                    ("accepts_intoxicated", accepts_intoxicated),
                    ("accepts_detained", accepts_detained),
                    ("mother_and_baby", mother_and_baby),
                )
                if wanted
            ),
            limit=limit,
        )
        read_model: ReadModel = state.read_model
        found = await unit_service.find_units(db, actor, search, read_model)
        escalations = await read_model.escalations({f.unit.provider_id for f in found})
        return [unit_out(f, escalations[f.unit.provider_id]) for f in found]

    @get("/{unit_id:str}", summary="One unit with its eligibility attributes")
    async def get_unit(self, db: DbDep, unit_id: FromPath[str]) -> UnitDetail:
        async with db.read() as reading:
            found = await read_unit(reading, unit_id)
            provider_id = found.unit.provider_id
            escalations = await escalation_service.escalations(
                reading.session, [provider_id], reading.now, reading.settings
            )
            return unit_detail(found, escalations[provider_id])

    @put(
        "/{unit_id:str}/availability",
        guards=[require_roles("bed_manager", "admin")],
        summary="Declare or confirm a unit's open places and status",
    )
    async def declare(
        self, db: DbDep, actor: ActorDep, unit_id: FromPath[str], data: JSONBody[AvailabilityIn]
    ) -> UnitDetail:
        found = await unit_service.declare_availability(db, actor, unit_id, data)
        provider_id = found.unit.provider_id
        return unit_detail(found, (await escalation_service.read_escalations(db, [provider_id]))[provider_id])
