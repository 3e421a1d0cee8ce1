"""The booking rules against a model: Hypothesis drives holds, extensions, releases, declines, arrivals,
discharges, admissions, declarations, the clock and the sweep through the API, in any order.

The model is a few dictionaries: each unit's declared open places and status, each hold's unit,
expiry and status, each placement's unit and whether it is active. After every step the API's
figures for every unit must equal the model's (`held` = live holds, `occupied` = active placements,
`available` = max(0, open - occupied - held), 0 when closed), and every response must be the one the
model expects: above all, a hold or an admission succeeds only when the model has a place free.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from capacity.app import create_app
from capacity.booking.placements.models import Placement
from capacity.booking.sweep import sweep
from capacity.booking.units.models import Unit
from capacity.clock import FixedClock
from support.api import Api
from support.demo import ENGINES, START, reset_postgres
from support.settings import settings_for as make_settings

BRISTOL = "E06000023"

# key: (unit name prefix, hold purpose, legal basis of a direct admission, run by the bed manager's provider)
UNITS = {
    "suite": ("Bristol Place of Safety", "s136", "s136", True),  # s136 suite: holds last 60 minutes
    "ward": ("Callington Road", "admission", "s2", True),  # acute ward, two people already placed
    "women": ("Bristol Women's", "crisis", "informal", False),  # another provider's: 404/403 to our bed manager
}
KEYS = sorted(UNITS)
# Mostly the bed manager's own units, sometimes another provider's (which must be refused).
MANAGER_UNITS = st.sampled_from(["suite", "ward", "suite", "ward", "women"])


@dataclass
class HoldM:
    unit: str
    expires_at: datetime
    status: str = "held"  # held | arrived | released | declined | expired (as recorded)
    extensions: int = 0
    extended_minutes: int = 0


@dataclass
class PlacementM:
    unit: str
    active: bool = True


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


class BookingMachine(RuleBasedStateMachine):
    holds = Bundle("holds")
    placements = Bundle("placements")

    def __init__(self, loop: asyncio.AbstractEventLoop, fresh_database: Callable[[], str]) -> None:
        super().__init__()
        self.loop = loop
        self.clock = FixedClock(START)
        self.app = create_app(make_settings(fresh_database()), clock=self.clock)
        self.settings = self.app.state.settings
        self.stack = contextlib.AsyncExitStack()
        self.api = self.run(self._open())
        self.refs = itertools.count()
        self.unit_ids: dict[str, str] = {}
        self.kinds: dict[str, str] = {}
        self.open: dict[str, int] = {}
        self.closed: dict[str, bool] = {}
        self.holds_m: dict[str, HoldM] = {}
        self.placements_m: dict[str, PlacementM] = {}
        self.run(self._load_units())

    # --- plumbing ---------------------------------------------------------------------------------------

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    async def _open(self) -> Api:
        channels = self.app.state.get("channels")
        if channels is not None:  # the live-event plugin, when the app has one, as the `api` fixture does
            await self.stack.enter_async_context(channels)
        transport = httpx.ASGITransport(app=self.app, client=("127.0.0.1", 50000))
        client = await self.stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://testserver.local")
        )
        return Api(client, self.app, self.clock)

    async def _load_units(self) -> None:
        async with self.api.db.read_sessions() as session:
            for key, (name, *_rest) in UNITS.items():
                unit = await session.scalar(select(Unit).where(Unit.name.startswith(name)))
                self.unit_ids[key], self.kinds[key] = unit.id, unit.kind
                self.open[key], self.closed[key] = unit.open_places, unit.status != "open"
                active = await session.scalars(
                    select(Placement.id).where(Placement.unit_id == unit.id, Placement.ended_at.is_(None))
                )
                self.placements_m.update({pid: PlacementM(key) for pid in active})

    def teardown(self) -> None:
        async def close() -> None:
            await self.stack.aclose()
            await self.api.db.dispose()

        self.run(close())

    def call(self, method: str, url: str, as_: str, json: dict | None = None) -> httpx.Response:
        return self.run(self.api.request(method, url, as_, json=json))

    # --- the model ------------------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def live(self, hold: HoldM) -> bool:
        return hold.status == "held" and hold.expires_at > self.now

    def held(self, unit: str) -> int:
        return sum(1 for h in self.holds_m.values() if h.unit == unit and self.live(h))

    def occupied(self, unit: str) -> int:
        return sum(1 for p in self.placements_m.values() if p.unit == unit and p.active)

    def available(self, unit: str) -> int:
        if self.closed[unit]:
            return 0
        return max(0, self.open[unit] - self.occupied(unit) - self.held(unit))

    def effective(self, hold: HoldM) -> str:
        return "expired" if hold.status == "held" and hold.expires_at <= self.now else hold.status

    def person(self) -> dict:
        return {"ref": f"MODEL-{next(self.refs):04d}", "age": 34, "sex": "female", "home_area": BRISTOL}

    def expect(self, response: httpx.Response, status: int) -> dict:
        assert response.status_code == status, (status, response.status_code, response.text)
        return response.json()

    def declare(self, unit: str, places: int, closed: bool) -> None:
        body = {"open_places": places, "status": "closed" if closed else "open"}
        if closed:
            body["closed_reason"] = "staffing"
        who = "bedmanager" if UNITS[unit][3] else "admin"
        got = self.expect(self.call("PUT", f"/api/units/{self.unit_ids[unit]}/availability", who, body), 200)
        self.open[unit], self.closed[unit] = places, closed
        assert (got["open_places"], got["available"]) == (places, self.available(unit)), got

    # --- rules ----------------------------------------------------------------------------------------------

    @initialize(suite=st.integers(1, 4), ward=st.integers(2, 6), women=st.integers(0, 3))
    def small_units(self, suite: int, ward: int, women: int) -> None:
        for unit, places in (("suite", suite), ("ward", ward), ("women", women)):
            self.declare(unit, places, closed=False)

    @rule(
        unit=st.sampled_from(KEYS), places=st.integers(0, 5), closed=st.sampled_from([False, False, False, False, True])
    )
    def declare_availability(self, unit: str, places: int, closed: bool) -> None:
        # A bed manager may declare fewer places than are held and occupied; nobody loses a place, but
        # nothing new is taken until enough are free again.
        self.declare(unit, places, closed)

    @rule(target=holds, unit=st.sampled_from(KEYS), count=st.integers(1, 3))
    def hold(self, unit: str, count: int):
        """One AMHP holds places for `count` people in turn."""
        made = []
        for _ in range(count):
            free = self.available(unit)
            request = {"unit_id": self.unit_ids[unit], "purpose": UNITS[unit][1], "person": self.person()}
            response = self.call("POST", "/api/holds", "amhp", request)
            if self.closed[unit]:
                self.expect(response, 422)
            elif free < 1:
                self.expect(response, 409)
            else:
                body = self.expect(response, 201)
                expires = self.now + timedelta(seconds=self.settings.hold_seconds[self.kinds[unit]])
                assert (body["status"], when(body["expires_at"])) == ("held", expires)
                self.holds_m[body["id"]] = HoldM(unit, expires)
                assert self.held(unit) + self.occupied(unit) <= self.open[unit]
                made.append(body["id"])
        return multiple(*made)

    @rule(target=placements, unit=MANAGER_UNITS)
    def admit(self, unit: str):
        free = self.available(unit)
        admission = {"unit_id": self.unit_ids[unit], "legal_basis": UNITS[unit][2], "person": self.person()}
        response = self.call("POST", "/api/placements", "bedmanager", admission)
        if not UNITS[unit][3]:
            self.expect(response, 403)  # not this bed manager's unit
            return multiple()
        if self.closed[unit]:
            self.expect(response, 422)
            return multiple()
        if free < 1:
            self.expect(response, 409)
            return multiple()
        body = self.expect(response, 201)
        self.placements_m[body["id"]] = PlacementM(unit)
        assert self.held(unit) + self.occupied(unit) <= self.open[unit]
        return body["id"]

    @rule(hold_id=holds, minutes=st.one_of(st.integers(1, 90), st.integers(200, 300)))
    def extend(self, hold_id: str, minutes: int) -> None:
        hold = self.holds_m[hold_id]
        response = self.call(
            "POST", f"/api/holds/{hold_id}/extend", "amhp", {"minutes": minutes, "reason": "ambulance delayed"}
        )
        if not self.live(hold):
            self.expect(response, 409)
        elif (
            hold.extensions >= self.settings.max_hold_extensions
            or hold.extended_minutes + minutes > self.settings.max_hold_extension_minutes
        ):
            self.expect(response, 422)
        else:
            body = self.expect(response, 200)
            hold.expires_at += timedelta(minutes=minutes)
            hold.extensions += 1
            hold.extended_minutes += minutes
            assert (body["status"], when(body["expires_at"]), body["extensions"]) == (
                "held",
                hold.expires_at,
                hold.extensions,
            )

    @rule(
        hold_id=holds,
        action=st.sampled_from(["release", "decline"]),
        reason=st.sampled_from(["unit_closed", "clinically_unsuitable", "staffing", "other"]),
    )
    def end_hold(self, hold_id: str, action: str, reason: str) -> None:
        if action == "release":
            self._end(hold_id, "release", "amhp", None, "released")
        else:
            self._end(hold_id, "decline", "bedmanager", {"reason": reason}, "declined")

    def _end(self, hold_id: str, action: str, who: str, body: dict | None, status: str) -> None:
        hold = self.holds_m[hold_id]
        response = self.call("POST", f"/api/holds/{hold_id}/{action}", who, body)
        if who == "bedmanager" and not UNITS[hold.unit][3]:
            self.expect(response, 404)  # another provider's hold does not exist for this bed manager
        elif not self.live(hold):
            self.expect(response, 409)
        else:
            assert self.expect(response, 200)["status"] == status
            hold.status = status

    @rule(target=placements, hold_id=holds, who=st.sampled_from(["amhp", "amhp", "bedmanager"]))
    def arrive(self, hold_id: str, who: str):
        hold = self.holds_m[hold_id]
        response = self.call("POST", f"/api/holds/{hold_id}/arrive", who, {})
        if who == "bedmanager" and not UNITS[hold.unit][3]:
            self.expect(response, 404)
            return multiple()
        if not self.live(hold):
            self.expect(response, 409)
            return multiple()
        # The hold already counted against the unit: arrival needs no free place, even if the bed
        # manager has since declared fewer places, or closed the unit.
        body = self.expect(response, 201)
        assert body["hold_id"] == hold_id and body["unit_id"] == self.unit_ids[hold.unit]
        hold.status = "arrived"
        self.placements_m[body["id"]] = PlacementM(hold.unit)
        return body["id"]

    @rule(placement_id=placements, who=st.sampled_from(["bedmanager", "admin"]))
    def discharge(self, placement_id: str, who: str) -> None:
        placement = self.placements_m[placement_id]
        response = self.call("POST", f"/api/placements/{placement_id}/discharge", who, {"outcome": "discharged"})
        if who == "bedmanager" and not UNITS[placement.unit][3]:
            self.expect(response, 404)
        elif not placement.active:
            self.expect(response, 409)
        else:
            assert self.expect(response, 200)["ended_at"] is not None
            placement.active = False

    @rule(seconds=st.one_of(st.integers(1, 120), st.integers(120, 3600), st.integers(3600, 5 * 3600)))
    def advance_clock(self, seconds: int) -> None:
        self.clock.advance(seconds=seconds)

    @rule(hold_id=holds, offset=st.sampled_from([-1, 0, 1]))
    def advance_to_expiry(self, hold_id: str, offset: int) -> None:
        """To a second before a hold's expiry, exactly on it (when it is expired), or a second after."""
        target = self.holds_m[hold_id].expires_at + timedelta(seconds=offset)
        if target > self.now:
            self.clock.set(target)

    @rule()
    def run_sweep(self) -> None:
        due = {hid for hid, h in self.holds_m.items() if h.status == "held" and h.expires_at <= self.now}
        result = self.run(sweep(self.api.db))
        assert set(result.expired) == due and len(result.expired) == len(due)
        for hid in due:
            self.holds_m[hid].status = "expired"

    @rule()
    def list_holds(self) -> None:
        """Every hold's status (expired exactly at its expiry, swept or not) and expiry, as the AMHP sees them."""
        listed = self.expect(self.call("GET", "/api/holds", "amhp"), 200)
        got = {h["id"]: (h["status"], when(h["expires_at"])) for h in listed}
        assert got == {hid: (self.effective(h), h.expires_at) for hid, h in self.holds_m.items()}, self.now

    # --- invariants ------------------------------------------------------------------------------------------

    @invariant()
    def figures_match_the_model(self) -> None:
        units = {u["id"]: u for u in self.expect(self.call("GET", "/api/units", "admin"), 200)}
        for key, unit_id in self.unit_ids.items():
            got = units[unit_id]
            want = {
                "open_places": self.open[key],
                "status": "closed" if self.closed[key] else "open",
                "held": self.held(key),
                "occupied": self.occupied(key),
                "available": self.available(key),
            }
            assert {k: got[k] for k in want} == want, (key, self.now)


@pytest.mark.parametrize("engine", ENGINES)
def test_booking_follows_the_model(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    if engine == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        numbers = itertools.count()

        def fresh_database() -> str:
            path = tmp_path / f"model-{next(numbers)}.db"
            shutil.copyfile(template, path)
            return f"sqlite+aiosqlite:///{path}"

        examples = 25
    else:
        url = request.getfixturevalue("postgres_url")

        def fresh_database() -> str:
            loop.run_until_complete(reset_postgres(url))
            return url

        examples = 10
    try:
        run_state_machine_as_test(
            lambda: BookingMachine(loop, fresh_database),
            settings=settings(
                max_examples=examples,
                stateful_step_count=30,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        loop.close()
