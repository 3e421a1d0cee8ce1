"""What the API takes and returns for escalation levels (API.md "Beyond beds")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from capacity.codes import ESCALATION_LEVELS


class EscalationIn(msgspec.Struct, forbid_unknown_fields=True):
    level: Annotated[
        int,
        Meta(
            ge=ESCALATION_LEVELS[0],
            le=ESCALATION_LEVELS[-1],
            description="OPEL level: 1 steady state, 2 moderate, 3 severe, 4 extreme pressure",
        ),
    ]
    note: Annotated[str, Meta(max_length=500)] | None = None


class EscalationDeclarationOut(msgspec.Struct):
    provider_id: str
    level: int
    before_level: int | None
    note: str | None
    declared_at: datetime
    declared_by: str
