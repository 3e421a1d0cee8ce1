"""What the API takes and returns for reference data and units (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.booking.availability import UnitFigures
from capacity.booking.persons import PersonIn, PersonOut, RiskFlag
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


# --- Holds, placements and conveyance ---------------------------------------------------------------

Purpose = Literal["s136", "crisis", "respite", "admission"]
LegalBasis = Literal["informal", "s135", "s136", "s2", "s3", "s4", "other"]
Outcome = Literal["admitted_informal", "detained_s2", "detained_s3", "discharged", "referred_community", "other"]
OapReason = Literal["10", "11", "12", "13", "14", "99"]
DeclineReason = Literal["unit_closed", "clinically_unsuitable", "staffing", "other"]
ConveyanceMode = Literal["ambulance", "police_vehicle", "secure_transport", "other"]
HoldStatus = Literal["held", "arrived", "released", "declined", "expired"]
Note = Annotated[str, Meta(max_length=280)]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: Annotated[str, Meta(min_length=1, max_length=36)]
    purpose: Purpose
    person: PersonIn
    risk_flags: list[RiskFlag] = []
    note: Note | None = None


class ExtendIn(msgspec.Struct, forbid_unknown_fields=True):
    minutes: Annotated[int, Meta(ge=1, le=24 * 60)]
    reason: Annotated[str, Meta(min_length=3, max_length=280)]


class DeclineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: DeclineReason
    note: Note | None = None


class ArriveIn(msgspec.Struct, forbid_unknown_fields=True):
    arrived_at: datetime | None = None
    s136_clock_started_at: datetime | None = None
    legal_basis: LegalBasis | None = None
    oap_reason: OapReason | None = None


class ConveyanceIn(msgspec.Struct, forbid_unknown_fields=True):
    mode: ConveyanceMode
    police_vehicle_reason: Annotated[str, Meta(min_length=3, max_length=280)] | None = None
    requested_at: datetime | None = None
    dispatched_at: datetime | None = None
    at_scene_at: datetime | None = None
    departed_at: datetime | None = None
    eta: datetime | None = None
    arrived_at: datetime | None = None


class ConveyanceOut(msgspec.Struct):
    hold_id: str
    mode: ConveyanceMode
    police_vehicle_reason: str | None
    requested_at: datetime | None
    dispatched_at: datetime | None
    at_scene_at: datetime | None
    departed_at: datetime | None
    eta: datetime | None
    arrived_at: datetime | None
    updated_at: datetime
    updated_by: str
    # Request to at scene, while the ambulance is on its way or once it has arrived.
    ambulance_response_minutes: float | None
    ambulance_standard_minutes: int
    within_standard: bool | None


class HoldOut(msgspec.Struct):
    id: str
    unit_id: str
    status: HoldStatus
    purpose: Purpose
    person: PersonOut
    risk_flags: list[str]
    note: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime
    ended_at: datetime | None
    extensions: int
    extended_minutes: int
    decline_reason: str | None
    placement_id: str | None = None
    conveyance: ConveyanceOut | None = None


class PlacementIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: Annotated[str, Meta(min_length=1, max_length=36)]
    person: PersonIn
    legal_basis: LegalBasis
    started_at: datetime | None = None
    s136_clock_started_at: datetime | None = None
    oap_reason: OapReason | None = None


class DischargeIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: datetime | None = None


class S136ExtensionIn(msgspec.Struct, forbid_unknown_fields=True):
    hours: Annotated[int, Meta(ge=1, le=12)]
    authorised_by: Annotated[str, Meta(min_length=2, max_length=120)]
    reason: Annotated[str, Meta(min_length=3, max_length=280)]


class PlacementOut(msgspec.Struct):
    id: str
    unit_id: str
    hold_id: str | None
    person: PersonOut
    legal_basis: LegalBasis
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    out_of_area: bool
    oap_reason: str | None
    distance_km: float | None
    s136_clock_started_at: datetime | None = None
    s136_deadline: datetime | None = None
    s136_extension_hours: int | None = None
    s136_extension_authorised_by: str | None = None
    s136_extension_reason: str | None = None
    s136_breached_at: datetime | None = None


PlaceType = Literal["emergency_department", "police_station", "other"]
# The Places of Safety Regulations 2017 (SI 2017/1036) reg. 2: all must hold for an adult in a police station.
PoliceStationCriterion = Literal[
    "imminent_risk_of_serious_injury_or_death", "no_other_place_reasonably_available", "health_professional_present"
]
POLICE_STATION_CRITERIA: tuple[str, ...] = PoliceStationCriterion.__args__  # type: ignore[attr-defined]


class DetentionIn(msgspec.Struct, forbid_unknown_fields=True):
    place_type: PlaceType
    person: PersonIn
    detained_at: datetime
    place_name: Annotated[str, Meta(max_length=200)] | None = None
    police_station_criteria: list[PoliceStationCriterion] = []
    authorising_inspector: Annotated[str, Meta(min_length=2, max_length=120)] | None = None
    conveyance_mode: ConveyanceMode | None = None
    police_vehicle_reason: Annotated[str, Meta(min_length=3, max_length=280)] | None = None
    ambulance_requested_at: datetime | None = None
    ambulance_at_scene_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: Outcome | None = None


class DetentionEndIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: datetime | None = None


class DetentionOut(msgspec.Struct):
    id: str
    place_type: PlaceType
    place_name: str | None
    person: PersonOut
    detained_at: datetime
    deadline: datetime
    ended_at: datetime | None
    outcome: str | None
    breached_at: datetime | None
    police_station_criteria: list[str]
    authorising_inspector: str | None
    conveyance_mode: str | None
    police_vehicle_reason: str | None
    ambulance_requested_at: datetime | None
    ambulance_at_scene_at: datetime | None
