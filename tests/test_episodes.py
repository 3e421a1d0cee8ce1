"""One clock per s135/s136 detention: the worked cases of S136-CASES.md over the API, on a fixed clock.

An episode starts at the first place of safety (an emergency department, a police station, another
place, or a unit) and keeps its clock, and its one extension, through every transfer. Times are UTC;
START is Monday 2 March 2026 09:00.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from capacity.audit.models import AuditEntry
from capacity.auth.scope import hears
from capacity.auth.security import Actor
from capacity.booking.detentions.schemas import POLICE_STATION_CRITERIA
from capacity.booking.sweep import sweep
from capacity.events import Event
from capacity.notify.alerts import send_alerts
from capacity.reports import s136
from capacity.reports.common import Count
from support.api import Api, assert_problem
from support.demo import START

BANES, BRISTOL = "E06000022", "E06000023"
EXTENSION = {"authorised_by": "Dr A Registrar (RMP)", "reason": "condition_of_person"}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def person(**overrides) -> dict:
    return {"ref": "EP-0001", "age": 30, "sex": "male", "ethnicity": "A", "home_area": BRISTOL, **overrides}


@contextmanager
def published(api: Api) -> Iterator[list[Event]]:
    """The events committed transactions publish while in the block (still published as before)."""
    seen: list[Event] = []
    before = api.db.publish

    async def capture(events: list[Event]) -> None:
        seen.extend(events)
        if before is not None:
            await before(events)

    api.db.publish = capture
    try:
        yield seen
    finally:
        api.db.publish = before


async def heard_by(api: Api, event: Event) -> set[str]:
    """The demo users whose live stream carries `event` (the scope rule the WebSocket applies)."""
    heard = set()
    for username in ("admin", "amhp", "bedmanager", "commissioner", "conveyance"):
        user = await api.user(username)
        actor = Actor(user.id, user.username, user.role, user.provider_id, tuple(user.areas))
        if hears(actor, home_area=event.home_area, provider_id=event.provider_id, unit_area=event.unit_area):
            heard.add(username)
    return heard


async def march_totals(api: Api, monkeypatch: pytest.MonkeyPatch) -> dict:
    """The s136 report's totals for Bristol in March as counted, before disclosure control (which
    tests/test_disclosure.py proves): the counting is what these cases are about."""
    monkeypatch.setattr(Count, "shown", property(lambda count: count.value))
    monkeypatch.setattr(s136, "disclosed", lambda count: count)
    response = await api.get(f"/api/reports/s136?from=2026-03-01&to=2026-03-31&area={BRISTOL}", "admin")
    assert response.status_code == 200, response.text
    return response.json()["totals"]


async def detain(api: Api, place_type: str = "emergency_department", detained_at: datetime | None = None, **body):
    extra = {}
    if place_type == "police_station" and body.get("person", person())["age"] >= 18:
        extra = {"police_station_criteria": list(POLICE_STATION_CRITERIA), "authorising_inspector": "Insp. Jones"}
    response = await api.post(
        "/api/s136-detentions",
        "amhp",
        json={
            "place_type": place_type,
            "person": person(),
            "detained_at": (detained_at or api.clock.now()).isoformat(),
            **extra,
            **body,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def move_to_suite(api: Api, detention_id: str, **person_overrides) -> dict:
    """A hold at the Bristol suite for the detained person, and their arrival there now."""
    held = await api.hold("Bristol Place of Safety", person(**person_overrides), detention_id=detention_id)
    assert held.status_code == 201, held.text
    assert held.json()["detention_id"] == detention_id
    arrived = await api.post(f"/api/holds/{held.json()['id']}/arrive", "amhp", json={})
    assert arrived.status_code == 201, arrived.text
    return arrived.json()


async def test_an_emergency_department_then_a_suite_is_one_clock_and_one_detention(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 3: at an ED from 01:30, moved to a suite at 09:00: the suite shows the ED's deadline."""
    ed = await detain(api, detained_at=at("2026-03-02T01:30"))
    assert ed["detention_id"] == ed["id"] and ed["deadline"].startswith("2026-03-03T01:30:00")
    placement = await move_to_suite(api, ed["id"])
    assert placement["detention_id"] == ed["id"]
    assert placement["s136_clock_started_at"].startswith("2026-03-02T01:30:00")
    assert placement["s136_deadline"].startswith("2026-03-03T01:30:00")
    leg = (await api.get(f"/api/s136-detentions/{ed['id']}", "amhp")).json()
    assert (leg["outcome"], leg["ended_at"][:19]) == ("transferred", "2026-03-02T09:00:00")

    api.clock.advance(hours=4)
    done = await api.post(f"/api/placements/{placement['id']}/discharge", "bedmanager", json={"outcome": "discharged"})
    assert done.status_code == 200, done.text
    api.clock.set(at("2026-04-10T12:00"))
    totals = await march_totals(api, monkeypatch)
    assert (totals["detentions"], totals["transfers"], totals["repeat_detentions"]) == (1, 1, 0)
    assert totals["no_further_action"] == 1


async def test_the_clock_never_restarts_when_the_arrival_names_the_detention(api: Api) -> None:
    """The suite may not restart the clock: an s136_clock_started_at beside a detention_id is refused."""
    ed = await detain(api, detained_at=at("2026-03-02T01:30"))
    held = await api.hold("Bristol Place of Safety", person(), detention_id=ed["id"])
    restarted = await api.post(
        f"/api/holds/{held.json()['id']}/arrive", "amhp", json={"s136_clock_started_at": START.isoformat()}
    )
    assert_problem(restarted, 422, "s136_clock_started_at")
    # Nothing was half-written: the ED leg is still open and the hold still held.
    assert (await api.get(f"/api/s136-detentions/{ed['id']}", "amhp")).json()["ended_at"] is None
    assert (await api.get(f"/api/holds/{held.json()['id']}", "amhp")).json()["status"] == "held"


async def test_a_detention_id_for_another_person_or_an_ended_detention_is_refused(api: Api) -> None:
    ed = await detain(api)
    other = await api.hold("Bristol Place of Safety", person(ref="EP-OTHER"), detention_id=ed["id"])
    assert_problem(other, 404, "detention_id")
    ended = await api.post(f"/api/s136-detentions/{ed['id']}/end", "amhp", json={"outcome": "discharged"})
    assert ended.status_code == 200, ended.text
    again = await api.hold("Bristol Place of Safety", person(), detention_id=ed["id"])
    assert_problem(again, 409, "detention_id")


async def test_an_extension_at_the_emergency_department_carries_to_the_suite_and_is_the_only_one(api: Api) -> None:
    """Case 4: extended by 8 h at the ED at 20:00 (still intoxicated): deadline 09:30 the day after; at the
    suite a second extension is refused."""
    api.clock.set(at("2026-03-02T20:00"))
    ed = await detain(api, detained_at=at("2026-03-02T01:30"))
    extended = await api.post(f"/api/s136-detentions/{ed['id']}/extension", "amhp", json={"hours": 8, **EXTENSION})
    assert extended.status_code == 200, extended.text
    assert extended.json()["deadline"].startswith("2026-03-03T09:30:00")
    assert extended.json()["extension_authorised_by"] == "Dr A Registrar (RMP)"
    api.clock.set(at("2026-03-02T22:00"))
    placement = await move_to_suite(api, ed["id"])
    assert placement["s136_deadline"].startswith("2026-03-03T09:30:00")
    assert placement["s136_extension_hours"] == 8
    second = await api.post(
        f"/api/placements/{placement['id']}/s136-extension", "bedmanager", json={"hours": 4, **EXTENSION}
    )
    assert_problem(second, 409)
    again_at_ed = await api.post(f"/api/s136-detentions/{ed['id']}/extension", "amhp", json={"hours": 4, **EXTENSION})
    assert_problem(again_at_ed, 409)


async def test_at_a_police_station_an_extension_needs_a_superintendent_and_at_the_suite_not(api: Api) -> None:
    """Case 5: an adult at a police station from 03:00, moved to a suite at 06:00, extended 12 h at 20:00:
    deadline 15:00 the next day."""
    api.clock.set(at("2026-03-02T05:00"))
    station = await detain(api, "police_station", detained_at=at("2026-03-02T03:00"))
    url = f"/api/s136-detentions/{station['id']}/extension"
    assert_problem(await api.post(url, "amhp", json={"hours": 12, **EXTENSION}), 422, "superintendent")
    api.clock.set(at("2026-03-02T06:00"))
    placement = await move_to_suite(api, station["id"])
    api.clock.set(at("2026-03-02T20:00"))
    suite_url = f"/api/placements/{placement['id']}/s136-extension"
    with_superintendent = {"hours": 12, "superintendent": "Supt. Grey", **EXTENSION}
    assert_problem(await api.post(suite_url, "bedmanager", json=with_superintendent), 422, "superintendent")
    extended = await api.post(suite_url, "bedmanager", json={"hours": 12, **EXTENSION})
    assert extended.status_code == 200, extended.text
    assert extended.json()["s136_deadline"].startswith("2026-03-03T15:00:00")


async def test_a_superintendent_authorises_an_extension_while_the_person_is_at_the_police_station(api: Api) -> None:
    api.clock.set(at("2026-03-02T20:00"))
    station = await detain(api, "police_station", detained_at=at("2026-03-02T03:00"))
    extended = await api.post(
        f"/api/s136-detentions/{station['id']}/extension",
        "amhp",
        json={"hours": 6, "superintendent": "Supt. Grey", **EXTENSION},
    )
    assert extended.status_code == 200, extended.text
    assert (extended.json()["deadline"][:19], extended.json()["extension_superintendent"]) == (
        "2026-03-03T09:00:00",
        "Supt. Grey",
    )


async def test_an_under_18_in_a_police_station_is_recorded_only_as_an_acknowledged_never_event(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Case 6: a 16-year-old taken to a police station: refused, unless acknowledged with a note; then
    recorded, alerted to admins, and counted."""
    child = {"place_type": "police_station", "person": person(age=16), "detained_at": START.isoformat()}
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=child), 422, "place_type")
    unexplained = {**child, "never_event_acknowledged": True}
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=unexplained), 422, "note")
    adult = {**child, "person": person(), "never_event_acknowledged": True, "note": "x"}
    assert_problem(await api.post("/api/s136-detentions", "amhp", json=adult), 422, "never_event_acknowledged")
    with published(api) as events:
        recorded = await api.post(
            "/api/s136-detentions",
            "amhp",
            json={**unexplained, "note": "no suite could be reached: the road was closed by snow"},
        )
        assert recorded.status_code == 201, recorded.text
    [alert] = [e for e in events if e.type == "s136.never_event"]
    assert alert.data["s136_detention_id"] == recorded.json()["id"]
    assert await heard_by(api, alert) == {"admin", "amhp", "conveyance"}
    assert recorded.json()["never_event_acknowledged"] is True
    api.clock.set(at("2026-04-10T12:00"))
    totals = await march_totals(api, monkeypatch)
    assert totals["under_18_in_police_station"] == 1


async def test_recording_and_ending_a_detention_reach_every_dashboard_that_sees_the_person(api: Api) -> None:
    """Another AMHP's page, the conveyance board and admins hear a detention recorded and ended (so it
    appears, and goes, without a reload); a refused end tells no one anything."""
    with published(api) as events:
        detention = await detain(api, detained_at=START)
    [recorded] = [e for e in events if e.type == "s136.recorded"]
    assert recorded.data["s136_detention_id"] == detention["id"]
    assert (recorded.data["detained_at"], recorded.data["s136_deadline"]) == (
        "2026-03-02T09:00:00+00:00",
        "2026-03-03T09:00:00+00:00",
    )
    assert await heard_by(api, recorded) == {"admin", "amhp", "conveyance"}

    api.clock.set(START + timedelta(hours=5))
    end = f"/api/s136-detentions/{detention['id']}/end"
    with published(api) as events:
        assert_problem(await api.post(end, "amhp", json={"outcome": "transferred"}), 422, "outcome")
        ended = await api.post(end, "amhp", json={"outcome": "admitted_informal"})
        assert ended.status_code == 200, ended.text
        assert_problem(await api.post(end, "amhp", json={"outcome": "discharged"}), 409)
    [heard] = events
    assert heard.type == "s136.ended"
    assert (heard.data["outcome"], heard.data["ended_at"]) == ("admitted_informal", "2026-03-02T14:00:00+00:00")
    assert await heard_by(api, heard) == {"admin", "amhp", "conveyance"}
    assert ended.json()["ended_at"] == "2026-03-02T14:00:00Z"


async def test_an_s135_warrant_has_the_same_clock_warnings_and_breach(api: Api) -> None:
    """Case 7: taken to a suite under s135(1) at 11:00: deadline 11:00 the next day; warned before it,
    breached after it."""
    api.clock.set(at("2026-03-02T11:00"))
    suite = await api.unit("Bristol Place of Safety")
    admitted = await api.admit("Bristol Place of Safety", "s135", person())
    assert admitted.status_code == 201, admitted.text
    placement = admitted.json()
    assert placement["s136_deadline"].startswith("2026-03-03T11:00:00")
    assert placement["detention_id"] == placement["id"]
    with published(api) as events:
        api.clock.set(at("2026-03-03T09:30"))
        await send_alerts(api.db)
        api.clock.set(at("2026-03-03T11:00:01"))
        assert (await sweep(api.db)).breached == [placement["id"]]
    warned = [e.data["placement_id"] for e in events if e.type == "s136.warning"]
    assert warned == [placement["id"]]
    assert [e.unit_id for e in events if e.type == "s136.breach"] == [suite.id]
    got = (await api.get(f"/api/placements/{placement['id']}", "amhp")).json()
    assert got["s136_breached_at"].startswith("2026-03-03T11:00:00")


async def test_an_emergency_department_detention_is_warned_before_and_breached_after_its_deadline(
    api: Api,
) -> None:
    ed = await detain(api, detained_at=at("2026-03-02T01:30"))
    with published(api) as events:
        api.clock.set(at("2026-03-02T23:31"))
        await send_alerts(api.db)
        api.clock.set(at("2026-03-03T01:00"))
        await send_alerts(api.db)  # the 30-minute warning
        await send_alerts(api.db)  # each is sent once
        api.clock.set(at("2026-03-03T01:30:01"))
        assert (await sweep(api.db)).breached == [ed["id"]]
    warnings = [e for e in events if e.type == "s136.warning"]
    assert [(e.data["detention_id"], e.data["threshold_minutes"]) for e in warnings] == [
        (ed["id"], 120),
        (ed["id"], 30),
    ]
    [breach] = [e for e in events if e.type == "s136.breach"]
    assert breach.data["place_type"] == "emergency_department"
    # Heard by those who see the person (their home area's AMHPs, conveyance, admins): no unit's bed manager.
    assert await heard_by(api, breach) == {"admin", "amhp", "conveyance"}
    got = (await api.get(f"/api/s136-detentions/{ed['id']}", "amhp")).json()
    assert got["breached_at"].startswith("2026-03-03T01:30:00")
    async with api.db.read_sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.object_id == ed["id"]))).all()
    assert "s136.breach" in actions


async def test_a_change_of_clocks_is_elapsed_time(api: Api) -> None:
    """Case 8: at a suite from 00:30 on Sunday 29 March 2026 (GMT): the deadline is 00:30Z on the 30th,
    01:30 London time (BST), never 00:30 London."""
    api.clock.set(at("2026-03-29T00:30"))
    admitted = await api.admit("Bristol Place of Safety", "s136", person())
    assert admitted.status_code == 201, admitted.text
    deadline = datetime.fromisoformat(admitted.json()["s136_deadline"])
    assert deadline == at("2026-03-30T00:30") and deadline - at("2026-03-29T00:30") == timedelta(hours=24)


async def test_an_extension_after_the_deadline_or_for_a_bed_is_refused(api: Api) -> None:
    """Cases 9 and 10: an extension at 03:10 when the deadline was 03:00 is refused; so is one to find a
    bed or wait for an AMHP (the only lawful ground is the person's condition)."""
    api.clock.set(at("2026-03-02T20:00"))
    ed = await detain(api, detained_at=at("2026-03-02T03:00"))
    url = f"/api/s136-detentions/{ed['id']}/extension"
    for unlawful in ("to find a bed", "waiting for an AMHP"):
        assert_problem(await api.post(url, "amhp", json={**EXTENSION, "hours": 4, "reason": unlawful}), 422, "reason")
    api.clock.set(at("2026-03-03T03:10"))
    assert_problem(await api.post(url, "amhp", json={"hours": 4, **EXTENSION}), 409)


async def test_a_person_moved_between_units_keeps_the_clock_while_in_transit(api: Api) -> None:
    """Suite to suite: the first discharges with outcome transferred (the place is freed, the episode goes
    on and can still breach on the way); the next admission names the detention and keeps its clock."""
    api.clock.set(at("2026-03-02T10:00"))
    first = (await api.admit("Bristol Place of Safety", "s136", person())).json()
    not_a_detention = await api.admit("Bristol Place of Safety", "informal", person(ref="EP-9"))
    informal = not_a_detention.json()
    assert_problem(
        await api.post(f"/api/placements/{informal['id']}/discharge", "bedmanager", json={"outcome": "transferred"}),
        422,
        "outcome",
    )
    still_there = await api.admit("Bristol Place of Safety", "s136", person(), detention_id=first["id"])
    assert_problem(still_there, 409, "detention_id")
    api.clock.set(at("2026-03-02T12:00"))
    moved = await api.post(f"/api/placements/{first['id']}/discharge", "bedmanager", json={"outcome": "transferred"})
    assert moved.status_code == 200, moved.text
    api.clock.set(at("2026-03-02T13:00"))
    second = await api.admit("Bristol Place of Safety", "s136", person(), detention_id=first["id"])
    assert second.status_code == 201, second.text
    assert second.json()["s136_deadline"] == first["s136_deadline"]
    api.clock.set(at("2026-03-03T10:00:01"))
    assert (await sweep(api.db)).breached == [first["id"]]


async def test_a_transfer_is_refused_as_an_outcome_typed_at_the_place_left(api: Api) -> None:
    ed = await detain(api)
    ended = await api.post(f"/api/s136-detentions/{ed['id']}/end", "amhp", json={"outcome": "transferred"})
    assert_problem(ended, 422, "outcome")


async def test_two_arrivals_for_one_detention_make_one_transfer(api: Api) -> None:
    """Two holds for the person at an ED (two AMHPs trying two suites): the first arrival continues the
    episode; the second finds the person placed and is refused, its hold still held."""
    ed = await detain(api, detained_at=at("2026-03-02T01:30"))
    one = (await api.hold("Bristol Place of Safety", person(), detention_id=ed["id"])).json()
    two = (await api.hold("Bristol Place of Safety", person(), detention_id=ed["id"])).json()
    assert (await api.post(f"/api/holds/{one['id']}/arrive", "amhp", json={})).status_code == 201
    assert_problem(await api.post(f"/api/holds/{two['id']}/arrive", "amhp", json={}), 409, "detention_id")
    assert (await api.get(f"/api/holds/{two['id']}", "amhp")).json()["status"] == "held"
