"""Every mapped table, imported in one place so Alembic and the app see the whole schema."""

from capacity.alternatives.models import Alternative, AlternativeArea
from capacity.audit import AuditEntry
from capacity.auth.models import User, UserArea
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.escalation.models import EscalationDeclaration
from capacity.booking.holds.models import Conveyance, Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import (
    Area,
    AvailabilityDeclaration,
    Provider,
    Unit,
    UnitAreaRule,
    UnmetDemand,
)
from capacity.db.base import Base
from capacity.notify.alerts import AlertSent

__all__ = [
    "AlertSent",
    "Alternative",
    "AlternativeArea",
    "Area",
    "AuditEntry",
    "AvailabilityDeclaration",
    "Base",
    "Conveyance",
    "Episode",
    "EscalationDeclaration",
    "Hold",
    "Placement",
    "Provider",
    "S136Detention",
    "Unit",
    "UnitAreaRule",
    "UnmetDemand",
    "User",
    "UserArea",
]
