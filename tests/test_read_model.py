"""The availability read model (capacity.booking.units.read_model) against the database.

Hypothesis interleaves holds, releases, extensions, declarations, clock moves past expiries, sweeps, dropped events
and reconciles through the API; after every step the model's figures for every unit must be the
availability calculator's, except at units whose events were dropped since the last reconcile, and
after a reconcile everywhere. Events reach the model through the channels plugin, as in production; a
test drops one by not publishing it. Searches from the model must equal the SQL search's answers, and
GET /api/units must read none of the tables the model holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from capacity.booking.escalation.service import read_escalations
from capacity.booking.sweep import sweep
from capacity.booking.units.availability import (
    UnitFigures,
    UnitSearch,
    figures,
    great_circle_km,
    search_statement,
    search_units,
)
from capacity.booking.units.models import Area, UnmetDemand
from capacity.booking.units.read_model import ReadModel, cell_floor_km, cell_of, unit_entry
from capacity.booking.units.schemas import unit_out
from capacity.codes import KINDS
from capacity.db.engine import Database
from capacity.events import Event
from support.api import Api

BRISTOL = "E06000023"
# Units the demo AMHP can hold at for a Bristol woman of 34, with the purpose of a hold there.
HOLDABLE = {
    "Bristol Place of Safety": "s136",
    "Callington Road": "admission",
    "Bristol Women's": "crisis",
}
EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


class Tap:
    """The app's publisher, counting the events it puts on the bus and dropping those a test says to."""

    def __init__(self, db: Database) -> None:
        self.inner = db.publish
        db.publish = self.publish
        self.sent = 0
        self.dropping = False
        self.dropped_units: set[str] = set()

    async def publish(self, events: list[Event]) -> None:
        if self.dropping:
            self.dropped_units |= {e.unit_id for e in events if e.unit_id}
            return
        assert self.inner is not None
        self.sent += len(events)
        await self.inner(events)


@pytest.fixture
async def model(api: Api) -> AsyncIterator[ReadModel]:
    model: ReadModel = api.app.state.read_model
    await model.start()  # the `api` fixture runs no startup hooks
    yield model
    await model.stop()


@pytest.fixture
def tap(api: Api, model: ReadModel) -> Tap:
    return Tap(api.db)


async def heard(model: ReadModel, tap: Tap) -> None:
    """Until the model has heard every event put on the bus (the plugin delivers in its own task), then
    its re-reads done."""
    for _ in range(2000):
        if model.heard >= tap.sent:
            break
        await asyncio.sleep(0.005)
    assert model.heard == tap.sent
    await model.catch_up()


def figures_of(f: UnitFigures) -> tuple:
    return (f.unit.status, f.unit.open_places, f.held, f.occupied, f.available, f.stale)


async def differences(api: Api, model: ReadModel) -> dict[str, tuple]:
    """Units whose figures in the model are not the availability calculator's at the clock's now."""
    async with api.db.read() as reading:
        rows = list((await reading.session.execute(search_statement(UnitSearch()))).all())
        want = {unit_id: figures_of(f) for unit_id, f in (await figures(reading, rows)).items()}
    answer = model.search(UnitSearch(), api.clock.now())
    assert answer is not None, "the model is not ready"
    got = {f.unit.id: figures_of(f) for f in answer}
    return {u: (got.get(u), want.get(u)) for u in want.keys() | got.keys() if got.get(u) != want.get(u)}


async def hold(api: Api, unit_id: str, purpose: str, n: int) -> Any:
    person = {"ref": f"RM-{n:05d}", "age": 34, "sex": "female", "home_area": BRISTOL}
    return await api.post("/api/holds", "amhp", json={"unit_id": unit_id, "purpose": purpose, "person": person})


STEPS = st.sampled_from(
    ["hold", "hold", "hold", "release", "extend", "declare", "advance", "sweep", "drop", "reconcile"]
)


@EXAMPLES
@given(data=st.data())
async def test_the_model_follows_the_database_through_any_interleaving(
    api: Api, model: ReadModel, tap: Tap, data: st.DataObject
) -> None:
    units = {name: (await api.unit(name)).id for name in HOLDABLE}
    await model.reconcile()  # examples share one database: each starts from a model read afresh
    tap.dropped_units.clear()
    holds: list[str] = []
    for n in range(data.draw(st.integers(5, 25), label="steps")):
        step = data.draw(STEPS, label="step")
        tap.dropping = step == "drop" or data.draw(st.integers(0, 9), label="drop?") == 0
        if step in ("hold", "drop"):
            name = data.draw(st.sampled_from(sorted(HOLDABLE)), label="unit")
            response = await hold(api, units[name], HOLDABLE[name], n)
            assert response.status_code in (201, 409, 422), response.text  # 422: the unit was declared closed
            if response.status_code == 201:
                holds.append(response.json()["id"])
        elif step == "release" and holds:
            hold_id = holds.pop(data.draw(st.integers(0, len(holds) - 1), label="which"))
            response = await api.post(f"/api/holds/{hold_id}/release", "amhp")
            assert response.status_code in (200, 409), response.text  # 409: it had expired
        elif step == "extend" and holds:
            hold_id = data.draw(st.sampled_from(holds), label="which")
            body = {"minutes": 10, "reason": "ambulance delayed"}
            response = await api.post(f"/api/holds/{hold_id}/extend", "amhp", json=body)
            assert response.status_code in (200, 409, 422), response.text  # expired, or extended to its limit
        elif step == "declare":
            name = data.draw(st.sampled_from(sorted(HOLDABLE)), label="unit")
            closed = data.draw(st.booleans(), label="closed")
            body = {"open_places": data.draw(st.integers(0, 4), label="places"), "status": "open"}
            if closed:
                body |= {"status": "closed", "closed_reason": "staffing"}
            response = await api.put(f"/api/units/{units[name]}/availability", "admin", json=body)
            assert response.status_code == 200, response.text
        elif step == "advance":
            api.clock.advance(seconds=data.draw(st.sampled_from([59, 1800, 3600, 4 * 3600]), label="seconds"))
        elif step == "sweep":
            await sweep(api.db)
        elif step == "reconcile":
            await model.reconcile()  # what the period, or a gap in the bus, would have done by now
            tap.dropped_units.clear()
        tap.dropping = False
        await heard(model, tap)
        wrong = await differences(api, model)
        assert set(wrong) <= tap.dropped_units, (step, wrong)
    await model.reconcile()
    assert await differences(api, model) == {}


async def test_the_check_catches_a_model_that_ignores_an_event(api: Api) -> None:
    """The control: a model deaf to events is caught by the same comparison."""

    class Deaf(ReadModel):
        def note(self, event: Event) -> None:
            pass

    deaf = Deaf(api.db, api.app.state.channels, api.app.state.bus)
    await deaf.start()
    try:
        tap = Tap(api.db)
        suite = await api.unit("Bristol Place of Safety")
        assert (await hold(api, suite.id, "s136", 1)).status_code == 201
        await heard(deaf, tap)
        assert set(await differences(api, deaf)) == {suite.id}
    finally:
        await deaf.stop()


async def test_a_hold_is_counted_until_its_expiry_without_any_event(api: Api, model: ReadModel, tap: Tap) -> None:
    suite = await api.unit("Bristol Place of Safety")
    response = await hold(api, suite.id, "s136", 1)
    assert response.status_code == 201
    await heard(model, tap)
    search = UnitSearch(kinds=("s136_suite",))
    before = {f.unit.id: f.held for f in model.search(search, api.clock.now()) or []}
    api.clock.advance(seconds=api.db.settings.hold_seconds["s136_suite"])  # exactly its expiry: no longer live
    after = {f.unit.id: f.held for f in model.search(search, api.clock.now()) or []}
    assert (before[suite.id], after[suite.id]) == (1, 0)
    assert await differences(api, model) == {}  # nobody swept it: expired at read time in both


async def test_after_the_bus_was_down_the_database_answers_and_then_the_model_is_reconciled(
    api: Api, model: ReadModel, tap: Tap
) -> None:
    suite = await api.unit("Bristol Place of Safety")
    bus = api.app.state.bus
    bus.went_down("a test")
    assert model.search(UnitSearch(), api.clock.now()) is None  # not hearing the bus: searches read the database
    tap.dropping = True  # what was published while it was down never arrives
    assert (await hold(api, suite.id, "s136", 1)).status_code == 201
    tap.dropping = False
    bus.came_back()
    for _ in range(2000):  # the model reconciles at once, not at the end of its period
        if model.ready and not await differences(api, model):
            break
        await asyncio.sleep(0.005)
    assert await differences(api, model) == {}
    assert api.db.settings.read_model_reconcile_seconds >= 30  # so it was the gap, not the period


QUERIES = st.builds(
    UnitSearch,
    kinds=st.lists(st.sampled_from(sorted(KINDS)), max_size=3).map(tuple),
    sex=st.sampled_from([None, "female", "male"]),
    age=st.one_of(st.none(), st.integers(10, 90)),
    home_area=st.sampled_from([None, BRISTOL, "E06000022", "E06000054", "E08000028"]),
    near=st.one_of(st.none(), st.tuples(st.floats(50.0, 53.0), st.floats(-4.0, -1.0))),
    available_only=st.booleans(),
    limit=st.one_of(st.none(), st.integers(1, 8)),
    flags=st.lists(st.sampled_from(["accepts_intoxicated", "accepts_detained", "mother_and_baby"]), max_size=2).map(
        tuple
    ),
)


def answer(found: list[UnitFigures]) -> list[tuple]:
    return [(f.unit.id, *figures_of(f), f.distance_km, f.out_of_area) for f in found]


@EXAMPLES
@given(queries=st.lists(QUERIES, min_size=5, max_size=10))
async def test_a_search_from_the_model_is_the_sql_searchs_answer(
    api: Api, model: ReadModel, tap: Tap, queries: list[UnitSearch]
) -> None:
    for n, name in enumerate(HOLDABLE):  # some places held, so that availability differs between units
        await hold(api, (await api.unit(name)).id, HOLDABLE[name], n)
    await heard(model, tap)
    async with api.db.read_sessions() as session:
        known = set((await session.scalars(select(Area.code))).all())
    for query in queries:
        if query.home_area and query.home_area not in known:
            continue
        async with api.db.read() as reading:
            want = answer(await search_units(reading, query))
        got = model.search(query, api.clock.now())
        assert got is not None and answer(got) == want, query


async def test_get_units_answers_from_the_model_without_reading_those_tables(
    api: Api, model: ReadModel, tap: Tap
) -> None:
    suite = await api.unit("Bristol Place of Safety")
    assert (await hold(api, suite.id, "s136", 1)).status_code == 201
    await heard(model, tap)
    path = f"/api/units?home_area={BRISTOL}&near=51.45,-2.59&age=34&sex=female&limit=5"
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    await api.headers("amhp")  # the token first: it is the request, not the test's set-up, being watched
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        response = await api.get(path, "amhp")
    finally:
        event.remove(Engine, "before_cursor_execute", seen)
    assert response.status_code == 200
    held = [s for s in statements if any(t in s for t in ("units", "holds", "placements", "providers", "areas"))]
    assert held == []
    search = UnitSearch(home_area=BRISTOL, near=(51.45, -2.59), age=34, sex="female", limit=5)
    async with api.db.read() as reading:
        found = await search_units(reading, search)
    escalations = await read_escalations(api.db, {f.unit.provider_id for f in found})
    want = [unit_out(f, escalations[f.unit.provider_id]) for f in found]
    assert response.json() == msgspec.json.decode(msgspec.json.encode(want))


async def test_an_empty_search_from_the_model_is_still_recorded_as_unmet_demand(api: Api, model: ReadModel) -> None:
    assert model.ready
    for _ in range(2):  # the same search again is the same unmet need
        response = await api.get(f"/api/units?age=15&home_area={BRISTOL}&kind=picu", "amhp")
        assert response.status_code == 200 and not any(u["available"] > 0 for u in response.json())
    async with api.db.read_sessions() as session:
        rows = (await session.execute(select(UnmetDemand.kind, UnmetDemand.home_area, UnmetDemand.source))).all()
    assert [tuple(r) for r in rows] == [("picu", BRISTOL, "search")]


@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-180, 179.99),
    other_lat=st.floats(-80, 80),
    other_lon=st.floats(-180, 179.99),
)
def test_no_point_of_a_map_cell_is_nearer_than_the_cells_floor(
    lat: float, lon: float, other_lat: float, other_lon: float
) -> None:
    """What lets a search stop early: the floor of the cell a unit stands in is never beyond the unit."""
    floor = cell_floor_km(lat, math.cos(math.radians(lat)), lon, cell_of(other_lat, other_lon))
    assert floor <= great_circle_km(lat, lon, other_lat, other_lon) + 1e-6


SPREAD = st.builds(
    UnitSearch,
    kinds=st.lists(st.sampled_from(sorted(KINDS)), max_size=2).map(tuple),
    sex=st.sampled_from([None, "female", "male"]),
    near=st.tuples(st.floats(49.5, 56.0), st.floats(-6.0, 2.0)),
    available_only=st.booleans(),
    limit=st.integers(1, 25),
)


@EXAMPLES
@given(queries=st.lists(SPREAD, min_size=10, max_size=20))
async def test_a_search_near_a_point_that_stops_at_the_nearest_cells_gives_the_whole_answer(
    api: Api, model: ReadModel, queries: list[UnitSearch]
) -> None:
    """Units across England, a quarter of them stale and some full: a search near a point with a limit
    (which visits the nearest cells of the map and stops) answers what ranking every unit would."""
    now = api.clock.now()
    template = next(iter(model.units.values())).row._asdict()
    rng = random.Random(136)
    for n in range(3000):
        row = SimpleNamespace(
            **{
                **template,
                "id": f"spread-{n:04d}",
                "name": f"Unit {n % 400:03d}",
                "kind": rng.choice(sorted(KINDS)),
                "sex": rng.choice(["any", "female", "male"]),
                "lat": rng.uniform(50.0, 55.5),
                "lon": rng.uniform(-5.5, 1.5),
                "status": "open",
                "open_places": rng.randint(0, 3),
                "last_confirmed_at": now - timedelta(days=rng.random() < 0.25),
            }
        )
        model._replace(row.id, unit_entry(row, (), (), (), rng.randint(0, 2), (), api.db.settings))
    for query in queries:
        everything = model.search(dataclasses.replace(query, limit=None), now)
        got = model.search(query, now)
        assert got is not None and everything is not None
        assert answer(got) == answer(everything[: query.limit]), query


async def test_a_holds_own_events_change_the_model_without_a_database_read(
    api: Api, model: ReadModel, tap: Tap
) -> None:
    """Holds made, extended, released and expired reach the model from their events alone (the most frequent
    changes cost no read); a declaration still has its unit read again."""
    reads: list[set[str]] = []
    read = model._read

    async def counted(unit_ids, provider_ids) -> None:
        if unit_ids:
            reads.append(set(unit_ids))
        await read(unit_ids, provider_ids)

    model._read = counted  # type: ignore[method-assign]
    suite = await api.unit("Bristol Place of Safety")
    made = await hold(api, suite.id, "s136", 1)
    assert made.status_code == 201, made.text
    hold_id = made.json()["id"]
    extended = await api.post(
        f"/api/holds/{hold_id}/extend", "amhp", json={"minutes": 30, "reason": "ambulance delayed"}
    )
    assert extended.status_code == 200, extended.text
    await heard(model, tap)
    assert reads == [] and await differences(api, model) == {}
    api.clock.advance(seconds=api.db.settings.hold_seconds["s136_suite"])  # past the first expiry, not the extended
    assert await differences(api, model) == {}
    assert (await api.post(f"/api/holds/{hold_id}/release", "amhp")).status_code == 200
    await heard(model, tap)
    assert reads == [] and await differences(api, model) == {}
    assert (await hold(api, suite.id, "s136", 2)).status_code == 201
    api.clock.advance(seconds=api.db.settings.hold_seconds["s136_suite"])
    assert len((await sweep(api.db)).expired) == 1  # the sweep's hold.expired, and the figures after it
    await heard(model, tap)
    assert reads == [] and await differences(api, model) == {}
    declared = await api.put(f"/api/units/{suite.id}/availability", "admin", json={"open_places": 2, "status": "open"})
    assert declared.status_code == 200, declared.text
    await heard(model, tap)
    assert reads == [{suite.id}] and await differences(api, model) == {}


async def test_a_holds_event_heard_while_a_read_is_under_way_has_its_unit_read_again(
    api: Api, model: ReadModel, tap: Tap
) -> None:
    """What a read under way installs may predate the event, so the event is not applied to it but has the
    unit read again afterwards."""
    suite = await api.unit("Bristol Place of Safety")
    async with model._lock:  # as a read does while it runs
        assert (await hold(api, suite.id, "s136", 1)).status_code == 201
        for _ in range(2000):
            if model.heard >= tap.sent:
                break
            await asyncio.sleep(0.005)
        assert model.heard == tap.sent and suite.id in model._dirty_units
    await heard(model, tap)
    assert suite.id not in model._dirty_units and await differences(api, model) == {}
