"""Crisis alternatives (issue 16): who is open now for this person, by their age and home area, open first
and then nearest; opening hours in Europe/London with England's bank holidays; managed by admins only,
every change audited. On both engines, on the demo data set and a FixedClock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from capacity.booking.units.models import UnmetDemand
from capacity.demo import BANES, BIRMINGHAM, BRISTOL, SANDWELL, WILTSHIRE
from capacity.imports.placements import ImportRefused
from capacity.imports.reference import COLUMNS, import_reference
from support.api import Api, assert_problem
from support.csv_files import write_csv

URL = "/api/alternatives"
ADMIN_URL = "/api/admin/alternatives"
SAFE_HAVEN = "Bath Sanctuary safe haven (demo)"  # BANES, 18+, daily 18:00-23:00
CAFE = "Bristol crisis café (demo)"  # BRISTOL and BANES, 16+, mon-thu 18:00-23:00, fri-sat 18:00-02:00
LINE = "Severnside crisis line (demo)"  # the South West, any age, always, no location
CAMHS = "Avon and Wiltshire CAMHS crisis team (demo)"  # the South West, 0-17, weekdays 08:00-20:00
LIAISON = "Wiltshire hospital liaison team (demo)"  # WILTSHIRE, 16+, weekdays 09:00-17:00, closed bank holidays


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


async def alternatives(api: Api, as_: str = "amhp", **query: Any) -> list[dict]:
    response = await api.get(URL, as_, params=query)
    assert response.status_code == 200, response.text
    return response.json()


async def open_now(api: Api, name: str, home_area: str, at: datetime | None = None) -> bool:
    """Whether the search shows `name` open, now or (the clock set to it first, for what follows too) at `at`."""
    if at is not None:
        api.clock.set(at)
    by_name = {a["name"]: a for a in await alternatives(api, home_area=home_area)}
    return by_name[name]["open_now"]


def hours(**days: list[tuple[str, str]] | None) -> dict:
    return {day: None if v is None else [{"opens": o, "closes": c} for o, c in v] for day, v in days.items()}


def new_alternative(**more: Any) -> dict:
    weekdays = {day: [("09:00", "17:00")] for day in ("mon", "tue", "wed", "thu", "fri")}
    return {
        "name": "Keynsham crisis café (test)",
        "kind": "safe_haven",
        "areas": [BANES],
        "opening_hours": hours(**weekdays),
        "how_to_refer": "Walk in.",
        "lat": 51.4135,
        "lon": -2.4968,
        **more,
    }


# --- open now -----------------------------------------------------------------------------------------


async def test_an_evening_service_is_open_on_a_weekday_evening_only(api: Api) -> None:
    assert await open_now(api, SAFE_HAVEN, BANES) is False  # Monday 09:00
    assert await open_now(api, SAFE_HAVEN, BANES, at=utc(2026, 3, 2, 19, 0)) is True
    assert SAFE_HAVEN in {a["name"] for a in await alternatives(api, home_area=BANES, open_now="true")}
    assert await open_now(api, SAFE_HAVEN, BANES, at=utc(2026, 3, 2, 23, 0)) is False  # closes at 23:00
    assert SAFE_HAVEN not in {a["name"] for a in await alternatives(api, home_area=BANES, open_now="true")}


async def test_friday_hours_past_midnight_are_open_early_on_saturday(api: Api) -> None:
    # Saturday 01:30: Friday's 18:00-02:00; Tuesday 01:30: Monday closed at 23:00.
    assert await open_now(api, CAFE, BRISTOL, at=utc(2026, 3, 7, 1, 30)) is True
    assert await open_now(api, CAFE, BRISTOL, at=utc(2026, 3, 3, 1, 30)) is False


async def test_a_service_closed_on_bank_holidays_is_closed_on_christmas_and_its_substitute_day(api: Api) -> None:
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 12, 24, 10, 0)) is True  # Thursday
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 12, 25, 10, 0)) is False  # Christmas Day, a Friday
    # Monday: the substitute for Boxing Day on a Saturday.
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 12, 28, 10, 0)) is False
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 12, 29, 10, 0)) is True
    # Without bank holiday hours of its own, a service keeps its weekday hours on a bank holiday.
    assert await open_now(api, CAMHS, WILTSHIRE, at=utc(2026, 12, 28, 10, 0)) is True


async def test_special_bank_holiday_hours_replace_the_weekdays(api: Api) -> None:
    weekdays = {day: [("09:00", "17:00")] for day in ("mon", "tue", "wed", "thu", "fri")}
    body = new_alternative(opening_hours=hours(**weekdays, bank_holidays=[("10:00", "14:00")]))
    created = await api.post(ADMIN_URL, "admin", json=body)
    assert created.status_code == 201, created.text
    name = body["name"]
    assert await open_now(api, name, BANES, at=utc(2026, 12, 28, 12, 0)) is True
    assert await open_now(api, name, BANES, at=utc(2026, 12, 28, 15, 0)) is False
    assert await open_now(api, name, BANES, at=utc(2026, 12, 29, 15, 0)) is True  # an ordinary Tuesday


async def test_hours_are_london_time_across_the_clock_change(api: Api) -> None:
    # 08:30 UTC is 08:30 in GMT (before 29 March 2026) and 09:30 in BST (after): opening at 09:00.
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 3, 23, 8, 30)) is False
    assert await open_now(api, LIAISON, WILTSHIRE, at=utc(2026, 3, 30, 8, 30)) is True
    # The night the clocks go forward, Saturday's 18:00-02:00 ends at 02:00 BST: 01:00 UTC.
    assert await open_now(api, CAFE, BRISTOL, at=utc(2026, 3, 29, 0, 30)) is True
    assert await open_now(api, CAFE, BRISTOL, at=utc(2026, 3, 29, 1, 0)) is False


# --- who it serves, and in what order -------------------------------------------------------------------


async def test_alternatives_are_those_for_the_persons_age_and_home_area(api: Api) -> None:
    names = lambda found: {a["name"] for a in found}  # noqa: E731
    assert names(await alternatives(api, age=15, home_area=BANES)) == {LINE, CAMHS}
    assert names(await alternatives(api, age=30, home_area=BANES)) == {SAFE_HAVEN, CAFE, LINE}
    assert names(await alternatives(api, age=17, home_area=BRISTOL)) == {CAFE, LINE, CAMHS}
    assert names(await alternatives(api, age=20, home_area=SANDWELL)) == {
        "Sandwell safe haven (demo)",
        "Black Country host families (demo)",
    }
    assert "Birmingham 0-25 crisis team (demo)" in names(await alternatives(api, age=24, home_area=BIRMINGHAM))
    assert "Birmingham 0-25 crisis team (demo)" not in names(await alternatives(api, age=26, home_area=BIRMINGHAM))
    assert_problem(await api.get(URL, "amhp", params={"home_area": "E06999999"}), 422, "home_area")
    assert_problem(await api.get(URL, "amhp", params={"home_area": "Bath"}), 422, "home_area")
    assert_problem(await api.get(URL, "amhp", params={"age": -1}), 422, "age")


async def test_open_ones_come_first_then_the_nearest(api: Api) -> None:
    # Monday 09:00: only the line is open; the safe haven in Bath is nearer Bath than the café in Bristol.
    found = await alternatives(api, age=30, home_area=BANES)
    assert [(a["name"], a["open_now"]) for a in found] == [(LINE, True), (SAFE_HAVEN, False), (CAFE, False)]
    assert "distance_km" not in found[0]  # a line is nowhere: no distance, after those somewhere
    assert found[1]["distance_km"] < 1 < 10 < found[2]["distance_km"] < 25
    assert found[0]["phone"] and found[0]["how_to_refer"]
    api.clock.set(utc(2026, 3, 2, 19, 0))
    found = await alternatives(api, age=30, home_area=BANES)
    assert [a["name"] for a in found] == [SAFE_HAVEN, CAFE, LINE]
    assert found[0]["opening_hours"]["mon"] == [{"opens": "18:00", "closes": "23:00"}]


async def test_a_fifteen_year_olds_empty_search_shows_what_is_open_and_is_still_unmet_demand(api: Api) -> None:
    units = await api.get(f"/api/units?age=15&home_area={BANES}", "amhp")
    assert units.status_code == 200 and not any(u["available"] > 0 for u in units.json())
    found = await alternatives(api, age=15, home_area=BANES, open_now="true")
    assert [a["name"] for a in found] == [CAMHS, LINE]
    assert all(a["min_age"] <= 15 and (a["max_age"] is None or a["max_age"] >= 15) for a in found)
    async with api.db.read_sessions() as session:
        rows = (await session.scalars(select(UnmetDemand).where(UnmetDemand.source == "search"))).all()
    assert [(r.kind, r.home_area) for r in rows] == [(None, BANES)]


# --- administration -----------------------------------------------------------------------------------


async def test_only_amhps_and_admins_read_them_and_only_admins_change_them(api: Api) -> None:
    for username in ("bedmanager", "commissioner", "conveyance"):
        assert_problem(await api.get(URL, username), 403)
    assert (await api.get(URL, "admin")).status_code == 200
    assert_problem(await api.get(URL), 401)
    some_id = (await alternatives(api))[0]["id"]
    for username in ("amhp", "bedmanager", "commissioner", "conveyance"):
        assert_problem(await api.post(ADMIN_URL, username, json=new_alternative()), 403)
        assert_problem(await api.request("PATCH", f"{ADMIN_URL}/{some_id}", username, json={"name": "x"}), 403)


async def test_a_bad_alternative_is_refused_naming_the_field(api: Api) -> None:
    bad = {
        "kind": new_alternative(kind="bed"),
        "areas": new_alternative(areas=[]),
        "name": {k: v for k, v in new_alternative().items() if k != "name"},
        "opening_hours.mon[0].opens": new_alternative(opening_hours=hours(mon=[("25:00", "26:00")])),
        "opening_hours.tue[0].closes": new_alternative(opening_hours=hours(tue=[("09:00", "09:00")])),
        "max_age": new_alternative(min_age=18, max_age=17),
        "lon": new_alternative(lon=None),
        "phone": new_alternative(phone="call us"),
    }
    for field, body in bad.items():
        assert_problem(await api.post(ADMIN_URL, "admin", json=body), 422, field)
    assert_problem(await api.post(ADMIN_URL, "admin", json=new_alternative(areas=["E06999999"])), 422, "areas")
    created = (await api.post(ADMIN_URL, "admin", json=new_alternative(code="KEY-1"))).json()
    taken = await api.post(ADMIN_URL, "admin", json=new_alternative(name="Another", code="KEY-1"))
    assert_problem(taken, 409, "code")
    assert_problem(await api.request("PATCH", f"{ADMIN_URL}/{created['id']}", "admin", json={"max_age": -2}), 422)
    assert_problem(await api.request("PATCH", f"{ADMIN_URL}/nope", "admin", json={"name": "x"}), 404)


async def test_every_change_is_audited_and_a_retired_alternative_is_no_longer_offered(api: Api) -> None:
    created = await api.post(ADMIN_URL, "admin", json=new_alternative())
    assert created.status_code == 201, created.text
    alternative_id = created.json()["id"]
    changed = await api.request(
        "PATCH", f"{ADMIN_URL}/{alternative_id}", "admin", json={"name": "Keynsham safe haven", "max_age": 64}
    )
    assert changed.status_code == 200 and changed.json()["name"] == "Keynsham safe haven"
    assert "Keynsham safe haven" in {a["name"] for a in await alternatives(api, home_area=BANES)}
    retired = await api.request("PATCH", f"{ADMIN_URL}/{alternative_id}", "admin", json={"active": False})
    assert retired.status_code == 200 and retired.json()["active"] is False
    assert alternative_id not in {a["id"] for a in await alternatives(api)}
    assert alternative_id in {a["id"] for a in (await api.get(ADMIN_URL, "admin")).json()}
    log = (await api.get(f"/api/audit?object_id={alternative_id}", "admin")).json()
    assert [(e["action"], e["username"]) for e in reversed(log)] == [
        ("admin.alternative.create", "admin"),
        ("admin.alternative.update", "admin"),
        ("admin.alternative.update", "admin"),
    ]
    first_change = log[1]
    assert (first_change["before"]["name"], first_change["after"]["name"]) == (
        "Keynsham crisis café (test)",
        "Keynsham safe haven",
    )
    assert (first_change["before"]["max_age"], first_change["after"]["max_age"]) == (None, 64)
    assert log[0]["before"]["active"] is True and log[0]["after"]["active"] is False


# --- the reference import -----------------------------------------------------------------------------

ALTERNATIVE_ROW = {
    "record": "alternative",
    "code": "KEY-HAVEN",
    "name": "Keynsham safe haven (test)",
    "kind": "safe_haven",
    "areas": f"{BANES} {BRISTOL}",
    "min_age": "16",
    "opening_hours": "mon-fri 18:00-23:00; sat,sun 12:00-23:00; bank_holidays closed",
    "how_to_refer": "Walk in.",
    "lat": "51.4135",
    "lon": "-2.4968",
}


async def test_the_reference_import_adds_alternatives_once_and_changes_only_what_differs(
    api: Api, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "ref.csv", COLUMNS, [ALTERNATIVE_ROW])
    dry = await import_reference(api.db, path, dry_run=True)
    assert [(c.kind, c.action) for c in dry.changes] == [("alternative", "create")]
    assert "Keynsham safe haven (test)" not in {a["name"] for a in await alternatives(api, home_area=BANES)}
    first = await import_reference(api.db, path)
    assert [(c.kind, c.code, c.action) for c in first.changes] == [("alternative", "KEY-HAVEN", "create")]
    found = {a["name"]: a for a in await alternatives(api, home_area=BRISTOL)}["Keynsham safe haven (test)"]
    assert found["opening_hours"]["sat"] == [{"opens": "12:00", "closes": "23:00"}]
    assert found["opening_hours"]["bank_holidays"] == []
    again = await import_reference(api.db, path)
    assert again.changed == 0 and again.count("alternative", "unchanged") == 1
    later = await import_reference(api.db, write_csv(path, COLUMNS, [{**ALTERNATIVE_ROW, "phone": "0117 496 0999"}]))
    assert [(c.action, c.fields) for c in later.changes] == [("update", ("phone",))]
    log = (await api.get(f"/api/audit?object_id={found['id']}", "admin")).json()
    assert [(e["action"], e["username"]) for e in reversed(log)] == [
        ("admin.alternative.create", "cli-import"),
        ("admin.alternative.update", "cli-import"),
    ]
    assert (log[0]["before"]["phone"], log[0]["after"]["phone"]) == (None, "0117 496 0999")


async def test_a_bad_alternative_line_is_named_and_nothing_is_imported(api: Api, tmp_path: Path) -> None:
    rows = [
        {**ALTERNATIVE_ROW, "code": "GOOD-1"},
        {**ALTERNATIVE_ROW, "code": "BAD-HOURS", "opening_hours": "weekdays 9-5"},
        {**ALTERNATIVE_ROW, "code": "BAD-AREA", "areas": "E06999999"},
        {**ALTERNATIVE_ROW, "code": "BAD-KIND", "kind": "bed"},
    ]
    with pytest.raises(ImportRefused) as caught:
        await import_reference(api.db, write_csv(tmp_path / "ref.csv", COLUMNS, rows))
    said = [(p.line, p.field) for p in caught.value.problems]
    assert said == [(3, "opening_hours"), (4, "areas"), (5, "kind")], caught.value.problems
    assert not {"GOOD-1", "BAD-AREA"} & {a["code"] for a in (await api.get(ADMIN_URL, "admin")).json()}
