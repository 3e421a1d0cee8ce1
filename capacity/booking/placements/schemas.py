"""What the API takes and returns for placements (msgspec Structs, API.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.booking.persons import PersonIn, PersonOut
from capacity.codes import (
    LegalBasis,
    OapReason,
    Outcome,
)
from capacity.times import Instant


class PlacementIn(msgspec.Struct, forbid_unknown_fields=True):
    unit_id: Annotated[str, Meta(min_length=1, max_length=36)]
    person: PersonIn
    legal_basis: LegalBasis
    started_at: Instant | None = None
    s136_clock_started_at: Instant | None = None
    oap_reason: OapReason | None = None


class PlacementPatch(msgspec.Struct, forbid_unknown_fields=True):
    """A correction by the unit's bed manager or an admin; null clears the reason."""

    oap_reason: OapReason | None


class DischargeIn(msgspec.Struct, forbid_unknown_fields=True):
    outcome: Outcome
    ended_at: Instant | None = None


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
