"""FHIR R4 resources as plain JSON objects, built from the service's own rows and figures (no I/O here).

Every availability number comes from `UnitFigures` (capacity.booking.units.availability, the one
calculator); this module only says it in FHIR's words:

- a unit is a `Location` whose `operationalStatus` (v2-0116 bed status) is
  C closed when the unit is retired, declared closed (whatever the closed reason) or declares no open
  places; otherwise O occupied when no place is free (every declared place occupied or held) and
  U unoccupied when at least one is. H housekeeping, K contaminated and I isolated are not used: the
  service records no such state of a place (a unit closed for infection control takes no one: C);
- a provider is an `Organization`, with its ODS code as identifier;
- a provider's units of one kind are one `HealthcareService`;
- each unit has one `Schedule`, and each of its places one `Slot`, from now to now plus the hold
  lifetime of the unit's kind: `busy` for an occupied place, `busy-tentative` for a held one, `free` for
  an available one and `busy-unavailable` for a declared place the unit does not offer (it is closed or
  retired). There are max(open places, occupied + held) slots, so an over-occupied unit shows each
  person placed or held and no free slot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from capacity.booking.units.availability import UnitFigures
from capacity.codes import Sector, UnitKind

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"

BED_STATUS = "http://terminology.hl7.org/CodeSystem/v2-0116"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
# The project's own code systems: the codes are capacity.codes' values, stable by contract there.
CODE_SYSTEMS = "https://capacity.example/fhir/CodeSystem"
UNIT_KIND = f"{CODE_SYSTEMS}/unit-kind"
PROVIDER_SECTOR = f"{CODE_SYSTEMS}/provider-sector"

CLOSED, OCCUPIED, UNOCCUPIED = "C", "O", "U"
BED_STATUS_LABELS = {CLOSED: "Closed", OCCUPIED: "Occupied", UNOCCUPIED: "Unoccupied"}


def instant(at: datetime) -> str:
    """A FHIR instant in UTC, to the second."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def kind_id(kind: str) -> str:
    """A unit kind as a piece of a FHIR id (ids take letters, digits, '-' and '.', not '_')."""
    return kind.replace("_", "-")


def service_id(provider_id: str, kind: str) -> str:
    return f"{provider_id}.{kind_id(kind)}"


def parse_service_id(resource_id: str) -> tuple[str, str] | None:
    """(provider id, unit kind) of a HealthcareService id, or None if it is not one."""
    provider_id, _, kind = resource_id.rpartition(".")
    for code in UnitKind:
        if kind == kind_id(code.value) and provider_id:
            return provider_id, code.value
    return None


def slot_id(unit_id: str, index: int) -> str:
    return f"{unit_id}.{index}"


def parse_slot_id(resource_id: str) -> tuple[str, int] | None:
    unit_id, _, index = resource_id.rpartition(".")
    if not unit_id or not index.isdigit():
        return None
    return unit_id, int(index)


def kind_concept(kind: str) -> dict[str, Any]:
    label = UnitKind(kind).label
    return {"coding": [{"system": UNIT_KIND, "code": kind, "display": label}], "text": label}


def reference(resource_type: str, resource_id: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"reference": f"{resource_type}/{resource_id}"}
    if display:
        found["display"] = display
    return found


def operational_status(figures: UnitFigures) -> str:
    """The unit's v2-0116 bed status (the mapping is in the module's docstring)."""
    unit = figures.unit
    if not unit.active or unit.status != "open" or unit.open_places == 0:
        return CLOSED
    return UNOCCUPIED if figures.available > 0 else OCCUPIED


def location(figures: UnitFigures, area_name: str | None, provider_name: str | None) -> dict[str, Any]:
    unit = figures.unit
    status = operational_status(figures)
    address: dict[str, Any] = {"use": "work", "type": "physical", "country": "GB"}
    if area_name:
        address["district"] = area_name
    if unit.postcode:
        address["postalCode"] = unit.postcode
    found: dict[str, Any] = {
        "resourceType": "Location",
        "id": unit.id,
        "status": "active" if unit.active else "inactive",
        "operationalStatus": {"system": BED_STATUS, "code": status, "display": BED_STATUS_LABELS[status]},
        "name": unit.name,
        "description": (
            f"{UnitKind(unit.kind).label}: {figures.available} of {unit.open_places} declared places free, "
            f"{figures.held} held, {figures.occupied} occupied"
            + (" (figures not confirmed recently)" if figures.stale else "")
        ),
        "mode": "instance",
        "type": [kind_concept(unit.kind)],
        "address": address,
        "position": {"longitude": unit.lon, "latitude": unit.lat},
        "managingOrganization": reference("Organization", unit.provider_id, provider_name),
    }
    if unit.code:
        found["identifier"] = [{"use": "usual", "value": unit.code}]
    return found


def organization(provider: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "resourceType": "Organization",
        "id": provider.id,
        "active": True,
        "type": [
            {
                "coding": [
                    {"system": PROVIDER_SECTOR, "code": provider.sector, "display": Sector(provider.sector).label}
                ],
            }
        ],
        "name": provider.name,
    }
    if provider.ods_code:
        found["identifier"] = [{"use": "official", "system": ODS, "value": provider.ods_code}]
    return found


def healthcare_service(provider: Any, kind: str, units: Iterable[Any]) -> dict[str, Any]:
    """A provider's units of one kind (active when any of them is)."""
    units = list(units)
    return {
        "resourceType": "HealthcareService",
        "id": service_id(provider.id, kind),
        "active": any(u.active for u in units),
        "providedBy": reference("Organization", provider.id, provider.name),
        "type": [kind_concept(kind)],
        "location": [reference("Location", u.id, u.name) for u in units],
        "name": f"{provider.name}: {UnitKind(kind).label}",
    }


@dataclass(frozen=True)
class Window:
    """What a unit's slots span: from the reading's instant for one hold lifetime of the unit's kind."""

    start: datetime
    end: datetime

    @classmethod
    def of(cls, now: datetime, hold_seconds: int) -> Window:
        return cls(now, now + timedelta(seconds=hold_seconds))


def schedule(figures: UnitFigures, window: Window) -> dict[str, Any]:
    unit = figures.unit
    return {
        "resourceType": "Schedule",
        "id": unit.id,
        "active": bool(unit.active),
        "serviceType": [kind_concept(unit.kind)],
        "actor": [
            reference("Location", unit.id, unit.name),
            reference("HealthcareService", service_id(unit.provider_id, unit.kind)),
        ],
        "planningHorizon": {"start": instant(window.start), "end": instant(window.end)},
        "comment": "One slot per declared place, from now for one hold lifetime of the unit's kind.",
    }


def slot_statuses(figures: UnitFigures) -> list[str]:
    """One status per place, in order: occupied, held, free, then places the unit does not offer."""
    unit = figures.unit
    offered = figures.available if unit.active else 0
    places = max(unit.open_places, figures.occupied + figures.held)
    statuses = ["busy"] * figures.occupied + ["busy-tentative"] * figures.held + ["free"] * offered
    return statuses + ["busy-unavailable"] * (places - len(statuses))


def slots(figures: UnitFigures, window: Window) -> list[dict[str, Any]]:
    unit = figures.unit
    return [
        {
            "resourceType": "Slot",
            "id": slot_id(unit.id, index),
            "serviceType": [kind_concept(unit.kind)],
            "schedule": reference("Schedule", unit.id, unit.name),
            "status": status,
            "start": instant(window.start),
            "end": instant(window.end),
        }
        for index, status in enumerate(slot_statuses(figures), start=1)
    ]


def bundle(base_url: str, self_url: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


# (FHIR's issue type code) for each HTTP status a FHIR route may answer with.
ISSUE_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    410: "deleted",
    422: "processing",
    429: "throttled",
    503: "transient",
}


def operation_outcome(status: int, title: str, detail: str, code: str | None = None) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "fatal" if status >= 500 else "error",
                "code": code or ISSUE_CODES.get(status, "exception"),
                "details": {"text": title},
                "diagnostics": detail,
            }
        ],
    }
