"""s136 detentions at places of safety that are not bookable units: s136A and the 2017 Regulations."""

from __future__ import annotations

from datetime import timedelta

from capacity.booking.detentions.schemas import POLICE_STATION_CRITERIA
from capacity.booking.sweep import sweep
from support.api import Api, assert_problem
from support.demo import START

BRISTOL = "E06000023"


def detention(**overrides) -> dict:
    return {
        "place_type": "emergency_department",
        "place_name": "Bristol Royal Infirmary ED",
        "person": {"ref": "ED-0001", "age": 30, "sex": "male", "ethnicity": "A", "home_area": BRISTOL},
        "detained_at": (START - timedelta(hours=1)).isoformat(),
        **overrides,
    }


async def test_an_emergency_department_detention_is_recorded_with_its_clock(api: Api) -> None:
    response = await api.post(
        "/api/s136-detentions",
        "amhp",
        json=detention(
            conveyance_mode="ambulance",
            ambulance_requested_at=(START - timedelta(hours=2)).isoformat(),
            ambulance_at_scene_at=(START - timedelta(hours=1, minutes=20)).isoformat(),
        ),
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["deadline"].startswith("2026-03-03T08:00:00")
    got = await api.get(f"/api/s136-detentions/{body['id']}", "amhp")
    assert got.json()["place_name"] == "Bristol Royal Infirmary ED"
    assert_problem(await api.get(f"/api/s136-detentions/{body['id']}", "commissioner"), 403)


async def test_a_police_station_is_never_used_for_a_person_under_18(api: Api) -> None:
    child = detention(
        place_type="police_station",
        person={**detention()["person"], "age": 17},
        police_station_criteria=list(POLICE_STATION_CRITERIA),
        authorising_inspector="Insp. Jones",
    )
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=child), 422, "place_type")
    listed = await api.get("/api/s136-detentions", "amhp")
    assert listed.json() == []


async def test_an_adult_in_a_police_station_needs_every_criterion_and_an_inspector(api: Api) -> None:
    partial = detention(
        place_type="police_station",
        police_station_criteria=list(POLICE_STATION_CRITERIA[:2]),
        authorising_inspector="Insp. Jones",
    )
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=partial), 422, "police_station_criteria")
    no_inspector = detention(place_type="police_station", police_station_criteria=list(POLICE_STATION_CRITERIA))
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=no_inspector), 422, "authorising_inspector")
    ok = detention(
        place_type="police_station",
        police_station_criteria=list(POLICE_STATION_CRITERIA),
        authorising_inspector="Insp. Jones",
    )
    assert (await api.post("/api/s136-detentions", "amhp", json=ok)).status_code == 201


async def test_police_vehicle_needs_a_reason(api: Api) -> None:
    response = await api.post("/api/s136-detentions", "amhp", json=detention(conveyance_mode="police_vehicle"))
    assert_problem(response, 422, "police_vehicle_reason")


async def test_an_open_detention_past_its_deadline_is_a_breach_and_ends_once(api: Api) -> None:
    created = (await api.post("/api/s136-detentions", "amhp", json=detention())).json()
    api.clock.advance(hours=22, minutes=59)
    assert created["id"] not in (await sweep(api.db)).breached
    api.clock.advance(minutes=1)
    assert created["id"] in (await sweep(api.db)).breached
    url = f"/api/s136-detentions/{created['id']}/end"
    ended = await api.post(url, "amhp", json={"outcome": "detained_s2"})
    assert ended.status_code == 200, ended.text
    assert ended.json()["breached_at"].startswith("2026-03-03T08:00:00")
    assert_problem(await api.post(url, "amhp", json={"outcome": "discharged"}), 409)


async def test_a_police_vehicle_reason_is_a_code_and_its_note_is_kept_for_person_level_roles(api: Api) -> None:
    free_text = await api.post(
        "/api/s136-detentions",
        "amhp",
        json=detention(conveyance_mode="police_vehicle", police_vehicle_reason="John Smith, 12 Acacia Avenue"),
    )
    assert_problem(free_text, 422, "police_vehicle_reason")
    coded = await api.post(
        "/api/s136-detentions",
        "amhp",
        json=detention(
            conveyance_mode="police_vehicle",
            police_vehicle_reason="ambulance_delayed",
            police_vehicle_note="crew stood down at 02:10",
        ),
    )
    assert coded.status_code == 201, coded.text
    got = (await api.get(f"/api/s136-detentions/{coded.json()['id']}", "amhp")).json()
    assert (got["police_vehicle_reason"], got["police_vehicle_note"]) == (
        "ambulance_delayed",
        "crew stood down at 02:10",
    )
