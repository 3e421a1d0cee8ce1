"""A unit's eligibility attributes are enforced, not only shown (issue 10, item 6).

A crisis house is a voluntary service: a person detained under the Act, or held under s136, is refused
there with a 422 naming the field, while a crisis hold at the same house goes ahead. Every flag the
search takes as a filter is applied.
"""

from __future__ import annotations

import pytest

from support.api import Api, assert_problem

BANES = "E06000022"
CRISIS_HOUSE = "Bath Crisis House"
SUITE = "Bristol Place of Safety"


def person(ref: str) -> dict:
    return {"ref": ref, "age": 30, "sex": "female", "home_area": BANES}


async def test_an_s136_hold_at_a_unit_that_takes_no_detained_people_is_refused(api: Api) -> None:
    house = await api.unit(CRISIS_HOUSE)
    assert not house.accepts_detained
    refused = await api.post(
        "/api/holds", "amhp", json={"unit_id": house.id, "purpose": "s136", "person": person("ELIG-1")}
    )
    body = assert_problem(refused, 422, "purpose")
    assert "detained" in body["detail"]
    figures = (await api.get(f"/api/units/{house.id}", "amhp")).json()
    assert figures["held"] == 0  # nothing was held

    crisis = await api.post(
        "/api/holds", "amhp", json={"unit_id": house.id, "purpose": "crisis", "person": person("ELIG-2")}
    )
    assert crisis.status_code == 201, crisis.text


@pytest.mark.parametrize("basis", ["s2", "s3", "s136"])
async def test_a_detained_admission_to_a_voluntary_unit_is_refused(api: Api, basis: str) -> None:
    house = await api.unit(CRISIS_HOUSE)
    refused = await api.post(
        "/api/placements", "admin", json={"unit_id": house.id, "legal_basis": basis, "person": person("ELIG-3")}
    )
    assert_problem(refused, 422, "legal_basis")
    informal = await api.post(
        "/api/placements", "admin", json={"unit_id": house.id, "legal_basis": "informal", "person": person("ELIG-4")}
    )
    assert informal.status_code == 201, informal.text


async def test_arriving_under_a_detained_basis_at_a_voluntary_unit_is_refused(api: Api) -> None:
    house = await api.unit(CRISIS_HOUSE)
    held = await api.post(
        "/api/holds", "amhp", json={"unit_id": house.id, "purpose": "crisis", "person": person("ELIG-5")}
    )
    refused = await api.post(f"/api/holds/{held.json()['id']}/arrive", "amhp", json={"legal_basis": "s2"})
    assert_problem(refused, 422, "legal_basis")
    assert (await api.get(f"/api/holds/{held.json()['id']}", "amhp")).json()["status"] == "held"


@pytest.mark.parametrize("flag", ["accepts_intoxicated", "accepts_detained", "mother_and_baby"])
async def test_each_flag_the_search_takes_filters_the_units(api: Api, flag: str) -> None:
    everything = (await api.get("/api/units", "amhp")).json()
    details = [(await api.get(f"/api/units/{u['id']}", "amhp")).json() for u in everything]
    expected = sorted(d["id"] for d in details if d[flag])
    found = sorted(u["id"] for u in (await api.get(f"/api/units?{flag}=true", "amhp")).json())
    assert found == expected
    assert len(expected) < len(everything)  # so a filter that was silently dropped would show here
    if flag == "accepts_intoxicated":
        suite = await api.unit(SUITE)
        assert found == [suite.id]  # only the Bristol suite takes intoxicated people in the demo
