"""Who may do what: every role, and no token, against every endpoint of the foundation."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from capacity.audit import AuditEntry
from capacity.booking.units.models import AvailabilityDeclaration
from capacity.demo import AREAS, PROVIDERS, UNITS
from support.api import Api, assert_problem
from support.demo import DEMO_USERS

NO_TOKEN, BAD_TOKEN = "<no token>", "<bad token>"
CALLERS = (NO_TOKEN, BAD_TOKEN, *DEMO_USERS)
OWN_UNIT = "Bristol Place of Safety"  # run by the bed manager's provider
OTHER_UNIT = "Taunton 136 Suite"  # run by another provider

READS = [
    "/api/areas",
    "/api/providers",
    "/api/units",
    "/api/units?kind=s136_suite&near=51.45,-2.59&home_area=E06000023",
    "/api/units/{unit_id}",
    "/api/me",
]


async def call(api: Api, method: str, url: str, caller: str, **kw):
    if caller == NO_TOKEN:
        return await api.request(method, url, **kw)
    if caller == BAD_TOKEN:
        return await api.request(method, url, headers={"Authorization": "Bearer not.a.token"}, **kw)
    return await api.request(method, url, caller, **kw)


@pytest.mark.parametrize("url", READS)
@pytest.mark.parametrize("caller", CALLERS)
async def test_reads_need_a_token_and_every_role_may_read(api: Api, caller: str, url: str) -> None:
    unit = await api.unit(OWN_UNIT)
    response = await call(api, "GET", url.format(unit_id=unit.id), caller)
    if caller in (NO_TOKEN, BAD_TOKEN):
        body = assert_problem(response, 401)
        assert unit.name not in response.text and "E06000023" not in body["detail"]
        return
    assert response.status_code == 200, response.text
    assert response.json(), "an allowed read returns the data"


# (caller, unit, expected status) for PUT /api/units/{id}/availability
DECLARE = [
    (NO_TOKEN, OWN_UNIT, 401),
    (BAD_TOKEN, OWN_UNIT, 401),
    ("admin", OWN_UNIT, 200),
    ("admin", OTHER_UNIT, 200),
    ("bedmanager", OWN_UNIT, 200),
    ("bedmanager", OTHER_UNIT, 403),
    ("amhp", OWN_UNIT, 403),
    ("amhp", OTHER_UNIT, 403),
    ("commissioner", OWN_UNIT, 403),
    ("commissioner", OTHER_UNIT, 403),
    ("conveyance", OWN_UNIT, 403),
    ("conveyance", OTHER_UNIT, 403),
]


async def history_and_audit(api: Api, unit_id: str) -> tuple[int, int]:
    async with api.db.read_sessions() as session:
        declarations = await session.scalar(
            select(func.count()).select_from(AvailabilityDeclaration).where(AvailabilityDeclaration.unit_id == unit_id)
        )
        audit = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.object_id == unit_id)
        )
    return declarations, audit


@pytest.mark.parametrize(("caller", "unit_name", "status"), DECLARE)
async def test_only_admins_and_the_units_own_bed_managers_may_declare(
    api: Api, caller: str, unit_name: str, status: int
) -> None:
    unit = await api.unit(unit_name)
    before = (await api.get(f"/api/units/{unit.id}", "admin")).json()
    counts_before = await history_and_audit(api, unit.id)
    api.clock.advance(minutes=10)
    new_figures = {"open_places": before["open_places"] - 1, "status": "closed", "closed_reason": "staffing"}

    response = await call(api, "PUT", f"/api/units/{unit.id}/availability", caller, json=new_figures)

    after = (await api.get(f"/api/units/{unit.id}", "admin")).json()
    counts_after = await history_and_audit(api, unit.id)
    if status == 200:
        assert response.status_code == 200, response.text
        assert (after["open_places"], after["status"], after["closed_reason"]) == (
            before["open_places"] - 1,
            "closed",
            "staffing",
        )
        assert after["last_confirmed_by"] == caller
        assert counts_after == (counts_before[0] + 1, counts_before[1] + 1)
    else:
        assert_problem(response, status)
        assert after == before, "a refused declaration must change nothing"
        assert counts_after == counts_before, "a refused declaration must leave no history or audit entry"


async def test_areas_are_the_demo_areas_with_their_local_provider_networks(api: Api) -> None:
    providers = {p["id"]: p for p in (await api.get("/api/providers", "amhp")).json()}
    areas = (await api.get("/api/areas", "amhp")).json()
    assert sorted(a["code"] for a in areas) == sorted(code for code, *_ in AREAS)
    assert len(areas) == 6
    by_code = {a["code"]: a for a in areas}
    for code, name, _region, lat, lon in AREAS:
        area = by_code[code]
        assert area["name"] == name
        assert area["lat"] == pytest.approx(lat) and area["lon"] == pytest.approx(lon)
        assert isinstance(area["local_provider_ids"], list)
        assert set(area["local_provider_ids"]) <= set(providers), "local providers must be real providers"
        local_names = sorted(providers[pid]["name"] for pid in area["local_provider_ids"])
        # The providers with at least one unit local to the area (out of area is decided per unit).
        local_keys = {unit[0] for unit in UNITS if code in unit[8]["local_to"]}
        expected = sorted(PROVIDERS[key][0] for key in local_keys)
        assert local_names == expected, code
    # The bed manager's trust is part of Bristol's local network; the far-away private hospital of none.
    bristol_suite = await api.unit(OWN_UNIT)
    assert bristol_suite.provider_id in by_code["E06000023"]["local_provider_ids"]
    private = next(pid for pid, p in providers.items() if p["sector"] == "private")
    assert all(private not in a["local_provider_ids"] for a in areas)


async def test_providers_have_a_sector(api: Api) -> None:
    providers = (await api.get("/api/providers", "conveyance")).json()
    assert sorted((p["name"], p["sector"]) for p in providers) == sorted(
        (name, sector) for name, sector in PROVIDERS.values()
    )
    assert {p["sector"] for p in providers} == {"nhs", "private", "voluntary"}
    assert len({p["id"] for p in providers}) == len(providers)
    units = (await api.get("/api/units", "amhp")).json()
    assert {u["provider_id"] for u in units} <= {p["id"] for p in providers}
