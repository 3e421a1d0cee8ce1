"""Search and declarations of units, as AMHPs and bed managers use them."""

from __future__ import annotations

from support.api import Api, assert_problem

BANES, BRISTOL, WILTSHIRE, SOMERSET = "E06000022", "E06000023", "E06000054", "E06000066"


async def names(api: Api, query: str, as_: str = "amhp") -> list[str]:
    response = await api.get(f"/api/units?{query}", as_)
    assert response.status_code == 200, response.text
    return [u["name"] for u in response.json()]


async def test_kind_filter_is_repeatable(api: Api) -> None:
    found = await names(api, "kind=s136_suite&kind=respite")
    assert sorted(found) == sorted(
        [
            "Bristol Place of Safety (136 suite, demo)",
            "Taunton 136 Suite (demo)",
            "Sandwell 136 Suite (demo)",
            "Devizes Respite House (demo)",
            "Birmingham Respite Flat (demo)",
        ]
    )


async def test_a_17_year_old_is_offered_only_suites_that_take_16_and_17_year_olds(api: Api) -> None:
    assert await names(api, "kind=s136_suite&age=17") == ["Bristol Place of Safety (136 suite, demo)"]
    assert len(await names(api, "kind=s136_suite&age=30")) == 3


async def test_a_man_is_not_offered_women_only_beds(api: Api) -> None:
    male = await names(api, "kind=community_bed&sex=male")
    female = await names(api, "kind=community_bed&sex=female")
    assert "Bristol Women's Crisis Beds (demo)" not in male
    assert "Bristol Women's Crisis Beds (demo)" in female
    assert "Frome Community Crisis Beds (demo)" in male and "Frome Community Crisis Beds (demo)" in female


async def test_home_area_drops_refusing_units_and_marks_out_of_area(api: Api) -> None:
    response = await api.get(f"/api/units?kind=s136_suite&home_area={BRISTOL}", "amhp")
    by_name = {u["name"]: u for u in response.json()}
    assert "Taunton 136 Suite (demo)" not in by_name  # it refuses Bristol residents
    assert by_name["Bristol Place of Safety (136 suite, demo)"]["out_of_area"] is False
    assert by_name["Sandwell 136 Suite (demo)"]["out_of_area"] is True
    somerset = await names(api, f"kind=s136_suite&home_area={SOMERSET}")
    assert "Taunton 136 Suite (demo)" in somerset


async def test_near_sorts_by_great_circle_distance(api: Api) -> None:
    response = await api.get("/api/units?kind=acute_adult&near=51.4545,-2.5879", "amhp")
    units = response.json()
    distances = [u["distance_km"] for u in units]
    assert distances == sorted(distances)
    assert units[0]["name"] == "Callington Road Acute Ward (demo)"
    # Bristol to Birmingham is about 125 km as the crow flies.
    northfield = next(u for u in units if u["name"].startswith("Northfield Park Hospital Acute"))
    assert 110 < northfield["distance_km"] < 130
    assert "distance_km" not in (await api.get("/api/units?kind=picu", "amhp")).json()[0]


async def test_availability_is_open_less_occupied_and_available_only_filters(api: Api) -> None:
    unit = await api.unit("Callington Road")
    body = (await api.get(f"/api/units/{unit.id}", "amhp")).json()
    # The demo set places two people on this 20-bed ward.
    assert (body["open_places"], body["occupied"], body["held"], body["available"]) == (20, 2, 0, 18)
    suite = await api.unit("Taunton")
    closed = await api.put(
        f"/api/units/{suite.id}/availability",
        "admin",
        json={"open_places": 2, "status": "closed", "closed_reason": "staffing"},
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["available"] == 0 and closed.json()["open_places"] == 2
    assert "Taunton 136 Suite (demo)" not in await names(api, "kind=s136_suite&available_only=true")
    assert "Taunton 136 Suite (demo)" in await names(api, "kind=s136_suite")


async def test_limit(api: Api) -> None:
    assert len(await names(api, "limit=3")) == 3


async def test_unit_detail_has_eligibility_attributes(api: Api) -> None:
    unit = await api.unit("Taunton")
    body = (await api.get(f"/api/units/{unit.id}", "commissioner")).json()
    assert body["refuses_areas"] == [BRISTOL]
    assert body["min_age"] == 18 and body["kind"] == "s136_suite"
    for field in ("mother_and_baby", "accepts_intoxicated", "accepts_detained", "max_stay_days", "daily_cost"):
        assert field in body


async def test_bed_manager_declares_and_history_is_kept(api: Api) -> None:
    unit = await api.unit("Bristol Place of Safety")
    api.clock.advance(minutes=30)
    response = await api.put(
        f"/api/units/{unit.id}/availability",
        "bedmanager",
        json={"open_places": 3, "status": "open", "note": "one room being cleaned"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["open_places"] == 3 and body["available"] == 3
    assert body["last_confirmed_by"] == "bedmanager"
    assert body["last_confirmed_at"].startswith("2026-03-02T09:30:00")
    from sqlalchemy import select

    from capacity.booking.units.models import AvailabilityDeclaration

    async with api.db.read_sessions() as session:
        history = (
            await session.scalars(
                select(AvailabilityDeclaration)
                .where(AvailabilityDeclaration.unit_id == unit.id)
                .order_by(AvailabilityDeclaration.declared_at)
            )
        ).all()
    assert [(h.before_open_places, h.after_open_places, h.declared_by) for h in history][-1] == (4, 3, "bedmanager")


async def test_same_figures_again_are_a_confirmation_that_clears_stale(api: Api) -> None:
    unit = await api.unit("Bristol Place of Safety")
    api.clock.advance(hours=4, minutes=1)  # past the 4-hour window for 136 suites
    stale = (await api.get(f"/api/units/{unit.id}", "amhp")).json()
    assert stale["stale"] is True
    other = (await api.get(f"/api/units/{(await api.unit('Callington')).id}", "amhp")).json()
    assert other["stale"] is False  # inpatient wards have 8 hours
    confirmed = await api.put(
        f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 4, "status": "open"}
    )
    assert confirmed.json()["stale"] is False
    assert confirmed.json()["last_confirmed_at"].startswith("2026-03-02T13:01:00")


async def test_stale_units_sort_after_fresh_ones(api: Api) -> None:
    api.clock.advance(hours=5)
    taunton = await api.unit("Taunton")
    await api.put(f"/api/units/{taunton.id}/availability", "admin", json={"open_places": 2, "status": "open"})
    found = await names(api, f"kind=s136_suite&near=51.4545,-2.5879&home_area={SOMERSET}")
    # Taunton is further from Bristol than the Bristol suite but is the only fresh one.
    assert found[0] == "Taunton 136 Suite (demo)"


async def test_closing_needs_a_reason(api: Api) -> None:
    unit = await api.unit("Bristol Place of Safety")
    response = await api.put(
        f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 4, "status": "closed"}
    )
    assert_problem(response, 422, "closed_reason")
