"""The regional picture (issue 16 item 3): GET /api/region/status, for a commissioner's own region or any
region for an admin, with the same figures as the units themselves, in JSON and CSV."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from capacity.codes import KINDS
from capacity.demo import AREAS, SOUTH_WEST, WEST_MIDLANDS
from support.api import Api, assert_problem

BRISTOL, SANDWELL = "E06000023", "E08000028"
PLACES = ("open_places", "held", "occupied", "available")


async def status(api: Api, region: str = SOUTH_WEST, as_: str = "commissioner") -> dict:
    response = await api.get("/api/region/status", as_, params={"region": region})
    assert response.status_code == 200, response.text
    return response.json()


def region_codes(region: str) -> set[str]:
    return {code for code, _name, in_region, *_ in AREAS if in_region == region}


async def units_of(api: Api, region: str) -> list[dict]:
    """The region's units as GET /api/units shows each of them."""
    return [u for u in (await api.get("/api/units", "admin")).json() if u["area_code"] in region_codes(region)]


def open_places(unit: dict) -> int:
    return unit["open_places"] if unit["status"] == "open" else 0


async def test_the_regions_places_are_the_sums_of_its_units_own_figures(api: Api) -> None:
    for region in (SOUTH_WEST, WEST_MIDLANDS):
        body = await status(api, region, "admin")
        units = await units_of(api, region)
        assert {a["code"] for a in body["areas"]} == region_codes(region)
        by_kind = {row["kind"]: row for row in body["places_by_kind"]}
        assert list(by_kind) == list(KINDS)
        for kind in KINDS:
            of_kind = [u for u in units if u["kind"] == kind]
            row = by_kind[kind]
            assert row["units"] == len(of_kind), (region, kind)
            assert row["open_places"] == sum(open_places(u) for u in of_kind), (region, kind)
            for figure in ("held", "occupied", "available"):
                assert row[figure] == sum(u[figure] for u in of_kind), (region, kind, figure)
        totals = body["totals"]
        assert totals["units"] == len(units)
        assert totals["available"] == sum(u["available"] for u in units)
        assert totals["stale_units"] == sum(u["stale"] for u in units) == 0
    south_west = await status(api, SOUTH_WEST, "admin")
    # Both South West suites are empty; two people from the South West are placed out of area (a Bath
    # resident at the Birmingham private hospital, a Wiltshire resident at the Bristol PICU).
    assert south_west["totals"]["s136_suites_empty"] == 2
    assert south_west["totals"]["out_of_area_active"] == 2
    assert south_west["totals"]["occupied"] == 5  # the demo's six placements less the one in Birmingham


async def test_a_hold_and_a_declaration_change_the_region_as_they_change_the_unit(api: Api) -> None:
    suite = await api.unit("Bristol Place of Safety")
    someone = {"ref": "REGION-0001", "age": 30, "sex": "male", "ethnicity": "A", "home_area": BRISTOL}
    held = await api.hold("Bristol Place of Safety", someone)
    assert held.status_code == 201, held.text
    closed = await api.put(
        f"/api/units/{(await api.unit('Taunton')).id}/availability",
        "admin",
        json={"open_places": 2, "status": "closed", "closed_reason": "staffing"},
    )
    assert closed.status_code == 200, closed.text

    body = await status(api)
    suites = {row["kind"]: row for row in body["places_by_kind"]}["s136_suite"]
    unit = (await api.get(f"/api/units/{suite.id}", "commissioner")).json()
    assert (suites["held"], suites["available"], suites["open_places"]) == (1, unit["available"], 4)
    assert unit["available"] == 3
    assert suites["closed_units"] == 1
    assert body["totals"]["s136_suites_empty"] == 0  # one held, the other closed


async def test_stale_units_and_providers_at_opel_3_or_4_are_listed(api: Api) -> None:
    api.clock.advance(hours=4, minutes=1)  # past the 4 hours for 136 suites, not the 8 for the rest
    body = await status(api)
    assert sorted(u["name"] for u in body["stale_units"]) == [
        "Bristol Place of Safety (136 suite, demo)",
        "Taunton 136 Suite (demo)",
    ]
    assert body["totals"]["stale_units"] == 2
    escalated = body["providers_at_level_3_4"]
    assert [(p["name"], p["escalation_level"], p["escalation_stale"]) for p in escalated] == [
        ("Avon and Wessex Mental Health Partnership NHS Trust (demo)", 3, False)
    ]
    assert body["totals"]["escalations_stale"] == 1  # Somerset's, 20 hours old at the start
    west_midlands = await status(api, WEST_MIDLANDS, "admin")
    assert [p["escalation_level"] for p in west_midlands["providers_at_level_3_4"]] == [4]

    awp = await api.provider("Avon and Wessex")
    await api.put(f"/api/providers/{awp.id}/escalation", "bedmanager", json={"level": 2})
    assert (await status(api))["providers_at_level_3_4"] == []


async def test_people_waiting_in_an_emergency_department_are_timed_by_their_episodes_clock(api: Api) -> None:
    detained_at = api.clock.now() - timedelta(minutes=40)  # arrived at the ED before the report of it
    recorded = []
    for home_area, as_ in ((BRISTOL, "amhp"), (SANDWELL, "admin")):
        response = await api.post(
            "/api/s136-detentions",
            as_,
            json={
                "place_type": "emergency_department",
                "detained_at": detained_at.isoformat(),
                "person": {
                    "ref": f"ED-{home_area}",
                    "age": 40,
                    "sex": "female",
                    "ethnicity": "A",
                    "home_area": home_area,
                },
            },
        )
        assert response.status_code == 201, response.text
        recorded.append(response.json())
    api.clock.advance(minutes=55)

    body = await status(api)
    assert [(w["home_area"], w["waiting_minutes"], w["breached"]) for w in body["waiting_in_ed_s136"]] == [
        (BRISTOL, 95, False)
    ]
    assert (body["totals"]["waiting_in_ed_s136"], body["totals"]["longest_ed_wait_minutes"]) == (1, 95)
    assert "ED-" not in str(body) and recorded[0]["id"] not in str(body), "never a person's reference or id"
    west_midlands = await status(api, WEST_MIDLANDS, "admin")
    assert [w["waiting_minutes"] for w in west_midlands["waiting_in_ed_s136"]] == [95]

    ended = await api.post(f"/api/s136-detentions/{recorded[0]['id']}/end", "amhp", json={"outcome": "discharged"})
    assert ended.status_code == 200, ended.text
    body = await status(api)
    assert body["waiting_in_ed_s136"] == [] and body["totals"]["longest_ed_wait_minutes"] is None


async def test_the_csv_has_the_same_figures(api: Api) -> None:
    body = await status(api)
    response = await api.get("/api/region/status", "commissioner", params={"region": SOUTH_WEST, "format": "csv"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="region-status_South-West_')
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert {r["metric"]: r["value"] for r in rows if r["section"] == "totals"} == {
        name: "" if value is None else str(value) for name, value in body["totals"].items()
    }
    for row in body["places_by_kind"]:
        in_csv = {r["metric"]: r["value"] for r in rows if r["section"] == "places_by_kind" and r["key"] == row["kind"]}
        assert in_csv == {name: str(value) for name, value in row.items() if name != "kind"}, row["kind"]


async def test_a_commissioner_sees_only_the_region_of_their_areas(api: Api) -> None:
    assert (await status(api, SOUTH_WEST, "commissioner"))["region"] == SOUTH_WEST  # Bath is in the South West
    assert_problem(await api.get("/api/region/status", "commissioner", params={"region": WEST_MIDLANDS}), 403)
    assert_problem(
        await api.get("/api/region/status", "commissioner", params={"region": WEST_MIDLANDS, "format": "csv"}), 403
    )


@pytest.mark.parametrize("caller", ["amhp", "bedmanager", "conveyance"])
async def test_only_commissioners_and_admins_see_a_region(api: Api, caller: str) -> None:
    assert_problem(await api.get("/api/region/status", caller, params={"region": SOUTH_WEST}), 403)


async def test_an_unknown_region_or_format_is_named(api: Api) -> None:
    assert_problem(await api.get("/api/region/status", "admin", params={"region": "Atlantis"}), 422, "region")
    assert_problem(await api.get("/api/region/status", "admin"), 422, "region")
    bad_format = await api.get("/api/region/status", "admin", params={"region": SOUTH_WEST, "format": "xml"})
    assert_problem(bad_format, 422, "format")
