"""What the API takes and returns for reference data and units (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.booking.availability import UnitFigures
from capacity.kinds import ClosedReason, Kind, Sector, UnitSex, UnitStatus


class AreaOut(msgspec.Struct):
    code: str
    name: str
    lat: float
    lon: float
    local_provider_ids: list[str]
    region: str = ""


class ProviderOut(msgspec.Struct):
    id: str
    name: str
    sector: Sector


class UnitOut(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    kind: Kind
    provider_id: str
    area_code: str
    lat: float
    lon: float
    sex: UnitSex
    min_age: int
    max_age: int | None
    status: UnitStatus
    closed_reason: ClosedReason | None
    open_places: int
    available: int
    held: int
    occupied: int
    last_confirmed_at: datetime
    last_confirmed_by: str
    stale: bool
    distance_km: float | UnsetType = UNSET
    out_of_area: bool | UnsetType = UNSET


class UnitDetail(UnitOut, kw_only=True, omit_defaults=True):
    postcode: str | None
    mother_and_baby: bool
    accepts_intoxicated: bool
    accepts_detained: bool
    max_stay_days: int | None
    daily_cost: float
    accepts_from_areas: list[str]
    refuses_areas: list[str]


class AvailabilityIn(msgspec.Struct, forbid_unknown_fields=True):
    open_places: Annotated[int, Meta(ge=0, le=10_000)]
    status: UnitStatus
    closed_reason: ClosedReason | None = None
    note: Annotated[str, Meta(max_length=500)] | None = None


def unit_out(f: UnitFigures) -> UnitOut:
    u = f.unit
    return UnitOut(
        id=u.id,
        name=u.name,
        kind=u.kind,  # type: ignore[arg-type]
        provider_id=u.provider_id,
        area_code=u.area_code,
        lat=u.lat,
        lon=u.lon,
        sex=u.sex,  # type: ignore[arg-type]
        min_age=u.min_age,
        max_age=u.max_age,
        status=u.status,  # type: ignore[arg-type]
        closed_reason=u.closed_reason,  # type: ignore[arg-type]
        open_places=u.open_places,
        available=f.available,
        held=f.held,
        occupied=f.occupied,
        last_confirmed_at=u.last_confirmed_at,
        last_confirmed_by=u.last_confirmed_by,
        stale=f.stale,
        distance_km=UNSET if f.distance_km is None else f.distance_km,
        out_of_area=UNSET if f.out_of_area is None else f.out_of_area,
    )


def unit_detail(f: UnitFigures) -> UnitDetail:
    u = f.unit
    return UnitDetail(
        **msgspec.structs.asdict(unit_out(f)),
        postcode=u.postcode,
        mother_and_baby=u.mother_and_baby,
        accepts_intoxicated=u.accepts_intoxicated,
        accepts_detained=u.accepts_detained,
        max_stay_days=u.max_stay_days,
        daily_cost=float(u.daily_cost or 0),
        accepts_from_areas=u.accepts_from_areas,
        refuses_areas=u.refuses_areas,
    )
