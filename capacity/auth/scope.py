"""Who may see what (DOMAIN.md "Person data"): one rule per role, as a predicate and as a SQL filter.

Everything about a person (a hold, a placement, a detention, an event) is seen by:
- a bed manager, when it is at one of their own provider's units;
- an AMHP, when the person's home area is one of their areas;
- conveyance, when the person's home area or the unit's area is one of their areas;
- an admin (and the system's own jobs), always; a commissioner, never (aggregates only).

REST lists filter with `person_filter`, reads by id and the live stream test `sees_person`, and the
reports take their areas from `report_areas`, so that no two of them can drift apart. Outside scope
an object does not exist for the caller (404), as API.md asks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from capacity.auth.security import Actor
from capacity.errors import Forbidden, NotFound

# The actor the sweep and other scheduled jobs write as.
SYSTEM = Actor(id="system", username="system", role="system", provider_id=None, areas=())
# Whoever runs `capacity admin ...` on the server (the audit log names them so).
CLI_ADMIN = Actor(id="cli-admin", username="cli-admin", role="admin", provider_id=None, areas=())
ALL_SEEING = ("admin", "system")
# The roles that may read holds, placements and detentions at all; commissioners see aggregates only.
PERSON_ROLES = ("amhp", "bed_manager", "conveyance", "admin")


def sees_person(actor: Actor, *, home_area: str | None, provider_id: str | None, unit_area: str | None) -> bool:
    """Whether `actor` may see something about a person from `home_area` at a unit of `provider_id`
    standing in `unit_area` (the unit's facts are None for a place that is not a unit)."""
    if actor.role in ALL_SEEING:
        return True
    if actor.role == "bed_manager":
        return provider_id is not None and provider_id == actor.provider_id
    if actor.role == "amhp":
        return home_area in actor.areas
    if actor.role == "conveyance":
        return home_area in actor.areas or (unit_area is not None and unit_area in actor.areas)
    return False


def person_filter(
    actor: Actor, *, home_area: Any, provider_id: Any = None, unit_area: Any = None
) -> ColumnElement[bool]:
    """`sees_person` as a SQL condition on the given columns (None: the object has no unit)."""
    if actor.role in ALL_SEEING:
        return true()
    if actor.role == "bed_manager":
        return false() if provider_id is None else provider_id == actor.provider_id
    if actor.role == "amhp":
        return home_area.in_(actor.areas)
    if actor.role == "conveyance":
        return (
            home_area.in_(actor.areas)
            if unit_area is None
            else or_(home_area.in_(actor.areas), unit_area.in_(actor.areas))
        )
    return false()


def ensure_sees_person(
    actor: Actor, what: str, object_id: str, *, home_area: str | None, provider_id: str | None, unit_area: str | None
) -> None:
    if not sees_person(actor, home_area=home_area, provider_id=provider_id, unit_area=unit_area):
        raise NotFound(f"no {what} with id {object_id}")


def hears(actor: Actor, *, home_area: str | None, provider_id: str | None, unit_area: str | None) -> bool:
    """Whether the live stream carries a non-public event to `actor`. An event about no person (a unit's
    own alerts) goes to the unit's bed managers and admins only."""
    if home_area is None and actor.role not in ("admin", "bed_manager"):
        return False
    return sees_person(actor, home_area=home_area, provider_id=provider_id, unit_area=unit_area)


def ensure_role(actor: Actor, *roles: str, action: str) -> None:
    """Within scope, only some roles may take an action (403 for the others)."""
    if actor.role not in (*roles, *ALL_SEEING):
        raise Forbidden(f"the {actor.role} role may not {action}")


def report_areas(actor: Actor, area: str | None) -> tuple[str, ...] | None:
    """The home areas a report covers (None: all): a commissioner's own areas, or one of them; an admin
    any area, or all when naming none."""
    if area is not None:
        if actor.role != "admin" and area not in actor.areas:
            raise Forbidden(f"the commissioner may report only on their own areas ({', '.join(actor.areas)})")
        return (area,)
    if actor.role == "admin":
        return None
    if not actor.areas:
        raise Forbidden("no areas are assigned to this commissioner")
    return tuple(sorted(actor.areas))
