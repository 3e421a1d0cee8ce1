"""Who may see and act on a hold or placement (DOMAIN.md "Person data").

A bed manager sees person data only for their own provider's units, an AMHP only for people from
their own areas, conveyance users for their region's areas; commissioners never. Outside scope an
object does not exist for the caller (404), as API.md asks.
"""

from __future__ import annotations

from capacity.auth.security import Actor
from capacity.booking.models import Unit
from capacity.errors import Forbidden, NotFound

# The actor the sweep and other scheduled jobs write as.
SYSTEM = Actor(id="system", username="system", role="system", provider_id=None, areas=())


def can_see(actor: Actor, home_area: str, unit: Unit) -> bool:
    if actor.role in ("admin", "system"):
        return True
    if actor.role == "bed_manager":
        return unit.provider_id == actor.provider_id
    if actor.role == "amhp":
        return home_area in actor.areas
    if actor.role == "conveyance":
        return home_area in actor.areas or unit.area_code in actor.areas
    return False


def ensure_sees(actor: Actor, home_area: str, unit: Unit, what: str, object_id: str) -> None:
    if not can_see(actor, home_area, unit):
        raise NotFound(f"no {what} with id {object_id}")


def ensure_role(actor: Actor, *roles: str, action: str) -> None:
    """Within scope, only some roles may take an action (403 for the others)."""
    if actor.role not in (*roles, "admin", "system"):
        raise Forbidden(f"the {actor.role} role may not {action}")
