"""Holds: the AMHP's journey, the status machine, eligibility, idempotency and expiry by the clock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from capacity.booking.holds.models import Hold
from capacity.booking.sweep import sweep
from capacity.booking.units.models import UnmetDemand
from support.api import Api, assert_problem
from support.demo import START
from support.statements import Statements

BANES, BRISTOL, SOMERSET = "E06000022", "E06000023", "E06000066"
EXTENSION = {"authorised_by": "Dr A Registrar (RMP)", "reason": "condition_of_person"}


def person(**overrides) -> dict:
    return {"ref": "AMHP-2026-0042", "age": 34, "sex": "female", "ethnicity": "A", "home_area": BRISTOL, **overrides}


async def hold(api: Api, unit_name: str = "Bristol Place of Safety", purpose: str = "s136", **person_overrides):
    someone = person(**person_overrides)
    return await api.hold(unit_name, someone, purpose, risk_flags=["self_harm"], note="calm, cooperative")


def ambulance(**after_the_request: timedelta) -> dict:
    """A conveyance by ambulance requested at START, its other times given as how long after that they are."""
    times = {name: (START + delay).isoformat() for name, delay in after_the_request.items()}
    return {"mode": "ambulance", "requested_at": START.isoformat(), **times}


async def figures(api: Api, unit_name: str) -> dict:
    unit = await api.unit(unit_name)
    return (await api.get(f"/api/units/{unit.id}", "amhp")).json()


async def test_a_hold_takes_a_place_until_it_expires(api: Api) -> None:
    response = await hold(api)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "held"
    assert body["expires_at"].startswith("2026-03-02T10:00:00")  # 136 suites hold for 60 minutes
    assert body["person"]["ref"] == "AMHP-2026-0042" and body["risk_flags"] == ["self_harm"]
    suite = await figures(api, "Bristol Place of Safety")
    assert (suite["held"], suite["available"]) == (1, 3)

    api.clock.advance(minutes=59, seconds=59)
    assert (await figures(api, "Bristol Place of Safety"))["available"] == 3
    api.clock.advance(seconds=1)
    # Exact at read time: free again before any sweep has run.
    assert (await figures(api, "Bristol Place of Safety"))["available"] == 4
    got = await api.get(f"/api/holds/{body['id']}", "amhp")
    assert got.json()["status"] == "expired"
    assert_problem(await api.post(f"/api/holds/{body['id']}/release", "amhp"), 409)

    result = await sweep(api.db)
    assert result.expired == [body["id"]]
    assert (await sweep(api.db)).expired == []  # idempotent
    async with api.db.read_sessions() as session:
        stored = await session.get(Hold, body["id"])
        assert stored.status == "expired" and stored.ended_at == stored.expires_at


@pytest.mark.parametrize(
    ("action", "as_", "body", "status"),
    [
        ("release", "amhp", None, "released"),
        ("decline", "bedmanager", {"reason": "clinically_unsuitable", "note": "needs PICU"}, "declined"),
    ],
)
async def test_a_hold_ends_exactly_once(api: Api, action: str, as_: str, body, status: str) -> None:
    hold_id = (await hold(api)).json()["id"]
    first = await api.post(f"/api/holds/{hold_id}/{action}", as_, json=body)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == status
    assert (await figures(api, "Bristol Place of Safety"))["available"] == 4
    for other, who, payload in [
        ("release", "amhp", None),
        ("decline", "bedmanager", {"reason": "staffing"}),
        ("extend", "amhp", {"minutes": 10, "reason": "waiting for ambulance"}),
        ("arrive", "amhp", {}),
    ]:
        assert_problem(await api.post(f"/api/holds/{hold_id}/{other}", who, json=payload), 409)


async def test_extend_needs_a_reason_and_is_bounded(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    assert_problem(await api.post(f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 30}), 422, "reason")
    ok = await api.post(f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 30, "reason": "ambulance delayed"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["expires_at"].startswith("2026-03-02T10:30:00") and ok.json()["extensions"] == 1
    # The default limit is 240 minutes in all.
    too_much = await api.post(f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 211, "reason": "more"})
    assert_problem(too_much, 422, "minutes")
    for _ in range(2):
        ok = await api.post(f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 10, "reason": "still waiting"})
        assert ok.status_code == 200
    fourth = await api.post(f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 10, "reason": "again"})
    assert_problem(fourth, 422, "minutes")


async def test_no_place_left_is_409_and_recorded_as_unmet_demand(api: Api) -> None:
    for i in range(2):
        assert (await hold(api, "Taunton", ref=f"P{i}", home_area=SOMERSET)).status_code == 403  # not AMHP's area
    taunton = await api.unit("Taunton")
    await api.put(f"/api/units/{taunton.id}/availability", "admin", json={"open_places": 1, "status": "open"})
    suite = await api.unit("Bristol Place of Safety")
    await api.put(f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 1, "status": "open"})
    assert (await hold(api, ref="P1")).status_code == 201
    refused = await hold(api, ref="P2")
    assert_problem(refused, 409, "unit_id")
    async with api.db.read_sessions() as session:
        rows = (await session.scalars(select(UnmetDemand).where(UnmetDemand.source == "hold"))).all()
    assert [(r.kind, r.home_area) for r in rows] == [("s136_suite", BRISTOL)]
    assert not hasattr(rows[0], "person_ref")


@pytest.mark.parametrize(
    ("unit_name", "overrides", "field"),
    [
        ("Callington Road", {"age": 16}, "person.age"),  # adult ward, 16-year-old
        ("Bath Older Adult", {"age": 40}, "person.age"),
        ("Bristol Women's", {"sex": "male"}, "person.sex"),
        ("Taunton", {}, "person.home_area"),  # refuses Bristol residents
        ("Bristol Place of Safety", {"ref": "943 476 5919"}, "person.ref"),  # a valid NHS number
        ("Bristol Place of Safety", {"home_area": "E06000099"}, "person.home_area"),
        ("Bristol Place of Safety", {"ethnicity": "X"}, "person.ethnicity"),
        ("Bristol Place of Safety", {"age": -1}, "person.age"),
    ],
)
async def test_ineligible_people_are_refused_with_the_reason(api: Api, unit_name, overrides, field) -> None:
    response = await hold(api, unit_name, **overrides)
    if overrides.get("home_area") == "E06000099":
        # An area that does not exist is not one of the AMHP's areas either.
        assert response.status_code in (403, 422)
        return
    assert_problem(response, 422, field)
    async with api.db.read_sessions() as session:
        assert await session.scalar(select(func.count(Hold.id))) == 0


async def test_a_closed_unit_takes_no_hold(api: Api) -> None:
    suite = await api.unit("Bristol Place of Safety")
    await api.put(
        f"/api/units/{suite.id}/availability",
        "bedmanager",
        json={"open_places": 4, "status": "closed", "closed_reason": "infection_control"},
    )
    assert_problem(await hold(api), 422, "unit_id")


async def test_a_16_year_old_can_be_held_at_the_suite_that_takes_them(api: Api) -> None:
    assert (await hold(api, age=16)).status_code == 201


async def test_idempotency_key_returns_the_same_hold(api: Api) -> None:
    suite = await api.unit("Bristol Place of Safety")
    body = {"unit_id": suite.id, "purpose": "s136", "person": person()}
    first = await api.post("/api/holds", "amhp", json=body, headers={"Idempotency-Key": "k-1"})
    again = await api.post("/api/holds", "amhp", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["id"] == again.json()["id"]
    assert (await figures(api, "Bristol Place of Safety"))["held"] == 1
    changed = await api.post(
        "/api/holds", "amhp", json={**body, "purpose": "crisis"}, headers={"Idempotency-Key": "k-1"}
    )
    assert_problem(changed, 422, "Idempotency-Key")
    other = await api.post("/api/holds", "amhp", json=body, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 201 and other.json()["id"] != first.json()["id"]


async def test_arrival_starts_a_placement_with_the_s136_clock(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    api.clock.advance(minutes=40)
    detained_at = START - timedelta(hours=2)  # the clock started on arrival at the emergency department
    response = await api.post(
        f"/api/holds/{hold_id}/arrive", "bedmanager", json={"s136_clock_started_at": detained_at.isoformat()}
    )
    assert response.status_code == 201, response.text
    placement = response.json()
    assert placement["legal_basis"] == "s136" and placement["hold_id"] == hold_id
    assert placement["s136_deadline"].startswith("2026-03-03T07:00:00")
    assert placement["out_of_area"] is False and placement["distance_km"] < 10
    suite = await figures(api, "Bristol Place of Safety")
    assert (suite["held"], suite["occupied"], suite["available"]) == (0, 1, 3)
    assert (await api.get(f"/api/holds/{hold_id}", "amhp")).json()["placement_id"] == placement["id"]


async def test_out_of_area_acute_placement_needs_a_reason(api: Api) -> None:
    hold_id = (await hold(api, "Northfield Park Hospital Acute", purpose="admission")).json()["id"]
    assert_problem(
        await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"legal_basis": "s2"}), 422, "oap_reason"
    )
    ok = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"legal_basis": "s2", "oap_reason": "10"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["out_of_area"] is True and ok.json()["oap_reason"] == "10"
    assert 110 < ok.json()["distance_km"] < 140


async def test_conveyance_eta_keeps_the_hold(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    police = await api.put(f"/api/holds/{hold_id}/conveyance", "amhp", json={"mode": "police_vehicle"})
    assert_problem(police, 422, "police_vehicle_reason")
    api.clock.advance(minutes=10)
    times = {"dispatched_at": timedelta(minutes=5), "eta": timedelta(minutes=90)}
    response = await api.put(f"/api/holds/{hold_id}/conveyance", "conveyance", json=ambulance(**times))
    assert response.status_code == 200, response.text
    assert response.json()["ambulance_response_minutes"] == 10.0
    got = (await api.get(f"/api/holds/{hold_id}", "amhp")).json()
    # 90 minutes plus the 15-minute grace, beyond the 60-minute hold.
    assert got["expires_at"].startswith("2026-03-02T10:45:00")
    assert got["conveyance"]["mode"] == "ambulance"
    before_the_request = ambulance(at_scene_at=timedelta(minutes=-1))
    wrong_order = await api.put(f"/api/holds/{hold_id}/conveyance", "amhp", json=before_the_request)
    assert_problem(wrong_order, 422, "at_scene_at")


async def test_s136_extension_once_before_the_deadline_and_breach_by_the_sweep(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    placement = (await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={})).json()
    url = f"/api/placements/{placement['id']}/s136-extension"
    body = {"hours": 12, **EXTENSION}
    assert_problem(await api.post(url, "amhp", json={**body, "hours": 13}), 422, "hours")
    api.clock.advance(hours=20)
    ok = await api.post(url, "bedmanager", json=body)
    assert ok.status_code == 200, ok.text
    assert ok.json()["s136_deadline"].startswith("2026-03-03T21:00:00")
    assert ok.json()["s136_extension_authorised_by"] == "Dr A Registrar (RMP)"
    assert_problem(await api.post(url, "bedmanager", json=body), 409)
    api.clock.advance(hours=16, seconds=1)
    assert (await sweep(api.db)).breached == [placement["id"]]
    assert (await sweep(api.db)).breached == []
    got = (await api.get(f"/api/placements/{placement['id']}", "amhp")).json()
    assert got["s136_breached_at"].startswith("2026-03-03T21:00:00")


async def test_extension_after_the_deadline_is_refused(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    placement = (await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={})).json()
    api.clock.advance(hours=24)
    late = await api.post(
        f"/api/placements/{placement['id']}/s136-extension", "bedmanager", json={"hours": 6, **EXTENSION}
    )
    assert_problem(late, 409)


async def test_discharge_frees_the_place_once(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    placement = (await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={})).json()
    api.clock.advance(hours=6)
    url = f"/api/placements/{placement['id']}/discharge"
    assert_problem(await api.post(url, "bedmanager", json={"outcome": "sectioned"}), 422, "outcome")
    ok = await api.post(url, "bedmanager", json={"outcome": "detained_s2"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["outcome"] == "detained_s2" and ok.json()["s136_breached_at"] is None
    assert (await figures(api, "Bristol Place of Safety"))["occupied"] == 0
    assert_problem(await api.post(url, "bedmanager", json={"outcome": "discharged"}), 409)


async def test_direct_admission_takes_a_place(api: Api) -> None:
    response = await api.admit("Callington Road", "s3", person(ref="WARD-77", sex="male"))
    assert response.status_code == 201, response.text
    assert (await figures(api, "Callington Road"))["occupied"] == 3
    other = await api.admit("Taunton", "s136", person(home_area=SOMERSET))
    assert_problem(other, 403)


async def test_an_amhp_search_that_finds_nothing_is_unmet_demand(api: Api) -> None:
    response = await api.get(f"/api/units?kind=picu&age=15&home_area={BRISTOL}", "amhp")
    assert response.json() == []
    await api.get("/api/units?kind=picu&age=15", "commissioner")  # not an AMHP: not demand
    async with api.db.read_sessions() as session:
        rows = (await session.scalars(select(UnmetDemand).where(UnmetDemand.source == "search"))).all()
    assert [(r.kind, r.home_area) for r in rows] == [("picu", BRISTOL)]


async def test_every_change_and_person_read_is_audited(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    await api.get(f"/api/holds/{hold_id}", "bedmanager")
    await api.post(f"/api/holds/{hold_id}/release", "amhp")
    log = (await api.get(f"/api/audit?object_id={hold_id}", "admin")).json()
    assert [(e["action"], e["username"]) for e in reversed(log)] == [
        ("hold.create", "amhp"),
        ("hold.read", "bedmanager"),
        ("hold.release", "amhp"),
        ("hold.read", "amhp"),
    ]
    assert log[-1]["after"]["status"] == "held"
    assert_problem(await api.get("/api/audit", "amhp"), 403)


async def test_an_eta_keeps_a_hold_only_within_the_extension_cap(api: Api) -> None:
    """A 136 suite is held 60 minutes and extensions may add 240: an ETA keeps it at most 300 minutes
    from the hold, and an ETA beyond that (a typo, the year 2999) is refused naming the field."""
    body = (await hold(api)).json()
    cap = START + timedelta(minutes=60 + 240)
    far = await api.put(
        f"/api/holds/{body['id']}/conveyance", "amhp", json={"mode": "ambulance", "eta": "2999-01-01T00:00:00Z"}
    )
    assert_problem(far, 422, "eta")
    assert (await api.get(f"/api/holds/{body['id']}", "amhp")).json()["expires_at"] == body["expires_at"]
    assert (await api.get(f"/api/holds/{body['id']}", "amhp")).json()["conveyance"] is None  # nothing half-written

    near_cap = await api.put(
        f"/api/holds/{body['id']}/conveyance",
        "amhp",
        json={"mode": "ambulance", "eta": (cap - timedelta(minutes=5)).isoformat()},
    )
    assert near_cap.status_code == 200, near_cap.text
    got = (await api.get(f"/api/holds/{body['id']}", "amhp")).json()
    # ETA plus the 15-minute grace would pass the cap: the hold is kept to the cap, no further.
    assert got["expires_at"].startswith(cap.strftime("%Y-%m-%dT%H:%M"))


async def test_a_hold_on_stale_figures_goes_ahead_with_a_warning(api: Api) -> None:
    """The AMHP is told to phone: figures not confirmed within the kind's window may be wrong."""
    fresh = await hold(api)
    assert fresh.status_code == 201 and fresh.json()["warnings"] == []
    api.clock.advance(hours=5)  # a 136 suite's figures go stale after 4 hours
    stale = await hold(api)
    assert stale.status_code == 201, stale.text
    assert stale.json()["warnings"] == ["stale"]


async def test_declaring_fewer_open_places_than_are_occupied_warns(api: Api) -> None:
    unit = await api.unit("Bristol Place of Safety")
    someone = {"ref": "OVER-1", "age": 30, "sex": "male", "home_area": "E06000023"}
    admitted = await api.admit("Bristol Place of Safety", "s136", someone)
    assert admitted.status_code == 201, admitted.text
    declared = await api.put(
        f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 0, "status": "open"}
    )
    assert declared.status_code == 200, declared.text
    assert declared.json()["warnings"] == ["over_occupied"]
    assert (await api.get(f"/api/units/{unit.id}", "amhp")).json()["warnings"] == ["over_occupied"]


async def test_an_oap_reason_can_be_corrected_by_admin_under_the_same_rule_and_is_audited(api: Api) -> None:
    hold_id = (await hold(api, "Northfield Park Hospital Acute", purpose="admission")).json()["id"]
    placed = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"legal_basis": "s2", "oap_reason": "10"})
    pid = placed.json()["id"]
    # The AMHP may not correct it; nor may a bed manager of another provider (Northfield is private).
    assert_problem(await api.request("PATCH", f"/api/placements/{pid}", "amhp", json={"oap_reason": "14"}), 403)
    assert_problem(await api.request("PATCH", f"/api/placements/{pid}", "bedmanager", json={"oap_reason": "14"}), 404)
    # An out-of-area inpatient placement keeps a reason: clearing it is refused, as at the start.
    assert_problem(
        await api.request("PATCH", f"/api/placements/{pid}", "admin", json={"oap_reason": None}), 422, "oap_reason"
    )
    corrected = await api.request("PATCH", f"/api/placements/{pid}", "admin", json={"oap_reason": "14"})
    assert corrected.status_code == 200, corrected.text
    assert corrected.json()["oap_reason"] == "14"
    entries = (await api.get(f"/api/audit?object_id={pid}&action=placement.correct", "admin")).json()
    assert [(e["before"]["oap_reason"], e["after"]["oap_reason"]) for e in entries] == [("10", "14")]


async def test_an_admission_to_a_full_unit_is_refused_unless_recorded_as_over_capacity(api: Api) -> None:
    """It happens: the person is admitted although no place is free. Recorded only when said so, and then
    the figures show the over-occupancy and the unit's bed managers are warned."""
    ward = await api.unit("Callington Road")
    free = (await figures(api, "Callington Road"))["available"]
    for n in range(free):
        body = {"unit_id": ward.id, "legal_basis": "s3", "person": person(ref=f"FULL-{n}", sex="male")}
        assert (await api.post("/api/placements", "bedmanager", json=body)).status_code == 201
    body = {"unit_id": ward.id, "legal_basis": "s3", "person": person(ref="FULL-X", sex="male")}
    assert_problem(await api.post("/api/placements", "bedmanager", json=body), 409, "unit_id")
    admitted = await api.post("/api/placements", "bedmanager", json={**body, "over_capacity": True})
    assert admitted.status_code == 201, admitted.text
    assert admitted.json()["warnings"] == ["over_occupied"]
    after = await figures(api, "Callington Road")
    assert after["occupied"] == after["open_places"] + 1 and after["available"] == 0
    assert "over_occupied" in after["warnings"]


async def test_a_17_year_old_is_admitted_to_an_adult_ward_only_with_the_reason(api: Api) -> None:
    ward = await api.unit("Callington Road")
    body = {"unit_id": ward.id, "legal_basis": "s2", "person": person(ref="YOUNG-1", age=17, sex="male")}
    assert_problem(await api.post("/api/placements", "bedmanager", json=body), 422, "person.age")
    reason = "no adolescent bed in the region tonight; CAMHS consultant agreed; 1:1 nursing"
    admitted = await api.post("/api/placements", "bedmanager", json={**body, "age_exception_reason": reason})
    assert admitted.status_code == 201, admitted.text
    assert admitted.json()["age_exception_reason"] == reason
    child = {**body, "person": person(ref="YOUNG-2", age=15, sex="male"), "age_exception_reason": reason}
    assert_problem(await api.post("/api/placements", "bedmanager", json=child), 422, "age_exception_reason")
    crisis = await api.unit("Bath Crisis House")
    not_a_ward = {**body, "unit_id": crisis.id, "legal_basis": "informal", "age_exception_reason": reason}
    assert_problem(await api.post("/api/placements", "admin", json=not_a_ward), 422, "age_exception_reason")


async def test_an_arrival_may_be_recorded_before_the_hold_when_the_person_was_already_there(api: Api) -> None:
    hold_id = (await hold(api)).json()["id"]
    too_early = (START - timedelta(hours=25)).isoformat()
    assert_problem(await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"arrived_at": too_early}), 422)
    earlier = (START - timedelta(minutes=40)).isoformat()
    arrived = await api.post(f"/api/holds/{hold_id}/arrive", "amhp", json={"arrived_at": earlier})
    assert arrived.status_code == 201, arrived.text
    assert arrived.json()["started_at"].startswith("2026-03-02T08:20:00")
    assert arrived.json()["s136_deadline"].startswith("2026-03-03T08:20:00")


async def test_a_hold_takes_four_statements(api: Api) -> None:
    """Issue 15's lean hold path: the unit locked, its checks and figures in one statement, the hold and
    its audit entry written; the unit's local areas (which only a placement needs) are not read. Beside
    them, the caller's token is checked against the denylist: from memory on SQLite, by one look-up on
    PostgreSQL without Redis (where another machine may have revoked it a moment ago)."""
    assert (await hold(api)).status_code == 201  # warm: statements compiled
    unit = await api.unit("Callington Road")
    body = {"unit_id": unit.id, "purpose": "admission", "person": person()}
    statements = Statements(api)
    made = await api.post("/api/holds", "amhp", json=body)
    assert made.status_code == 201, made.text
    assert len(statements.naming("revoked_tokens")) == (0 if api.db.is_sqlite else 1)
    sent = [
        " ".join(s.split())
        for s in statements.sent
        if s != "BEGIN IMMEDIATE" and "revoked_tokens" not in s  # SQLite's write lock; the token's check
    ]
    assert len(sent) == 4, sent
    assert sent[0].startswith("SELECT units.") and "unit_local_areas" not in " ".join(sent)
    assert "count(*)" in sent[1] and "unit_area_rules" in sent[1] and "areas.active" in sent[1]
    assert sent[2].startswith("INSERT INTO holds") and sent[3].startswith("INSERT INTO audit_log")
