"""What the API takes and returns for s136 detentions (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.booking.persons import Note, PersonIn, PersonOut
from capacity.codes import (
    ConveyanceMode,
    Outcome,
    PlaceType,
    PoliceStationCriterion,
    PoliceVehicleReason,
    values,
)
from capacity.times import Instant

# The Places of Safety Regulations 2017 (SI 2017/1036) reg. 2: all must hold for an adult in a police station.
POLICE_STATION_CRITERIA: tuple[str, ...] = values(PoliceStationCriterion)


class DetentionIn(msgspec.Struct, forbid_unknown_fields=True):
    place_type: PlaceType
    person: PersonIn
    detained_at: Instant
    place_name: Annotated[str, Meta(max_length=200)] | None = None
    police_station_criteria: list[PoliceStationCriterion] = []
    authorising_inspector: Annotated[str, Meta(min_length=2, max_length=120)] | None = None
    conveyance_mode: ConveyanceMode | None = None
    police_vehicle_reason: PoliceVehicleReason | None = None
    police_vehicle_note: Note | None = None
    ambulance_requested_at: Instant | None = None
    ambulance_at_scene_at: Instant | None = None
    ended_at: Instant | None = None
    outcome: Outcome | None = None


class DetentionEndIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: Instant | None = None


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
    police_vehicle_reason: PoliceVehicleReason | None
    police_vehicle_note: str | None
    ambulance_requested_at: datetime | None
    ambulance_at_scene_at: datetime | None
