"""What the API takes and returns for reference data, codes and units (msgspec Structs, API.md)."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Annotated, Protocol

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.booking.units.availability import UnitFigures
from capacity.codes import (
    ACUTE_KINDS,
    CODE_SETS,
    KIND_PURPOSE,
    ROLE_SCOPE,
    ROLES_NEEDING_AREAS,
    Advisory,
    ClosedReason,
    Code,
    HoldPurpose,
    Role,
    Sector,
    UnitKind,
    UnitSex,
    UnitStatus,
)

UnitId = Annotated[str, Meta(min_length=1, max_length=36)]


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
    # The provider's latest OPEL level (1-4; None until it first declares one), when, and whether that is stale.
    escalation_level: int | None
    escalation_note: str | None
    escalation_at: datetime | None
    escalation_stale: bool


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
    # The unit's provider's escalation level (ProviderOut's), shown beside the unit.
    escalation_level: int | None
    escalation_at: datetime | None
    escalation_stale: bool
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
    warnings: list[Advisory] = []


class AvailabilityIn(msgspec.Struct, forbid_unknown_fields=True):
    open_places: Annotated[int, Meta(ge=0, le=10_000)]
    status: UnitStatus
    closed_reason: ClosedReason | None = None
    note: Annotated[str, Meta(max_length=500)] | None = None


class Escalation(Protocol):
    """A provider's escalation level at one instant (capacity.booking.escalation.service.Escalation)."""

    @property
    def level(self) -> int | None: ...
    @property
    def at(self) -> datetime | None: ...
    @property
    def stale(self) -> bool: ...


# The unit's columns a search result shows as they are stored, and those its detail adds.
UNIT_SHOWN = (
    "id",
    "name",
    "kind",
    "provider_id",
    "area_code",
    "lat",
    "lon",
    "sex",
    "min_age",
    "max_age",
    "status",
    "closed_reason",
    "open_places",
    "last_confirmed_at",
    "last_confirmed_by",
)
# The figures derived from it, as a search result and the live stream show them.
FIGURES_SHOWN = ("held", "occupied", "available", "stale")
UNIT_DETAIL_SHOWN = (
    "postcode",
    "mother_and_baby",
    "accepts_intoxicated",
    "accepts_detained",
    "max_stay_days",
    "accepts_from_areas",
    "refuses_areas",
)


def unit_out(f: UnitFigures, escalation: Escalation) -> UnitOut:
    return UnitOut(
        **{name: getattr(f.unit, name) for name in UNIT_SHOWN},
        **{name: getattr(f, name) for name in FIGURES_SHOWN},
        escalation_level=escalation.level,
        escalation_at=escalation.at,
        escalation_stale=escalation.stale,
        distance_km=UNSET if f.distance_km is None else f.distance_km,
        out_of_area=UNSET if f.out_of_area is None else f.out_of_area,
    )


def unit_detail(f: UnitFigures, escalation: Escalation) -> UnitDetail:
    return UnitDetail(
        **msgspec.structs.asdict(unit_out(f, escalation)),
        **{name: getattr(f.unit, name) for name in UNIT_DETAIL_SHOWN},
        daily_cost=float(f.unit.daily_cost or 0),
        warnings=f.advisories,
    )


class CodeOut(msgspec.Struct):
    code: str
    label: str


class KindCodeOut(CodeOut, kw_only=True):
    purpose: HoldPurpose  # what a hold at a unit of this kind is for, unless the AMHP says otherwise
    acute: bool  # an inpatient bed: an out-of-area placement there needs an OAP reason


# One list of {code, label} per code set of capacity.codes, under the key CODE_SETS names it by.
class RoleCodeOut(CodeOut, kw_only=True):
    scope: str  # what a user of the role works for: "provider", "areas" or "all"
    areas_required: bool  # must name at least one area


# The entries of the sets that carry more than a label; every other set's are CodeOut.
_ENTRY_TYPES: dict[type[Code], type[CodeOut]] = {UnitKind: KindCodeOut, Role: RoleCodeOut}

CodesOut = msgspec.defstruct(
    "CodesOut",
    [(key, list[_ENTRY_TYPES.get(code, CodeOut)]) for key, code in CODE_SETS.items()],  # type: ignore[misc]
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
        if code is Role:
            return [
                RoleCodeOut(role.value, role.label, scope=ROLE_SCOPE[role], areas_required=role in ROLES_NEEDING_AREAS)
                for role in Role
            ]
        return [CodeOut(member.value, member.label) for member in code]

    return CodesOut(**{key: entries(code) for key, code in CODE_SETS.items()})
