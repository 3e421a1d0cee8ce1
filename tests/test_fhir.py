"""The FHIR R4 read API (/fhir): every answer parsed by a maintained FHIR model library, fhir.resources'
R4B models (R4B is FHIR 4.3, the R4 release line: the same Location, Organization, HealthcareService,
Schedule, Slot, Bundle, CapabilityStatement and OperationOutcome as 4.0.1); its scope, the REST API's;
the bed status and slots following holds, arrivals and declarations; errors as OperationOutcome."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome

from capacity.fhir import resources as r
from support.api import Api
from support.demo import DEMO_USERS, START

BRISTOL = "E06000023"
SUITE = "Bristol Place of Safety"  # 4 places, run by the demo bed manager's provider
TYPES = ("Location", "Organization", "HealthcareService", "Schedule", "Slot")
MEDIA_TYPE = "application/fhir+json"
# The required bindings the models do not check (they validate structure, types and cardinality).
LOCATION_STATUS = {"active", "suspended", "inactive"}
SLOT_STATUS = {"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"}
BED_STATUS = {"C", "H", "I", "K", "O", "U"}


def parsed(response, status: int = 200) -> Any:
    """The response's resource, parsed by its own fhir.resources model class (a ValidationError if invalid)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(MEDIA_TYPE)
    body = response.json()
    model = get_fhir_model_class(body["resourceType"]).model_validate(body)
    assert model.get_resource_type() == body["resourceType"]
    return model


def searched(response) -> list[dict]:
    """A searchset Bundle, parsed whole (every entry's resource by its own model) and by entry too."""
    bundle = parsed(response)
    assert isinstance(bundle, Bundle) and bundle.type == "searchset"
    entries = response.json().get("entry", [])
    assert bundle.total == len(entries)
    for entry in entries:
        get_fhir_model_class(entry["resource"]["resourceType"]).model_validate(entry["resource"])
        assert entry["fullUrl"].endswith(f"/fhir/{entry['resource']['resourceType']}/{entry['resource']['id']}")
    return [entry["resource"] for entry in entries]


def outcome(response, status: int, code: str) -> dict:
    issue = parsed(response, status)
    assert isinstance(issue, OperationOutcome)
    body = response.json()
    assert body["issue"][0]["code"] == code, body
    assert "traceback" not in response.text.lower() and "select " not in response.text.lower()
    return body["issue"][0]


async def fhir(api: Api, path: str, as_: str | None = "bedmanager"):
    return await api.get(f"/fhir/{path}", as_)


async def location(api: Api, unit_id: str) -> dict:
    return parsed(await fhir(api, f"Location/{unit_id}")).model_dump(mode="json", exclude_none=True)


async def slot_statuses(api: Api, unit_id: str) -> list[str]:
    slots = searched(await fhir(api, f"Slot?schedule=Schedule/{unit_id}"))
    assert [s["id"] for s in slots] == [f"{unit_id}.{n}" for n in range(1, len(slots) + 1)]
    return [s["status"] for s in slots]


async def declare(api: Api, unit_id: str, open_places: int, status: str = "open", **extra) -> None:
    body = {"open_places": open_places, "status": status, **extra}
    response = await api.put(f"/api/units/{unit_id}/availability", "bedmanager", json=body)
    assert response.status_code == 200, response.text


async def hold(api: Api, unit_id: str) -> str:
    person = {"ref": "FHIR-1", "age": 30, "sex": "female", "home_area": BRISTOL}
    response = await api.post("/api/holds", "amhp", json={"unit_id": unit_id, "purpose": "s136", "person": person})
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def test_metadata_is_open_and_lists_exactly_what_is_served(api: Api) -> None:
    response = await fhir(api, "metadata", None)  # no token, as FHIR servers serve it
    statement = parsed(response)
    assert isinstance(statement, CapabilityStatement)
    assert statement.fhirVersion == "4.0.1" and statement.kind == "instance" and statement.status == "active"
    assert MEDIA_TYPE in statement.format
    (rest,) = statement.rest
    assert rest.mode == "server"
    assert [res.type for res in rest.resource] == list(TYPES)
    for res in rest.resource:
        assert [i.code for i in res.interaction] == ["read", "search-type"]
        # Every listed search parameter is taken; one not listed is refused as not supported.
        for param in res.searchParam:
            assert (await fhir(api, f"{res.type}?{param.name}=x")).status_code == 200, (res.type, param.name)
        outcome(await fhir(api, f"{res.type}?name=x"), 400, "not-supported")
    # A type not listed, and the interactions not listed, are not served.
    outcome(await fhir(api, "Patient"), 404, "not-found")
    outcome(await fhir(api, "Patient/1"), 404, "not-found")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        outcome(await api.request(method, "/fhir/Location", "admin", json={}), 405, "not-supported")
        outcome(await api.request(method, "/fhir/Slot/x", "admin", json={}), 405, "not-supported")


@pytest.mark.parametrize("caller", DEMO_USERS)
async def test_every_resource_validates_and_reads_as_it_searches(api: Api, caller: str) -> None:
    for resource_type in TYPES:
        found = searched(await fhir(api, resource_type, caller))
        assert found, resource_type
        for resource in found[:: max(1, len(found) // 5)]:  # a spread of each type, read by id
            read = await fhir(api, f"{resource_type}/{resource['id']}", caller)
            parsed(read)
            assert read.json() == resource
    for res in searched(await fhir(api, "Location", caller)):
        assert res["status"] in LOCATION_STATUS and res["operationalStatus"]["code"] in BED_STATUS
        assert res["operationalStatus"]["system"] == r.BED_STATUS
    assert {s["status"] for s in searched(await fhir(api, "Slot", caller))} <= SLOT_STATUS


@pytest.mark.parametrize("caller", DEMO_USERS)
async def test_scoped_as_the_rest_api(api: Api, caller: str) -> None:
    """Units, their figures and providers are for every user in REST (not person data): FHIR shows each
    role exactly what REST shows it, the bed manager's other providers' units included, and counts only."""
    units = {u["id"]: u for u in (await api.get("/api/units", caller)).json()}
    providers = {p["id"] for p in (await api.get("/api/providers", caller)).json()}
    locations = searched(await fhir(api, "Location?status=active", caller))
    assert {loc["id"] for loc in locations} == set(units)
    assert {o["id"] for o in searched(await fhir(api, "Organization", caller))} == providers
    for loc in locations:
        unit = units[loc["id"]]
        assert loc["managingOrganization"]["reference"] == f"Organization/{unit['provider_id']}"
        assert (loc["position"]["latitude"], loc["position"]["longitude"]) == (unit["lat"], unit["lon"])
        assert loc["type"][0]["coding"][0] == {
            "system": r.UNIT_KIND,
            "code": unit["kind"],
            "display": loc["type"][0]["text"],
        }
        slots = searched(await fhir(api, f"Slot?schedule={loc['id']}", caller))
        assert [s["status"] for s in slots].count("free") == unit["available"]
        assert [s["status"] for s in slots].count("busy-tentative") == unit["held"]
        assert [s["status"] for s in slots].count("busy") == unit["occupied"]
    # What a hold reveals is a count: no id, reference or person detail of the hold in any answer.
    suite = await api.unit(SUITE)
    hold_id = await hold(api, suite.id)
    for resource_type in TYPES:
        text = (await fhir(api, resource_type, caller)).text
        assert hold_id not in text and "FHIR-1" not in text


@pytest.mark.parametrize("token", [None, "not.a.token"])
async def test_without_a_valid_token_401_operation_outcome(api: Api, token: str | None) -> None:
    suite = await api.unit(SUITE)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for path in ("Location", f"Location/{suite.id}", "Slot", "Organization", "Patient"):
        response = await api.get(f"/fhir/{path}", headers=headers)
        outcome(response, 401, "login")
        assert suite.name not in response.text


async def test_a_deactivated_users_token_stops_working(api: Api) -> None:
    assert (await fhir(api, "Location", "amhp")).status_code == 200
    off = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"active": False})
    assert off.status_code == 200, off.text
    outcome(await fhir(api, "Location", "amhp"), 401, "login")


async def test_unknown_ids_are_404_operation_outcomes(api: Api) -> None:
    suite = await api.unit(SUITE)
    provider = await api.provider("Avon")
    for path in (
        "Location/no-such-unit",
        "Organization/no-such-provider",
        "HealthcareService/no-such-provider.picu",
        f"HealthcareService/{provider.id}.respite",  # a kind this provider runs no unit of
        f"HealthcareService/{provider.id}.no-such-kind",
        f"HealthcareService/{provider.id}",
        "Schedule/no-such-unit",
        f"Slot/{suite.id}.5",  # the suite has 4 places
        f"Slot/{suite.id}.0",
        f"Slot/{suite.id}",
    ):
        issue = outcome(await fhir(api, path), 404, "not-found")
        assert path.split("/")[0] in issue["diagnostics"]


async def test_operational_status_and_slots_follow_holds_arrivals_and_declarations(api: Api) -> None:
    suite = await api.unit(SUITE)

    async def state() -> tuple[str, list[str]]:
        return (await location(api, suite.id))["operationalStatus"]["code"], await slot_statuses(api, suite.id)

    assert await state() == ("U", ["free"] * 4)
    await declare(api, suite.id, 1)  # a figure change
    assert await state() == ("U", ["free"])
    hold_id = await hold(api, suite.id)  # the last place held: none is free
    assert await state() == ("O", ["busy-tentative"])
    await declare(api, suite.id, 2)
    assert await state() == ("U", ["busy-tentative", "free"])
    arrived = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={})
    assert arrived.status_code == 201, arrived.text
    assert await state() == ("U", ["busy", "free"])
    second = await hold(api, suite.id)
    assert await state() == ("O", ["busy", "busy-tentative"])
    await declare(api, suite.id, 2, status="closed", closed_reason="infection_control")
    assert await state() == ("C", ["busy", "busy-tentative"])
    await declare(api, suite.id, 3, status="closed", closed_reason="staffing")
    assert await state() == ("C", ["busy", "busy-tentative", "busy-unavailable"])
    await declare(api, suite.id, 1)  # over-occupied: each person placed or held still has a slot
    assert await state() == ("O", ["busy", "busy-tentative"])
    api.clock.advance(minutes=60)  # the 136 suite's hold lifetime: the hold ends at read time
    assert await state() == ("O", ["busy"])
    await declare(api, suite.id, 0)  # no places declared
    assert await state() == ("C", ["busy"])
    assert (await api.get(f"/api/holds/{second}", "amhp")).json()["status"] == "expired"


async def test_a_retired_unit_is_closed_and_inactive(api: Api) -> None:
    suite = await api.unit(SUITE)
    retired = await api.request("PATCH", f"/api/admin/units/{suite.id}", "admin", json={"active": False})
    assert retired.status_code == 200, retired.text
    found = await location(api, suite.id)
    assert (found["status"], found["operationalStatus"]["code"]) == ("inactive", "C")
    assert await slot_statuses(api, suite.id) == ["busy-unavailable"] * 4
    assert parsed(await fhir(api, f"Schedule/{suite.id}")).active is False
    assert suite.id not in {loc["id"] for loc in searched(await fhir(api, "Location?status=active"))}
    assert suite.id in {loc["id"] for loc in searched(await fhir(api, "Location?status=inactive"))}


async def test_slots_and_schedules_span_one_hold_lifetime_from_now(api: Api) -> None:
    suite = await api.unit(SUITE)
    api.clock.advance(minutes=7)
    now = START + timedelta(minutes=7)
    schedule = parsed(await fhir(api, f"Schedule/{suite.id}"))
    assert (schedule.planningHorizon.start, schedule.planningHorizon.end) == (now, now + timedelta(hours=1))
    assert {a.reference for a in schedule.actor} == {
        f"Location/{suite.id}",
        f"HealthcareService/{suite.provider_id}.s136-suite",
    }
    slot = parsed(await fhir(api, f"Slot/{suite.id}.1"))
    assert (slot.start, slot.end, slot.status) == (now, now + timedelta(hours=1), "free")
    assert slot.schedule.reference == f"Schedule/{suite.id}"


async def test_services_are_each_providers_kinds_and_organizations_carry_ods_codes(api: Api) -> None:
    units = (await api.get("/api/units", "admin")).json()
    services = searched(await fhir(api, "HealthcareService"))
    assert {(s["providedBy"]["reference"], s["type"][0]["coding"][0]["code"]) for s in services} == {
        (f"Organization/{u['provider_id']}", u["kind"]) for u in units
    }
    for service in services:
        assert service["type"][0]["coding"][0]["system"] == r.UNIT_KIND
        assert {loc["reference"].removeprefix("Location/") for loc in service["location"]} == {
            u["id"]
            for u in units
            if f"Organization/{u['provider_id']}" == service["providedBy"]["reference"]
            and u["kind"] == service["type"][0]["coding"][0]["code"]
        }
    suite = await api.unit(SUITE)
    mine = searched(await fhir(api, f"HealthcareService?organization={suite.provider_id}&service-type=s136_suite"))
    assert [s["id"] for s in mine] == [f"{suite.provider_id}.s136-suite"]

    patched = await api.request("PATCH", f"/api/admin/providers/{suite.provider_id}", "admin", json={"ods_code": "RVN"})
    assert patched.status_code == 200, patched.text
    org = parsed(await fhir(api, f"Organization/{suite.provider_id}"))
    assert [(i.system, i.value) for i in org.identifier] == [(r.ODS, "RVN")]
    for query in (f"identifier={r.ODS}|RVN", "identifier=RVN"):
        assert [o["id"] for o in searched(await fhir(api, f"Organization?{query}"))] == [suite.provider_id]
    assert searched(await fhir(api, "Organization?identifier=https://example.org/other|RVN")) == []
    # Location search by its provider, and by bed status (the comma is FHIR's "or").
    at_provider = searched(await fhir(api, f"Location?organization=Organization/{suite.provider_id}"))
    assert suite.id in {loc["id"] for loc in at_provider}
    assert {loc["managingOrganization"]["reference"] for loc in at_provider} == {f"Organization/{suite.provider_id}"}
    await declare(api, suite.id, 0)
    closed = {loc["id"] for loc in searched(await fhir(api, f"Location?operational-status={r.BED_STATUS}|C"))}
    assert suite.id in closed
    assert suite.id in {loc["id"] for loc in searched(await fhir(api, "Location?operational-status=O,C"))}
    assert suite.id not in {loc["id"] for loc in searched(await fhir(api, "Location?operational-status=U"))}
