"""What the API takes and returns for holds and conveyance (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.booking.detentions.schemas import DetentionId
from capacity.booking.persons import Note, PersonIn, PersonOut
from capacity.booking.units.schemas import UnitId
from capacity.codes import (
    Advisory,
    ConveyanceMode,
    DeclineReason,
    HoldPurpose,
    HoldStatus,
    LegalBasis,
    OapReason,
    PoliceVehicleReason,
    RiskFlag,
)
from capacity.times import Instant


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: UnitId
    purpose: HoldPurpose
    person: PersonIn
    risk_flags: list[RiskFlag] = []
    note: Note | None = None
    # An open s135/s136 detention elsewhere (an emergency department, a police station) that the
    # placement will continue: the clock is the detention's and never restarts.
    detention_id: DetentionId | None = None


class ExtendIn(msgspec.Struct, forbid_unknown_fields=True):
    minutes: Annotated[int, Meta(ge=1, le=24 * 60)]
    reason: Annotated[str, Meta(min_length=3, max_length=280)]


class DeclineIn(msgspec.Struct, forbid_unknown_fields=True):
    reason: DeclineReason
    note: Note | None = None


class ArriveIn(msgspec.Struct, forbid_unknown_fields=True):
    arrived_at: Instant | None = None
    s136_clock_started_at: Instant | None = None
    legal_basis: LegalBasis | None = None
    oap_reason: OapReason | None = None
    detention_id: DetentionId | None = None


class ConveyanceIn(msgspec.Struct, forbid_unknown_fields=True):
    mode: ConveyanceMode
    police_vehicle_reason: PoliceVehicleReason | None = None
    police_vehicle_note: Note | None = None
    requested_at: Instant | None = None
    dispatched_at: Instant | None = None
    at_scene_at: Instant | None = None
    departed_at: Instant | None = None
    eta: Instant | None = None
    arrived_at: Instant | None = None


class ConveyanceOut(msgspec.Struct):
    hold_id: str
    mode: ConveyanceMode
    police_vehicle_reason: PoliceVehicleReason | None
    police_vehicle_note: str | None
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
    detention_id: str | None = None
    placement_id: str | None = None
    conveyance: ConveyanceOut | None = None
    warnings: list[Advisory] = []
