"""What the API takes and returns for s136 detentions (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.booking.persons import Note, PersonIn, PersonOut
from capacity.codes import (
    ConveyanceMode,
    DetentionBasis,
    ExtensionReason,
    Outcome,
    PlaceType,
    PoliceStationCriterion,
    PoliceVehicleReason,
    values,
)
from capacity.times import Instant

# The Places of Safety Regulations 2017 (SI 2017/1036) reg. 2: all must hold for an adult in a police station.
POLICE_STATION_CRITERIA: tuple[str, ...] = values(PoliceStationCriterion)


DetentionId = Annotated[str, Meta(min_length=1, max_length=36, description="an open s135/s136 detention")]


class DetentionIn(msgspec.Struct, forbid_unknown_fields=True):
    place_type: PlaceType
    person: PersonIn
    detained_at: Instant
    legal_basis: DetentionBasis = DetentionBasis.S136
    # An open detention this place continues (e.g. from a 136 suite to an emergency department).
    detention_id: DetentionId | None = None
    # s136A: an under-18 in a police station is refused unless recorded as the never event it is.
    never_event_acknowledged: bool = False
    note: Note | None = None
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


class ExtensionIn(msgspec.Struct, forbid_unknown_fields=True):
    """The one extension of an s135/s136 detention (s136B), wherever the person is."""

    hours: Annotated[int, Meta(ge=1, le=12)]
    authorised_by: Annotated[
        str, Meta(min_length=2, max_length=120, description="the registered medical practitioner examining")
    ]
    reason: ExtensionReason
    superintendent: Annotated[str, Meta(min_length=2, max_length=120)] | None = None
    note: Note | None = None


class DetentionEndIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: Instant | None = None


class DetentionOut(msgspec.Struct):
    id: str
    detention_id: str  # the episode: this record's own id when the detention started here
    legal_basis: DetentionBasis
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
    never_event_acknowledged: bool
    note: str | None
    s136_clock_started_at: datetime
    extension_hours: int | None
    extension_authorised_by: str | None
    extension_reason: str | None
    extension_superintendent: str | None
