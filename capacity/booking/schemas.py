"""What the API takes and returns for reference data and units (msgspec Structs, API.md)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.booking.availability import UnitFigures
from capacity.booking.persons import PersonIn, PersonOut
from capacity.codes import (
    ACUTE_KINDS,
    CODE_SETS,
    KIND_PURPOSE,
    ClosedReason,
    Code,
    ConveyanceMode,
    DeclineReason,
    HoldPurpose,
    HoldStatus,
    LegalBasis,
    OapReason,
    Outcome,
    PlaceType,
    PoliceStationCriterion,
    RiskFlag,
    Sector,
    UnitKind,
    UnitSex,
    UnitStatus,
    values,
)


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
    kind: UnitKind
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

Note = Annotated[str, Meta(max_length=280)]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: Annotated[str, Meta(min_length=1, max_length=36)]
    purpose: HoldPurpose
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
    purpose: HoldPurpose
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


# The Places of Safety Regulations 2017 (SI 2017/1036) reg. 2: all must hold for an adult in a police station.
POLICE_STATION_CRITERIA: tuple[str, ...] = values(PoliceStationCriterion)


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


# --- The code sets (GET /api/codes) -----------------------------------------------------------------


class CodeOut(msgspec.Struct):
    code: str
    label: str


class KindCodeOut(CodeOut, kw_only=True):
    purpose: HoldPurpose  # what a hold at a unit of this kind is for, unless the AMHP says otherwise
    acute: bool  # an inpatient bed: an out-of-area placement there needs an OAP reason


# One list of {code, label} per code set of capacity.codes, under the key CODE_SETS names it by.
CodesOut = msgspec.defstruct(
    "CodesOut",
    [(key, list[KindCodeOut] if code is UnitKind else list[CodeOut]) for key, code in CODE_SETS.items()],
    module=__name__,
)


@functools.cache  # the codes never change while the service runs
def codes_out() -> CodesOut:  # type: ignore[valid-type]
    def entries(code: type[Code]) -> list[CodeOut]:
        if code is UnitKind:
            return [
                KindCodeOut(kind.value, kind.label, purpose=KIND_PURPOSE[kind], acute=kind in ACUTE_KINDS)
                for kind in UnitKind
            ]
        return [CodeOut(member.value, member.label) for member in code]

    return CodesOut(**{key: entries(code) for key, code in CODE_SETS.items()})
