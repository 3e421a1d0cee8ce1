"""Times without a UTC offset are refused with a 422 naming the field, everywhere (API.md "Times").

A naive "2026-03-29T01:30:00" is ambiguous across a clock change; it used to reach the database layer
and answer 500. Each case below sends one naive time where an offset time is accepted, and checks
that nothing was changed by the refused request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from support.api import Api, assert_problem
from support.demo import START

BRISTOL = "E06000023"
SUITE = "Bristol Place of Safety"
NAIVE = START.replace(tzinfo=None).isoformat()  # 2026-03-02T09:00:00, the clock's own instant but naive
AWARE = START.isoformat()


def person(ref: str) -> dict:
    return {"ref": ref, "age": 30, "sex": "male", "home_area": BRISTOL}


async def a_hold(api: Api) -> str:
    response = await api.hold(SUITE, person("TIME-HOLD"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def a_placement(api: Api) -> str:
    response = await api.admit(SUITE, "informal", person("TIME-PLACED"))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def a_detention(api: Api) -> str:
    response = await api.post("/api/s136-detentions", "amhp", json=detention(AWARE))
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def detention(detained_at: str, **more: Any) -> dict:
    return {
        "place_type": "emergency_department",
        "place_name": "Bristol Royal Infirmary ED",
        "person": person("TIME-ED"),
        "detained_at": detained_at,
        **more,
    }


Request = Callable[[Api, str], Awaitable[Any]]
Case = tuple[Callable[[Api], Awaitable[str]] | None, Request, str]


def case(make: Callable[[Api], Awaitable[str]], method: str, path: str, as_: str, field: str, **body: Any) -> Case:
    """A request that sends the time as `field` beside `body`, to `path` with `{}` the id of what `make` made."""
    return make, lambda api, i: api.request(method, path.format(i), as_, json={**body, field: t(api)}), field


# (what must make the object it acts on, what is sent, the field that must be named)
CASES: dict[str, Case] = {
    "arrival time": case(a_hold, "POST", "/api/holds/{}/arrive", "amhp", "arrived_at"),
    "s136 clock start": case(a_hold, "POST", "/api/holds/{}/arrive", "amhp", "s136_clock_started_at"),
    "conveyance request": case(a_hold, "PUT", "/api/holds/{}/conveyance", "amhp", "requested_at", mode="ambulance"),
    "conveyance eta": case(a_hold, "PUT", "/api/holds/{}/conveyance", "amhp", "eta", mode="ambulance"),
    "direct admission": (
        None,
        lambda api, _: api.admit(SUITE, "informal", person("TIME-DIRECT"), started_at=t(api)),
        "started_at",
    ),
    "discharge": case(
        a_placement, "POST", "/api/placements/{}/discharge", "bedmanager", "ended_at", outcome="discharged"
    ),
    "detention": (None, lambda api, i: api.post("/api/s136-detentions", "amhp", json=detention(t(api))), "detained_at"),
    "detention end": case(a_detention, "POST", "/api/s136-detentions/{}/end", "amhp", "ended_at", outcome="discharged"),
    "audit query": (None, lambda api, i: api.get(f"/api/audit?since={t(api)}", "admin"), "since"),
}


def t(api: Api) -> str:
    return api.sent_time  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("case", CASES)
async def test_a_time_without_an_offset_is_422_naming_the_field_and_changes_nothing(api: Api, case: str) -> None:
    make, send, field = CASES[case]
    target = await make(api) if make else (await api.unit(SUITE)).id
    before = (await api.get("/api/audit?limit=1000", "admin")).json()

    api.sent_time = NAIVE  # type: ignore[attr-defined]
    assert_problem(await send(api, target), 422, field)

    after = (await api.get("/api/audit?limit=1000", "admin")).json()
    changes = [
        e for e in after if e["id"] not in {b["id"] for b in before} and not e["action"].endswith((".read", ".list"))
    ]
    assert changes == [], changes


@pytest.mark.parametrize("case", [c for c in CASES if c != "audit query"])
async def test_the_same_time_with_an_offset_is_accepted(api: Api, case: str) -> None:
    """The control: the refusal above is about the missing offset, not the request."""
    make, send, _ = CASES[case]
    target = await make(api) if make else (await api.unit(SUITE)).id
    api.sent_time = AWARE  # type: ignore[attr-defined]
    response = await send(api, target)
    assert response.status_code in (200, 201), response.text
