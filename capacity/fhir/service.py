"""Reading units, providers and their figures for the FHIR API: one read, one instant, one calculator.

Who may read: exactly who may read them in REST. Units, their figures and providers are read by every
authenticated user (README "The API": `GET /api/units`, `/api/units/{id}`, `/api/providers` are for any
user) and are not person data (capacity.auth.scope), so no role narrows them; nothing here names a
person or a hold, only counts (a held place is a `busy-tentative` Slot with no link to its hold).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from capacity.booking.units.availability import UnitFigures, figures
from capacity.booking.units.models import Area, Provider, Unit
from capacity.db.engine import Database
from capacity.db.unit_of_work import Reading
from capacity.errors import DomainError, NotFound
from capacity.fhir import resources as r

Resource = dict[str, Any]


class BadRequest(DomainError):
    status, slug = 400, "bad-request"


# --- search parameters: each a FHIR type and the values of a resource it matches -------------------------


def _ids(resource: Resource) -> set[str]:
    return {resource["id"]}


def _refs(*fields: str) -> Callable[[Resource], set[str]]:
    def values(resource: Resource) -> set[str]:
        found: set[str] = set()
        for name in fields:
            value = resource.get(name)
            for ref in value if isinstance(value, list) else [value] if value else []:
                found |= {ref["reference"], ref["reference"].partition("/")[2]}
        return found

    return values


def _coding_tokens(codings: Iterable[dict[str, Any]]) -> set[str]:
    found: set[str] = set()
    for coding in codings:
        system, code = coding.get("system", ""), coding["code"]
        found |= {code, f"{system}|{code}", f"{system}|"}
    return found


def _concepts(field: str) -> Callable[[Resource], set[str]]:
    return lambda resource: _coding_tokens(c for concept in resource.get(field, []) for c in concept["coding"])


def _coding(field: str) -> Callable[[Resource], set[str]]:
    return lambda resource: _coding_tokens([resource[field]])


def _identifiers(resource: Resource) -> set[str]:
    return _coding_tokens({"system": i.get("system", ""), "code": i["value"]} for i in resource.get("identifier", []))


def _plain(field: str) -> Callable[[Resource], set[str]]:
    def values(resource: Resource) -> set[str]:
        value = resource.get(field)
        return {str(value).lower() if isinstance(value, bool) else str(value)}

    return values


@dataclass(frozen=True)
class SearchParam:
    type: str  # FHIR's search parameter type, as the CapabilityStatement lists it
    values: Callable[[Resource], set[str]]
    documentation: str


SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    "Location": {
        "_id": SearchParam("token", _ids, "the unit's id"),
        "organization": SearchParam("reference", _refs("managingOrganization"), "the provider running the unit"),
        "type": SearchParam("token", _concepts("type"), f"the unit kind ({r.UNIT_KIND})"),
        "status": SearchParam("token", _plain("status"), "active, or inactive for a retired unit"),
        "operational-status": SearchParam(
            "token", _coding("operationalStatus"), f"{r.BED_STATUS}: C closed, O occupied, U unoccupied"
        ),
    },
    "Organization": {
        "_id": SearchParam("token", _ids, "the provider's id"),
        "identifier": SearchParam("token", _identifiers, f"the ODS code ({r.ODS})"),
    },
    "HealthcareService": {
        "_id": SearchParam("token", _ids, "provider id '.' unit kind"),
        "organization": SearchParam("reference", _refs("providedBy"), "the provider"),
        "service-type": SearchParam("token", _concepts("type"), f"the unit kind ({r.UNIT_KIND})"),
        "location": SearchParam("reference", _refs("location"), "one of its units"),
        "active": SearchParam("token", _plain("active"), "true while any of its units is not retired"),
    },
    "Schedule": {
        "_id": SearchParam("token", _ids, "the unit's id"),
        "actor": SearchParam("reference", _refs("actor"), "the unit (Location) or its HealthcareService"),
        "active": SearchParam("token", _plain("active"), "false for a retired unit"),
    },
    "Slot": {
        "_id": SearchParam("token", _ids, "the unit's id '.' the place's number"),
        "schedule": SearchParam("reference", _refs("schedule"), "the unit's Schedule"),
        "status": SearchParam(
            "token", _plain("status"), "free, busy-tentative (held), busy (occupied) or busy-unavailable"
        ),
    },
}
RESOURCE_TYPES = tuple(SEARCH_PARAMS)
# Parameters every search takes and that select nothing.
_FORMATS = {"json", "application/json", "application/fhir+json"}


def parse_search(resource_type: str, query: Sequence[tuple[str, str]]) -> list[tuple[SearchParam, set[str]]]:
    """The search's conditions: each parameter given is one condition (AND), its comma-separated values
    alternatives (OR). An unknown parameter is refused (400), never silently ignored."""
    known = SEARCH_PARAMS[resource_type]
    conditions = []
    for name, value in query:
        if name == "_format":
            if value not in _FORMATS:
                raise BadRequest(f"_format {value!r} is not served: only JSON ({r.MEDIA_TYPE})", field="_format")
            continue
        if name not in known:
            raise BadRequest(
                f"{resource_type} search does not support the parameter {name!r}; supported: {', '.join(known)}",
                field=name,
            )
        conditions.append((known[name], {v.strip() for v in value.split(",") if v.strip()}))
    return conditions


def matching(resources: Iterable[Resource], conditions: list[tuple[SearchParam, set[str]]]) -> list[Resource]:
    return [res for res in resources if all(param.values(res) & wanted for param, wanted in conditions)]


# --- reading --------------------------------------------------------------------------------------------


@dataclass
class World:
    """What one read found: units with their figures, providers and area names, at `now`."""

    now: datetime
    hold_seconds: dict[str, int]
    units: list[UnitFigures]
    providers: dict[str, Any]
    area_names: dict[str, str]

    def window(self, kind: str) -> r.Window:
        return r.Window.of(self.now, self.hold_seconds[kind])

    def location(self, f: UnitFigures) -> Resource:
        provider = self.providers.get(f.unit.provider_id)
        return r.location(f, self.area_names.get(f.unit.area_code), provider.name if provider else None)


async def _world(reading: Reading, *, unit_id: str | None = None, provider_id: str | None = None) -> World:
    session = reading.session
    units_query = select(*Unit.__table__.columns).order_by(Unit.name, Unit.id)
    providers_query = select(Provider).order_by(Provider.name, Provider.id)
    if unit_id is not None:
        units_query = units_query.where(Unit.id == unit_id)
    if provider_id is not None:
        units_query = units_query.where(Unit.provider_id == provider_id)
        providers_query = providers_query.where(Provider.id == provider_id)
    rows = list((await session.execute(units_query)).all())
    by_id = await figures(reading, rows)  # the one availability calculator
    providers = {p.id: p for p in (await session.scalars(providers_query)).all()}
    area_names = {code: name for code, name in (await session.execute(select(Area.code, Area.name))).all()}
    return World(reading.now, reading.settings.hold_seconds, [by_id[u.id] for u in rows], providers, area_names)


def _locations(world: World) -> list[Resource]:
    return [world.location(f) for f in world.units]


def _organizations(world: World) -> list[Resource]:
    return [r.organization(p) for p in world.providers.values()]


def _services(world: World) -> list[Resource]:
    by_service: dict[tuple[str, str], list[Any]] = defaultdict(list)
    for f in world.units:
        by_service[(f.unit.provider_id, f.unit.kind)].append(f.unit)
    return [
        r.healthcare_service(world.providers[provider_id], kind, units)
        for (provider_id, kind), units in sorted(by_service.items(), key=lambda item: (item[0][0], item[0][1]))
        if provider_id in world.providers
    ]


def _schedules(world: World) -> list[Resource]:
    return [r.schedule(f, world.window(f.unit.kind)) for f in world.units]


def _slots(world: World) -> list[Resource]:
    return [slot for f in world.units for slot in r.slots(f, world.window(f.unit.kind))]


_BUILDERS: dict[str, Callable[[World], list[Resource]]] = {
    "Location": _locations,
    "Organization": _organizations,
    "HealthcareService": _services,
    "Schedule": _schedules,
    "Slot": _slots,
}


_ID_PARSERS: dict[str, Callable[[str], tuple[str, object] | None]] = {
    "Slot": r.parse_slot_id,
    "HealthcareService": r.parse_service_id,
}


async def search(db: Database, resource_type: str, query: Sequence[tuple[str, str]]) -> list[Resource]:
    conditions = parse_search(resource_type, query)
    async with db.read() as reading:
        world = await _world(reading)
    return matching(_BUILDERS[resource_type](world), conditions)


async def read(db: Database, resource_type: str, resource_id: str) -> Resource:
    """One resource by id; 404 when there is none."""
    missing = NotFound(f"no {resource_type} with id {resource_id}")
    # A Slot's id is "<unit id>.<n>", a HealthcareService's "<provider id>.<kind>"; the others' are the
    # unit's or provider's own. Only that one unit or provider is read.
    parse = _ID_PARSERS.get(resource_type)
    parsed = parse(resource_id) if parse else (resource_id, None)
    if parsed is None:
        raise missing
    of_unit = resource_type in ("Location", "Schedule", "Slot")
    unit_id, provider_id = (parsed[0], None) if of_unit else (None, parsed[0])
    async with db.read() as reading:
        world = await _world(reading, unit_id=unit_id, provider_id=provider_id)
    found = [res for res in _BUILDERS[resource_type](world) if res["id"] == resource_id]
    if not found:
        raise missing
    return found[0]
