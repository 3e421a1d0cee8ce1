"""What the API takes and returns for placements (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.booking.persons import Note, PersonIn, PersonOut
from capacity.booking.units.schemas import UnitId
from capacity.codes import Advisory, LegalBasis, OapReason, Outcome
from capacity.times import Instant


class PlacementIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: UnitId
    person: PersonIn
    legal_basis: LegalBasis
    started_at: Instant | None = None
    s136_clock_started_at: Instant | None = None
    # An open s135/s136 detention elsewhere that this admission continues (its clock, never restarted).
    detention_id: Annotated[str, Meta(min_length=1, max_length=36)] | None = None
    oap_reason: OapReason | None = None
    # The person was admitted although no place was free: recorded, and the unit warned of over-occupancy.
    over_capacity: bool = False
    age_exception_reason: Note | None = None


class PlacementPatch(msgspec.Struct, forbid_unknown_fields=True):
    """A correction by the unit's bed manager or an admin; null clears the reason."""

    oap_reason: OapReason | None


class DischargeIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: Instant | None = None


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
    detention_id: str | None = None
    s136_clock_started_at: datetime | None = None
    s136_deadline: datetime | None = None
    s136_extension_hours: int | None = None
    s136_extension_authorised_by: str | None = None
    s136_extension_reason: str | None = None
    s136_extension_superintendent: str | None = None
    s136_breached_at: datetime | None = None
    age_exception_reason: str | None = None
    warnings: list[Advisory] = []
