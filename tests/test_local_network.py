"""Out of area is decided per unit's local network (DHSC 2016), not per provider (issue 10 item 7).

"A Wiltshire resident at a Bristol PICU 40 km away is an out-of-area placement even when one trust runs
both": in the demo data AWP runs the shared Bristol 136 suite and the Bath wards, which are local to
Wiltshire, and the Bristol PICU, which is not. Live placements (arrival and direct admission), the
search's `out_of_area` flag and the history importer all follow the one rule, on both engines.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, select, text

from capacity.auth.models import UserArea
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Unit, UnitLocalArea
from capacity.demo import AREAS
from capacity.imports.placements import COLUMNS, import_placements
from support.api import Api, assert_problem
from support.databases import own_database
from support.demo import ENGINES
from support.migrating import engine_of, migrate_filled, rows_of, table_names

BANES, BRISTOL, WILTSHIRE = "E06000022", "E06000023", "E06000054"
PICU, HILLVIEW = "Bristol PICU", "Hillview Lodge"


def person(home_area: str, ref: str = "LOCAL-1", age: int = 40, sex: str = "male") -> dict:
    return {"ref": ref, "age": age, "sex": sex, "ethnicity": "A", "home_area": home_area}


async def admit(api: Api, unit: Unit, home_area: str, oap_reason: str | None = None, **person_fields):
    """A direct admission by AWP's bed manager (who may admit anyone, from any area, to AWP's units)."""
    body: dict = {"unit_id": unit.id, "legal_basis": "s2", "person": person(home_area, **person_fields)}
    if oap_reason is not None:
        body["oap_reason"] = oap_reason
    return await api.post("/api/placements", "bedmanager", json=body)


async def areas(api: Api) -> dict[str, dict]:
    return {a["code"]: a for a in (await api.get("/api/areas", "amhp")).json()}


async def search_flags(api: Api, home_area: str, **query) -> dict[str, bool]:
    response = await api.get("/api/units", "amhp", params={"home_area": home_area, **query})
    assert response.status_code == 200, response.text
    return {u["id"]: u["out_of_area"] for u in response.json()}


async def set_local_areas(api: Api, unit: Unit, codes: list[str]) -> None:
    async with api.db.write_sessions() as session, session.begin():
        await session.execute(delete(UnitLocalArea).where(UnitLocalArea.unit_id == unit.id))
        session.add_all(UnitLocalArea(unit_id=unit.id, area_code=code) for code in codes)


async def test_a_wiltshire_resident_at_the_bristol_picu_is_out_of_area_although_its_trust_serves_wiltshire(
    api: Api,
) -> None:
    picu = await api.unit(PICU)
    # The per-provider rule would call this placement local: AWP is in Wiltshire's network.
    assert picu.provider_id in (await areas(api))[WILTSHIRE]["local_provider_ids"]
    assert WILTSHIRE not in picu.local_to_areas
    async with api.db.write_sessions() as session, session.begin():
        amhp = await api.user("amhp")
        session.add(UserArea(user_id=amhp.id, area_code=WILTSHIRE))
    api._tokens.pop("amhp", None)  # a token says its user's areas: sign in again to carry Wiltshire
    held = await api.post(
        "/api/holds",
        "amhp",
        json={"unit_id": picu.id, "purpose": "admission", "person": person(WILTSHIRE)},
    )
    assert held.status_code == 201, held.text
    hold_id = held.json()["id"]
    # An out-of-area placement at an acute (PICU) unit needs an oap_reason.
    refused = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"legal_basis": "s2"})
    assert_problem(refused, 422, "oap_reason")
    arrived = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"legal_basis": "s2", "oap_reason": "10"})
    assert arrived.status_code == 201, arrived.text
    placement = arrived.json()
    assert (placement["out_of_area"], placement["oap_reason"]) == (True, "10")
    assert 35 < placement["distance_km"] < 45  # Wiltshire's centre to the Bristol PICU: about 40 km


async def test_a_placement_at_a_unit_local_to_the_home_area_is_not_out_of_area(api: Api) -> None:
    picu, hillview = await api.unit(PICU), await api.unit(HILLVIEW)
    assert picu.provider_id == hillview.provider_id and WILTSHIRE in hillview.local_to_areas
    # The same trust's Bath ward is local to Wiltshire: no oap_reason is needed, and none is taken.
    assert_problem(await admit(api, hillview, WILTSHIRE, oap_reason="10"), 422, "oap_reason")
    local = await admit(api, hillview, WILTSHIRE)
    assert local.status_code == 201, local.text
    assert (local.json()["out_of_area"], local.json()["oap_reason"]) == (False, None)
    # The PICU is local to Bristol.
    bristol = await admit(api, picu, BRISTOL, ref="LOCAL-2")
    assert bristol.status_code == 201, bristol.text
    assert bristol.json()["out_of_area"] is False
    # And not to Wiltshire: the same unit, a person from another area.
    assert_problem(await admit(api, picu, WILTSHIRE, ref="LOCAL-3"), 422, "oap_reason")


async def test_the_local_network_is_the_units_own_and_areas_list_the_providers_of_its_units(api: Api) -> None:
    picu, hillview = await api.unit(PICU), await api.unit(HILLVIEW)
    awp = picu.provider_id
    # Make the PICU local to Wiltshire and the Bath ward local to Bath only: the answers swap.
    await set_local_areas(api, picu, [BRISTOL, BANES, WILTSHIRE])
    await set_local_areas(api, hillview, [BANES])
    now_local = await admit(api, picu, WILTSHIRE)
    assert now_local.status_code == 201, now_local.text
    assert now_local.json()["out_of_area"] is False
    assert_problem(await admit(api, hillview, WILTSHIRE, ref="LOCAL-2"), 422, "oap_reason")
    now_out = await admit(api, hillview, WILTSHIRE, oap_reason="10", ref="LOCAL-2")
    assert now_out.status_code == 201, now_out.text
    assert now_out.json()["out_of_area"] is True
    flags = await search_flags(api, WILTSHIRE)
    assert (flags[picu.id], flags[hillview.id]) == (False, True)

    # GET /api/areas: an area's local providers are those with at least one unit local to it.
    assert awp in (await areas(api))[WILTSHIRE]["local_provider_ids"]
    async with api.db.write_sessions() as session, session.begin():
        awp_units = select(Unit.id).where(Unit.provider_id == awp)
        await session.execute(
            delete(UnitLocalArea).where(UnitLocalArea.area_code == WILTSHIRE, UnitLocalArea.unit_id.in_(awp_units))
        )
    after = await areas(api)
    assert awp not in after[WILTSHIRE]["local_provider_ids"]
    assert after[WILTSHIRE]["local_provider_ids"], "Wiltshire's respite provider is still local to it"
    assert awp in after[BRISTOL]["local_provider_ids"] and awp in after[BANES]["local_provider_ids"]
    # The far-away private hospital is local to no one, until one of its units is local to Bath.
    private = await api.unit("Northfield Park Hospital PICU")
    assert all(private.provider_id not in a["local_provider_ids"] for a in after.values())
    await set_local_areas(api, private, [BANES])
    assert (await areas(api))[BANES]["local_provider_ids"].count(private.provider_id) == 1


async def test_the_search_flags_out_of_area_as_a_placement_records_it(api: Api) -> None:
    """Every home area against every AWP unit: the search's flag is what the admission records."""
    async with api.db.read_sessions() as session:
        awp = (await api.unit(PICU)).provider_id
        units = (await session.scalars(select(Unit).where(Unit.provider_id == awp).order_by(Unit.name))).all()
    seen: set[tuple[str, bool]] = set()
    for n, (code, *_rest) in enumerate(AREAS):
        flags = await search_flags(api, code)
        for unit in units:
            out_of_area = flags[unit.id]
            assert out_of_area is (code not in unit.local_to_areas), (code, unit.name)
            # The reason is given exactly when the search says out of area: start_placement refuses an
            # out-of-area placement at an inpatient unit without one, and any reason at a local one.
            response = await admit(api, unit, code, "10" if out_of_area else None, ref=f"SEARCH-{n}", age=70)
            assert response.status_code == 201, (code, unit.name, response.text)
            assert response.json()["out_of_area"] is out_of_area, (code, unit.name)
            seen.add((unit.kind, out_of_area))
            discharged = await api.post(
                f"/api/placements/{response.json()['id']}/discharge", "bedmanager", json={"outcome": "discharged"}
            )
            assert discharged.status_code == 200, discharged.text
    # Both answers arose at the same provider's units, for inpatient beds and the suite alike.
    assert {("picu", True), ("picu", False), ("acute_adult", True), ("acute_adult", False)} <= seen
    assert flags == await search_flags(api, AREAS[-1][0]), "placements changed no flag"


async def test_the_importer_agrees_with_the_search(api: Api, tmp_path: Path) -> None:
    """History for every eligible (area, unit) pair: each imported placement is out of area exactly when
    the search says so (a reason is given only then, which the importer refuses otherwise)."""
    rows, expected = [], {}
    for n, (code, *_rest) in enumerate(AREAS):
        for unit_id, out_of_area in (await search_flags(api, code, age=70, sex="male")).items():
            ref = f"IMPORT-{n}-{len(rows)}"
            expected[ref] = out_of_area
            rows.append(
                {
                    "person_ref": ref,
                    "age": "70",
                    "sex": "male",
                    "ethnicity": "A",
                    "home_area": code,
                    "unit_id": unit_id,
                    "legal_basis": "informal",
                    "started_at": "2025-06-01T10:00:00Z",
                    "ended_at": "2025-06-03T10:00:00Z",
                    "oap_reason": "10" if out_of_area else "",
                    "outcome": "discharged",
                }
            )
    assert set(expected.values()) == {True, False}
    path = tmp_path / "history.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    summary = await import_placements(api.db, path)
    assert summary.rows == len(rows)
    async with api.db.read_sessions() as session:
        got = {
            p.person_ref: p.out_of_area
            for p in (await session.scalars(select(Placement).where(Placement.person_ref.like("IMPORT-%")))).all()
        }
    assert got == expected
    picu = (await api.unit(PICU)).id
    wiltshire_at_picu = next(r["person_ref"] for r in rows if r["home_area"] == WILTSHIRE and r["unit_id"] == picu)
    assert got[wiltshire_at_picu] is True


# --- migration 0006: the per-provider networks become the units' own --------------------------------------


@pytest.fixture(params=ENGINES)
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own on each engine (never the shared test database), dropped after."""
    with own_database(request.param, tmp_path, "local_network") as url:
        yield url


UNIT_COLUMNS = (
    "id, provider_id, area_code, name, kind, lat, lon, sex, min_age, mother_and_baby, accepts_intoxicated, "
    "accepts_detained, daily_cost, status, open_places, last_confirmed_at, last_confirmed_by"
)


async def _fill_at_0005(url: str) -> None:
    async with engine_of(url) as engine, engine.begin() as conn:
        for code in (BANES, BRISTOL, WILTSHIRE):
            await conn.execute(
                text("INSERT INTO areas (code, name, region, lat, lon) VALUES (:c, :c, 'South West', 51, -2)"),
                {"c": code},
            )
        for pid, sector in (("trust", "nhs"), ("private", "private")):
            await conn.execute(
                text("INSERT INTO providers (id, name, sector) VALUES (:id, :id, :sector)"),
                {"id": pid, "sector": sector},
            )
        for uid, pid, area in (("ward", "trust", BRISTOL), ("picu", "trust", BRISTOL), ("far", "private", BANES)):
            await conn.execute(
                text(
                    f"INSERT INTO units ({UNIT_COLUMNS}) VALUES (:id, :pid, :area, :id, 'acute_adult', 51, -2, "
                    "'any', 18, false, false, true, 0, 'open', 1, '2026-03-02 09:00:00', 'test')"
                ),
                {"id": uid, "pid": pid, "area": area},
            )
        for area in (BRISTOL, WILTSHIRE):
            await conn.execute(
                text("INSERT INTO area_local_providers (area_code, provider_id) VALUES (:a, 'trust')"), {"a": area}
            )


def test_migration_0006_makes_every_unit_of_a_local_provider_local_and_downgrades(fresh_database: str) -> None:
    url = fresh_database
    config = migrate_filled(url, "0005", _fill_at_0005, "0006")
    got = asyncio.run(rows_of(url, "SELECT unit_id, area_code FROM unit_local_areas"))
    # Each unit of the trust is local where the trust was; the private unit is local to no one.
    assert got == {("ward", BRISTOL), ("ward", WILTSHIRE), ("picu", BRISTOL), ("picu", WILTSHIRE)}
    # A unit's links go with it.
    asyncio.run(_delete_unit(url, "picu"))
    assert asyncio.run(rows_of(url, "SELECT unit_id FROM unit_local_areas")) == {("ward",)}
    command.downgrade(config, "0005")
    assert asyncio.run(rows_of(url, "SELECT area_code, provider_id FROM area_local_providers")) == {
        (BRISTOL, "trust"),
        (WILTSHIRE, "trust"),
    }
    assert "unit_local_areas" not in asyncio.run(table_names(url))


def test_migration_0015_drops_the_providers_network_and_a_downgrade_makes_it_again_from_the_units(
    fresh_database: str,
) -> None:
    """area_local_providers is read by nothing since 0006: 0015 drops it; going back, a provider is local to
    each area one of its units is local to, which is what 0006 had copied from it."""
    url = fresh_database
    config = migrate_filled(url, "0005", _fill_at_0005, "0015")
    assert "area_local_providers" not in asyncio.run(table_names(url))
    command.downgrade(config, "0014")
    assert asyncio.run(rows_of(url, "SELECT area_code, provider_id FROM area_local_providers")) == {
        (BRISTOL, "trust"),
        (WILTSHIRE, "trust"),
    }


async def _delete_unit(url: str, unit_id: str) -> None:
    async with engine_of(url) as engine, engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(text("PRAGMA foreign_keys = ON"))
        await conn.execute(text("DELETE FROM units WHERE id = :id"), {"id": unit_id})
