"""The live stream through a real server and a real WebSocket (issue 4), on SQLite and PostgreSQL.

Each test runs uvicorn on a free port in its own event loop (tests/support/live_server.py) with the `websockets`
client. To know that nothing more is coming, a test makes one more event (a declaration at a unit no
one else touches) and reads up to it: events travel one ordered path, so everything committed before
it has arrived by then ("barrier"). Time is a FixedClock; the sweep and the alert jobs are run by hand.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select, update

from capacity.app import create_app
from capacity.auth.models import User
from capacity.booking.holds import service as hold_service
from capacity.booking.holds.models import Hold
from capacity.booking.sweep import sweep
from capacity.booking.units.models import Unit
from capacity.clock import FixedClock
from capacity.codes import KINDS
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.notify import ws as ws_module
from capacity.notify.alerts import AlertSent, send_alerts
from capacity.notify.channels import make_publisher
from capacity.notify.hub import TOO_SLOW
from capacity.notify.watch import WatchError, WatchOptions, events_url, format_frame, local_time, watch
from support.api import Api
from support.demo import START
from support.live_server import WAIT, Client, LiveServer, serve
from support.settings import settings_for
from support.statements import Statements

BANES, BRISTOL, WILTSHIRE, SOMERSET, SANDWELL = "E06000022", "E06000023", "E06000054", "E06000066", "E08000028"
SUITE = "Bristol Place of Safety"
AVAILABILITY_KEYS = {
    "unit_id",
    "status",
    "closed_reason",
    "open_places",
    "held",
    "occupied",
    "available",
    "last_confirmed_at",
    "stale",
}
PERSON_KEYS = {"person", "person_ref", "ref", "home_area", "age", "sex", "ethnicity", "hold_id", "placement_id"}


@asynccontextmanager
async def running(database_url: str, *, small_buffers: bool = False, **overrides: Any):
    app = create_app(settings_for(database_url, **overrides), clock=FixedClock(START))
    async with serve(app, small_buffers=small_buffers) as live:
        yield live


@pytest.fixture
async def live(database_url: str):
    async with running(database_url) as server:
        yield server


def person(ref: str = "LIVE-0001", home_area: str = BRISTOL, **overrides: Any) -> dict:
    return {"ref": ref, "age": 34, "sex": "female", "ethnicity": "A", "home_area": home_area, **overrides}


async def place_hold(
    live: LiveServer, unit_name: str = SUITE, *, as_: str = "amhp", purpose: str = "s136", **person_fields: Any
) -> dict:
    unit = await live.unit(unit_name)
    response = await live.post(
        "/api/holds", as_, json={"unit_id": unit.id, "purpose": purpose, "person": person(**person_fields)}
    )
    assert response.status_code == 201, response.text
    return response.json()


def of_type(frames: list[dict], *types: str) -> list[dict]:
    return [f for f in frames if f["type"] in types]


def about(frames: list[dict], hold_id: str) -> list[dict]:
    return [f for f in frames if f["data"].get("hold_id") == hold_id]


def figures_of(frames: list[dict], unit_id: str) -> list[tuple]:
    return [
        (f["data"]["open_places"], f["data"]["held"], f["data"]["occupied"], f["data"]["available"])
        for f in of_type(frames, "unit.availability")
        if f["data"]["unit_id"] == unit_id
    ]


def keys_in(value: Any) -> set[str]:
    """Every key anywhere in a JSON value."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in keys_in(v)}
    if isinstance(value, list):
        return {k for v in value for k in keys_in(v)}
    return set()


def assert_seq_unbroken(client: Client) -> None:
    assert [f["seq"] for f in client.frames] == list(range(1, len(client.frames) + 1))


def second_instance(live: LiveServer) -> Database:
    """Another `Database` on the same database, publishing to the same fan-out: a second instance."""
    db = Database(live.db.settings, live.clock)
    db.publish = make_publisher(live.app.state.channels)
    return db


# --- Every change reaches the stream after its REST action, with the new figures ---------------------------


async def test_each_change_arrives_after_its_rest_action_with_new_figures(live: LiveServer) -> None:
    amhp = await live.connect("amhp")
    manager = await live.connect("bedmanager")
    suite = await live.unit(SUITE)

    first = await place_hold(live)
    frames = await amhp.until(lambda f: f["type"] == "unit.availability" and f["data"]["unit_id"] == suite.id)
    assert [f["type"] for f in frames] == ["hold.created", "unit.availability"]
    created = frames[0]
    assert created["data"]["hold_id"] == first["id"] and created["data"]["status"] == "held"
    assert created["data"]["person"]["ref"] == "LIVE-0001"
    assert created["at"].startswith("2026-03-02T09:00:00")
    assert figures_of(frames, suite.id) == [(4, 1, 0, 3)]

    live.clock.advance(minutes=5)
    extended = await live.post(
        f"/api/holds/{first['id']}/extend", "amhp", json={"minutes": 30, "reason": "waiting for the ambulance"}
    )
    assert extended.status_code == 200, extended.text
    frames = await amhp.until(lambda f: f["type"] == "unit.availability")
    assert [f["type"] for f in frames] == ["hold.extended", "unit.availability"]
    assert frames[0]["data"]["expires_at"].startswith("2026-03-02T10:30:00")
    assert figures_of(frames, suite.id) == [(4, 1, 0, 3)]

    arrived = await live.post(f"/api/holds/{first['id']}/arrive", "amhp", json={})
    assert arrived.status_code == 201, arrived.text
    placement_id = arrived.json()["id"]
    frames = await amhp.until(lambda f: f["type"] == "unit.availability")
    assert [f["type"] for f in frames] == ["hold.arrived", "placement.started", "unit.availability"]
    assert frames[0]["data"]["placement_id"] == placement_id and frames[0]["data"]["status"] == "arrived"
    assert figures_of(frames, suite.id) == [(4, 0, 1, 3)]

    second = await place_hold(live, ref="LIVE-0002")
    released = await live.post(f"/api/holds/{second['id']}/release", "amhp")
    assert released.status_code == 200, released.text
    third = await place_hold(live, ref="LIVE-0003")
    declined = await live.post(
        f"/api/holds/{third['id']}/decline", "bedmanager", json={"reason": "clinically_unsuitable"}
    )
    assert declined.status_code == 200, declined.text
    discharged = await live.post(
        f"/api/placements/{placement_id}/discharge", "bedmanager", json={"outcome": "discharged"}
    )
    assert discharged.status_code == 200, discharged.text
    declared = await live.put(
        f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 3, "status": "open"}
    )
    assert declared.status_code == 200, declared.text
    held = await place_hold(live, ref="LIVE-0004")

    frames = (await live.barrier(amhp))[0]
    assert [(f["type"], f["data"].get("hold_id")) for f in frames if f["type"] != "unit.availability"] == [
        ("hold.created", second["id"]),
        ("hold.released", second["id"]),
        ("hold.created", third["id"]),
        ("hold.declined", third["id"]),
        ("placement.discharged", first["id"]),
        ("hold.created", held["id"]),
    ]
    assert of_type(frames, "hold.declined")[0]["data"]["status"] == "declined"
    assert of_type(frames, "placement.discharged")[0]["data"]["placement_id"] == placement_id
    # (open, held, occupied, available) after each change: +hold, -hold, +hold, -hold, discharge,
    # the declaration of 3 open places, and one more hold.
    assert figures_of(frames, suite.id) == [
        (4, 1, 1, 2),
        (4, 0, 1, 3),
        (4, 1, 1, 2),
        (4, 0, 1, 3),
        (4, 0, 0, 4),
        (3, 0, 0, 3),
        (3, 1, 0, 2),
    ]
    declaration = [f for f in of_type(frames, "unit.availability") if f["data"]["open_places"] == 3][0]
    assert declaration["data"]["stale"] is False
    assert declaration["data"]["last_confirmed_at"].startswith("2026-03-02T09:05:00")
    snapshot = (await live.get(f"/api/units/{suite.id}", "amhp")).json()
    assert (snapshot["open_places"], snapshot["held"], snapshot["occupied"], snapshot["available"]) == (3, 1, 0, 2)

    # The unit's bed manager heard the same changes to their own unit, numbered on their own stream.
    manager_frames = (await live.barrier(manager))[0]
    assert [f["type"] for f in manager_frames if f["type"].startswith("hold.")] == [
        "hold.created",
        "hold.extended",
        "hold.arrived",
        "hold.created",
        "hold.released",
        "hold.created",
        "hold.declined",
        "hold.created",
    ]
    assert_seq_unbroken(amhp)
    assert_seq_unbroken(manager)


async def test_conveyance_updates_reach_the_amhp_the_units_bed_managers_and_conveyance(live: LiveServer) -> None:
    suite = await live.unit(SUITE)
    somerset = await live.provider_of("Taunton")
    await live.add_user("taunton_bm", "bed_manager", provider_id=somerset.id)
    await live.add_user("amhp_sandwell", "amhp", areas=(SANDWELL,))
    listeners = {
        name: await live.connect(name)
        for name in ("amhp", "bedmanager", "conveyance", "commissioner", "taunton_bm", "amhp_sandwell")
    }
    hold = await place_hold(live)

    live.clock.advance(minutes=12)
    requested = (START + timedelta(minutes=2)).isoformat()
    response = await live.put(
        f"/api/holds/{hold['id']}/conveyance", "conveyance", json={"mode": "ambulance", "requested_at": requested}
    )
    assert response.status_code == 200, response.text
    live.clock.advance(minutes=33)
    at_scene = (START + timedelta(minutes=44)).isoformat()
    eta = (START + timedelta(minutes=70)).isoformat()
    response = await live.put(
        f"/api/holds/{hold['id']}/conveyance",
        "amhp",
        json={"mode": "ambulance", "requested_at": requested, "at_scene_at": at_scene, "eta": eta},
    )
    assert response.status_code == 200, response.text

    heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))
    for name in ("amhp", "bedmanager", "conveyance"):
        updates = of_type(heard[name], "conveyance.updated")
        assert [u["data"]["hold_id"] for u in updates] == [hold["id"]] * 2, name
        # Response so far: 10 minutes since the request while waiting, then 42 (request to at scene),
        # against the 30-minute standard.
        assert [u["data"]["ambulance_response_minutes"] for u in updates] == [10.0, 42.0], name
        assert {u["data"]["ambulance_standard_minutes"] for u in updates} == {30}
        assert updates[1]["data"]["unit_id"] == suite.id and updates[1]["data"]["mode"] == "ambulance"
        # The ETA keeps the place: the hold is extended to the ETA plus the 15-minute grace.
        assert updates[1]["data"]["hold_expires_at"].startswith("2026-03-02T10:25:00")
        assert [f["type"] for f in about(heard[name], hold["id"])] == [
            "hold.created",
            "conveyance.updated",
            "hold.extended",
            "conveyance.updated",
        ], name
    for name in ("commissioner", "taunton_bm", "amhp_sandwell"):
        assert about(heard[name], hold["id"]) == [], name
        assert {f["type"] for f in heard[name]} == {"unit.availability"}, name


# --- Scope: every message as the REST API would show it ---------------------------------------------------


async def test_each_role_hears_only_what_its_rest_scope_shows(live: LiveServer) -> None:
    somerset = await live.provider_of("Taunton")
    await live.add_user("taunton_bm", "bed_manager", provider_id=somerset.id)
    await live.add_user("amhp_sandwell", "amhp", areas=(SANDWELL,))
    await live.add_user("conveyance_wm", "conveyance", areas=(SANDWELL,))
    names = (
        "admin",
        "amhp",
        "bedmanager",
        "conveyance",
        "commissioner",
        "taunton_bm",
        "amhp_sandwell",
        "conveyance_wm",
    )
    listeners = {name: await live.connect(name) for name in names}

    at_bristol = await place_hold(live)  # a Bristol resident at an AWP unit in Bristol
    at_taunton = await place_hold(live, "Taunton", ref="LIVE-0002", home_area=BANES)  # a BANES resident
    at_sandwell = await place_hold(live, "Sandwell", as_="amhp_sandwell", ref="LIVE-0003", home_area=SANDWELL)
    suite = await live.unit(SUITE)
    await live.put(f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 3, "status": "open"})

    heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))

    def holds_heard(name: str) -> set[str]:
        return {f["data"]["hold_id"] for f in of_type(heard[name], "hold.created")}

    assert holds_heard("admin") == {at_bristol["id"], at_taunton["id"], at_sandwell["id"]}
    assert holds_heard("amhp") == {at_bristol["id"], at_taunton["id"]}  # people from BANES and Bristol
    assert holds_heard("bedmanager") == {at_bristol["id"]}  # AWP's own units only
    assert holds_heard("taunton_bm") == {at_taunton["id"]}  # nothing of the hold at Bristol
    assert holds_heard("amhp_sandwell") == {at_sandwell["id"]}  # nothing from other areas
    assert holds_heard("conveyance") == {at_bristol["id"], at_taunton["id"]}
    assert holds_heard("conveyance_wm") == {at_sandwell["id"]}
    # Figures are for everyone: the commissioner hears them, and nothing else, and never a person.
    commissioner = heard["commissioner"]
    assert commissioner and {f["type"] for f in commissioner} == {"unit.availability"}
    assert all(set(f["data"]) == AVAILABILITY_KEYS for f in commissioner)
    assert not keys_in(commissioner) & PERSON_KEYS
    assert len(figures_of(commissioner, suite.id)) == 2  # the hold, then the declaration
    for name, frames in heard.items():
        assert {f["type"] for f in frames} <= {"hold.created", "unit.availability"}, name
        assert_seq_unbroken(listeners[name])


async def test_a_subscription_narrows_the_stream_by_unit_area_or_provider(live: LiveServer) -> None:
    suite, devizes, bath = await live.unit(SUITE), await live.unit("Devizes"), await live.unit("Bath Crisis")
    somerset, wilts = await live.provider_of("Taunton"), await live.provider_of("Devizes")
    by_unit = await live.connect("admin")
    by_area = await live.connect("admin")
    by_provider = await live.connect("admin")
    everything = await live.connect("admin")
    # Each subscription includes Devizes, where the barrier declares.
    for client, message in [
        (by_unit, {"units": [suite.id, devizes.id]}),
        (by_area, {"areas": [BANES, WILTSHIRE]}),
        (by_provider, {"providers": [somerset.id, wilts.id]}),
    ]:
        await client.send({"action": "subscribe", **message})
        reply = await client.next()
        assert reply["type"] == "subscribed" and reply["seq"] == 2, reply

    at_bristol = await place_hold(live)
    at_taunton = await place_hold(live, "Taunton", ref="LIVE-0002", home_area=BANES)
    await live.put(f"/api/units/{bath.id}/availability", "admin", json={"open_places": 5, "status": "open"})
    heard = await live.barrier(by_unit, by_area, by_provider, everything)

    def seen(frames: list[dict]) -> set[tuple[str, str]]:
        return {(f["type"], f["data"]["unit_id"]) for f in frames}

    taunton = await live.unit("Taunton")
    assert seen(heard[0]) == {("hold.created", suite.id), ("unit.availability", suite.id)}
    # An area matches the unit's area or the person's home area: the BANES resident held at Taunton.
    assert seen(heard[1]) == {("hold.created", taunton.id), ("unit.availability", bath.id)}
    assert seen(heard[2]) == {("hold.created", taunton.id), ("unit.availability", taunton.id)}
    assert {f["data"].get("hold_id") for f in of_type(heard[3], "hold.created")} == {at_bristol["id"], at_taunton["id"]}
    assert len(heard[3]) == 5

    # A new subscription replaces the old one; an empty one is everything in scope again.
    await by_unit.send({"action": "subscribe"})
    assert (await by_unit.next())["type"] == "subscribed"
    await live.put(f"/api/units/{bath.id}/availability", "admin", json={"open_places": 6, "status": "open"})
    heard = await live.barrier(by_unit)
    assert figures_of(heard[0], bath.id) == [(6, 0, 1, 5)]


# --- The connection: seq, ping, authentication, reconnection -------------------------------------------


async def test_seq_counts_every_frame_of_a_connection_without_gaps_and_ping_gets_pong(live: LiveServer) -> None:
    client = await live.connect("amhp")
    await client.send({"action": "ping"})
    pong = await client.next()
    assert (pong["seq"], pong["type"]) == (2, "pong")
    await client.send({"action": "dance"})
    assert (await client.next())["type"] == "error"
    await client.ws.send("not json")
    assert (await client.next())["type"] == "error"
    for i in range(3):
        await place_hold(live, ref=f"LIVE-{i}")
        await client.send({"action": "ping"})
    await live.barrier(client)
    assert len(client.frames) >= 4 + 3 * 3 + 1
    assert_seq_unbroken(client)
    assert len(of_type(client.frames, "pong")) == 4
    # Another connection counts from 1 on its own.
    other = await live.connect("amhp")
    await other.send({"action": "ping"})
    assert (await other.next())["seq"] == 2


async def test_a_token_in_the_first_message_authenticates(live: LiveServer) -> None:
    client = await live.connect("bedmanager", via="message", hello=False)
    hello = await client.next()
    assert (hello["seq"], hello["type"], hello["data"]["role"]) == (1, "hello", "bed_manager")
    await place_hold(live)
    frames = (await live.barrier(client))[0]
    assert [f["type"] for f in frames] == ["hold.created", "unit.availability"]


async def test_a_missing_or_bad_token_is_closed_4401(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = live.app.state.jwt_auth.token_secret
    admin = await live.token("admin")
    admin_id = jwt.decode(admin, secret, algorithms=["HS256"])["sub"]
    now = datetime.now(UTC)
    expired = jwt.encode(
        {"sub": admin_id, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)}, secret, algorithm="HS256"
    )
    forged = jwt.encode(
        {"sub": admin_id, "iat": now, "exp": now + timedelta(hours=1)}, "another-key" * 4, algorithm="HS256"
    )
    for token, via in [("", "query"), ("garbage", "query"), (expired, "query"), (forged, "query"), (forged, "message")]:
        client = await live.connect(token=token, via=via, hello=False)
        if not token:  # no token in the URL: the first message must carry one, and this one does not
            await client.send({"action": "subscribe", "units": []})
        assert await client.close_code() == 4401, (token[:20], via)
        assert client.frames == []

    # A deactivated user's token stops working at once.
    deactivated = await live.token("conveyance")

    async def deactivate(uow: UnitOfWork) -> None:
        await uow.session.execute(update(User).where(User.username == "conveyance").values(active=False))

    await live.db.write(deactivate)
    client = await live.connect(token=deactivated, hello=False)
    assert await client.close_code() == 4401

    # A client that never says who it is is closed too, once the first message is overdue.
    monkeypatch.setattr(ws_module, "FIRST_MESSAGE_SECONDS", 0.3)
    client = await live.connect(hello=False)
    assert await client.close_code(within=3) == 4401


async def test_after_a_reconnect_the_rest_snapshot_has_what_was_missed(live: LiveServer) -> None:
    suite = await live.unit(SUITE)
    client = await live.connect("amhp")
    first = await place_hold(live)
    await client.until(lambda f: f["type"] == "unit.availability")
    await client.ws.close()

    # While disconnected: a release and two more holds, none of which this client hears.
    await live.post(f"/api/holds/{first['id']}/release", "amhp")
    second = await place_hold(live, ref="LIVE-0002")
    await place_hold(live, ref="LIVE-0003")

    again = await live.connect("amhp")  # hello is seq 1 again: a new connection, a new count
    units = {u["id"]: u for u in (await live.get("/api/units", "amhp")).json()}
    assert (units[suite.id]["held"], units[suite.id]["available"]) == (2, 2)
    listed = {h["id"]: h["status"] for h in (await live.get("/api/holds", "amhp")).json()}
    assert listed[first["id"]] == "released" and listed[second["id"]] == "held"
    # And from then on the stream carries on from the snapshot.
    await live.post(f"/api/holds/{second['id']}/release", "amhp")
    frames = (await live.barrier(again))[0]
    assert [f["type"] for f in frames] == ["hold.released", "unit.availability"]
    assert figures_of(frames, suite.id) == [(4, 1, 0, 3)]
    assert_seq_unbroken(again)


async def test_a_client_that_falls_too_far_behind_is_closed_4008_and_resyncs(database_url: str) -> None:
    async with running(database_url, small_buffers=True, ws_max_backlog=5) as live:
        devizes = await live.unit("Devizes")
        keeping_up = await live.connect("admin")
        reader = asyncio.create_task(
            keeping_up.until(lambda f: f["type"] == "unit.availability" and f["data"]["open_places"] == 99, within=60)
        )
        # A client that stops reading: a small receive buffer, one frame queued, no keepalive pings.
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", live.port))
        slow = await live.connect("admin", sock=raw, max_queue=1, ping_interval=None)

        def given_up() -> bool:  # the slow client's outbox on the server has overflowed
            return any(s.closing == TOO_SLOW for s in live.app.state.hub.streams)

        try:
            sent = 0
            while not given_up():
                assert sent < 1000, "the server never fell behind the client that does not read"
                sent += 1
                response = await live.put(
                    f"/api/units/{devizes.id}/availability", "admin", json={"open_places": sent % 50, "status": "open"}
                )
                assert response.status_code == 200
            await live.put(f"/api/units/{devizes.id}/availability", "admin", json={"open_places": 99, "status": "open"})

            # The client that kept up got every one of them, in order, and is still connected.
            declared = [n % 50 for n in range(1, sent + 1)] + [99]
            got = [f["data"]["open_places"] for f in of_type(await reader, "unit.availability")]
            assert got == declared
            await keeping_up.send({"action": "ping"})
            assert (await keeping_up.next())["type"] == "pong"
            # The slow one is closed with 4008 after an unbroken run of the first frames, having missed the rest.
            assert await slow.close_code() == 4008
            assert_seq_unbroken(slow)
            received = [f["data"]["open_places"] for f in slow.frames[1:]]
            assert 0 < len(received) < len(declared) and received == declared[: len(received)]
        finally:
            reader.cancel()
        # It reconnects and resyncs from GET /api/units, which has the latest figures.
        await live.connect("admin")
        units = {u["id"]: u for u in (await live.get("/api/units", "admin")).json()}
        assert units[devizes.id]["open_places"] == 99


# --- One hub per instance: scoped once per audience, encoded once, written per socket -----------------------


async def test_each_event_is_encoded_once_however_many_sockets_hear_it(live: LiveServer) -> None:
    names = ("admin", "amhp", "bedmanager", "conveyance", "commissioner")
    listeners = [await live.connect(name) for name in names for _ in range(4)]
    hub = live.app.state.hub
    before = hub.encoded

    await place_hold(live)
    suite = await live.unit(SUITE)
    await live.put(f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 3, "status": "open"})
    heard = await live.barrier(*listeners)

    # An admin hears every event; with the barrier's own, each was encoded once for all twenty sockets.
    events = len(heard[0]) + 1
    assert [f["type"] for f in heard[0]] == ["hold.created", "unit.availability", "unit.availability"]
    assert hub.encoded - before == events
    # The sockets of one caller got the same frames, each numbered on its own connection.
    for i, name in enumerate(names):
        same = heard[4 * i : 4 * i + 4]
        assert all(frames == same[0] for frames in same), name
    for client in listeners:
        assert_seq_unbroken(client)


async def test_seq_has_no_gaps_on_any_socket_while_events_and_replies_interleave(live: LiveServer) -> None:
    clients = [await live.connect(name) for name in ("admin", "admin", "amhp", "bedmanager", "commissioner")]
    # Units no hold or barrier touches, so that each one's declaration is its only event.
    busy = {(await live.unit(SUITE)).id, (await live.unit("Devizes")).id}
    units = [u["id"] for u in (await live.get("/api/units", "admin")).json() if u["id"] not in busy][:8]
    pings = 5

    async def declare(unit_id: str, places: int) -> None:
        response = await live.put(
            f"/api/units/{unit_id}/availability", "admin", json={"open_places": places, "status": "open"}
        )
        assert response.status_code == 200, response.text

    async def ping(client: Client) -> None:
        for _ in range(pings):
            await client.send({"action": "ping"})
            await asyncio.sleep(0)

    await asyncio.gather(
        *(declare(unit_id, 40 + i) for i, unit_id in enumerate(units)),
        *(place_hold(live, ref=f"LIVE-{i}") for i in range(3)),
        *(ping(client) for client in clients),
    )
    heard = await live.barrier(*clients)

    for client, frames in zip(clients, heard, strict=True):
        assert_seq_unbroken(client)
        assert len(of_type(frames, "pong")) == pings
        declared = [f["data"]["unit_id"] for f in of_type(frames, "unit.availability") if f["data"]["unit_id"] in units]
        assert sorted(declared) == sorted(units)  # each declaration once: figures are for everyone
    assert len(of_type(heard[0], "hold.created")) == len(of_type(heard[1], "hold.created")) == 3
    assert of_type(heard[4], "hold.created") == []


async def test_a_socket_that_stops_reading_delays_no_other_and_catches_up_in_order(database_url: str) -> None:
    async with running(database_url, small_buffers=True) as live:
        devizes = await live.unit("Devizes")
        keeping_up = await live.connect("admin")
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.connect(("127.0.0.1", live.port))
        slow = await live.connect("admin", sock=raw, max_queue=1, ping_interval=None)
        hub = live.app.state.hub

        declared: list[int] = []
        # Until the server holds frames for the slow client: the one that keeps up has had every one.
        while not any(stream.outbox for stream in hub.streams):
            assert len(declared) < 500, "the slow client never fell behind"
            declared.append(len(declared) % 50)
            response = await live.put(
                f"/api/units/{devizes.id}/availability", "admin", json={"open_places": declared[-1], "status": "open"}
            )
            assert response.status_code == 200
            frames = await keeping_up.until(lambda f: f["type"] == "unit.availability")
            assert frames[-1]["data"]["open_places"] == declared[-1]
        await keeping_up.send({"action": "ping"})
        assert (await keeping_up.next())["type"] == "pong"

        # Within its backlog the slow client is not closed: once it reads, it has every frame, in order.
        got = await slow.until(
            lambda f: f["type"] == "unit.availability" and len(slow.frames) == len(declared) + 1, within=30
        )
        assert [f["data"]["open_places"] for f in got] == declared
        assert_seq_unbroken(slow)
        await slow.send({"action": "ping"})
        assert (await slow.next())["type"] == "pong"


async def test_each_role_hears_exactly_the_holds_its_rest_scope_lists(live: LiveServer) -> None:
    somerset = await live.provider_of("Taunton")
    await live.add_user("taunton_bm", "bed_manager", provider_id=somerset.id)
    await live.add_user("amhp_sandwell", "amhp", areas=(SANDWELL,))
    await live.add_user("conveyance_wm", "conveyance", areas=(SANDWELL,))
    names = ("admin", "amhp", "bedmanager", "conveyance", "commissioner")
    names += ("taunton_bm", "amhp_sandwell", "conveyance_wm")
    listeners = {name: await live.connect(name) for name in names}
    await place_hold(live)
    await place_hold(live, "Taunton", ref="LIVE-0002", home_area=BANES)
    await place_hold(live, "Sandwell", as_="amhp_sandwell", ref="LIVE-0003", home_area=SANDWELL)
    await place_hold(live, "Taunton", as_="admin", ref="LIVE-0004", home_area=WILTSHIRE)
    heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))

    for name in names:
        listed = await live.get("/api/holds", name)
        rest = {h["id"] for h in listed.json()} if listed.status_code == 200 else set()
        assert listed.status_code == (403 if name == "commissioner" else 200), name
        stream = {f["data"]["hold_id"] for f in of_type(heard[name], "hold.created")}
        assert stream == rest, name
    assert len({f["data"]["hold_id"] for f in of_type(heard["admin"], "hold.created")}) == 4


# --- Publish after commit -----------------------------------------------------------------------------------


async def test_a_refused_or_rolled_back_change_sends_nothing(live: LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    suite = await live.unit(SUITE)
    client = await live.connect("admin")
    await live.put(f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 1, "status": "open"})
    kept = await place_hold(live)
    # Refused: no place left (409, recorded as unmet demand), and an ineligible person (422).
    unit = {"unit_id": suite.id, "purpose": "s136"}
    refused = await live.post("/api/holds", "amhp", json={**unit, "person": person("LIVE-0002")})
    assert refused.status_code == 409, refused.text
    invalid = await live.post("/api/holds", "amhp", json={**unit, "person": person("LIVE-0003", age=12)})
    assert invalid.status_code == 422, invalid.text
    # Rolled back after its event was recorded: the unit's figures fail to compute, the transaction fails.
    await live.post(f"/api/holds/{kept['id']}/release", "amhp")

    def broken(*args: Any, **kwargs: Any):
        raise RuntimeError("the figures could not be computed")

    monkeypatch.setattr(hold_service, "availability_event", broken)
    failed = await live.post("/api/holds", "amhp", json={**unit, "person": person("LIVE-0004")})
    assert failed.status_code == 500, failed.text
    monkeypatch.undo()

    frames = (await live.barrier(client))[0]
    assert [(f["type"], f["data"].get("hold_id")) for f in frames] == [
        ("unit.availability", None),
        ("hold.created", kept["id"]),
        ("unit.availability", None),
        ("hold.released", kept["id"]),
        ("unit.availability", None),
    ]
    async with live.db.read_sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Hold)) == 1  # the rolled-back one is gone


# --- Time: expiry by the sweep, alerts by the jobs, exactly once from two instances -------------------------


async def test_the_sweep_announces_an_expiry_once_even_from_two_instances(live: LiveServer) -> None:
    suite = await live.unit(SUITE)
    amhp = await live.connect("amhp")
    commissioner = await live.connect("commissioner")
    hold = await place_hold(live)
    other = second_instance(live)
    try:
        live.clock.advance(minutes=59, seconds=59)
        assert (await sweep(live.db)).expired == []
        live.clock.advance(seconds=1)
        results = await asyncio.gather(sweep(live.db), sweep(other))
        assert sorted(r.expired for r in results) == [[], [hold["id"]]]
        assert (await sweep(live.db)).expired == []
    finally:
        await other.dispose()
    heard = await live.barrier(amhp, commissioner)
    assert [f["type"] for f in heard[0]] == ["hold.created", "unit.availability", "hold.expired", "unit.availability"]
    expired = heard[0][2]
    assert expired["data"]["hold_id"] == hold["id"] and expired["data"]["status"] == "expired"
    assert expired["at"].startswith("2026-03-02T10:00:00")
    assert figures_of(heard[0], suite.id) == [(4, 1, 0, 3), (4, 0, 0, 4)]
    assert [f["type"] for f in heard[1]] == ["unit.availability", "unit.availability"]


async def _run_alerts_as_two_instances(live: LiveServer) -> int:
    other = second_instance(live)
    try:
        return sum(await asyncio.gather(send_alerts(live.db), send_alerts(other)))
    finally:
        await other.dispose()


async def _alert_rows(live: LiveServer) -> list[tuple[str, str, str]]:
    async with live.db.read_sessions() as session:
        rows = (await session.execute(select(AlertSent.kind, AlertSent.object_id, AlertSent.key))).all()
    return sorted(tuple(r) for r in rows)


async def test_expiring_holds_and_stale_figures_are_alerted_once_by_two_instances(live: LiveServer) -> None:
    somerset = await live.provider_of("Taunton")
    await live.add_user("taunton_bm", "bed_manager", provider_id=somerset.id)
    names = ("amhp", "bedmanager", "conveyance", "commissioner", "taunton_bm")
    listeners = {name: await live.connect(name) for name in names}
    hold = await place_hold(live)  # expires at 10:00

    live.clock.set(START + timedelta(minutes=49))  # 11 minutes left: not yet
    assert await _run_alerts_as_two_instances(live) == 0
    live.clock.set(START + timedelta(minutes=51))
    assert await _run_alerts_as_two_instances(live) == 1
    assert await _run_alerts_as_two_instances(live) == 0  # and never again for that expiry
    heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))
    for name in ("amhp", "bedmanager", "conveyance"):
        expiring = of_type(heard[name], "hold.expiring")
        assert [(f["data"]["hold_id"], f["data"]["minutes_left"]) for f in expiring] == [(hold["id"], 9.0)], name
    assert of_type(heard["commissioner"] + heard["taunton_bm"], "hold.expiring") == []

    # 136 suites are stale after 4 hours without a confirmation; each unit's own bed managers are told.
    live.clock.set(START + timedelta(hours=4, minutes=1))
    suites = {u: (await live.unit(u)).id for u in (SUITE, "Taunton", "Sandwell")}
    assert await _run_alerts_as_two_instances(live) == 3
    assert await _run_alerts_as_two_instances(live) == 0
    heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))
    stale = {name: [f["data"]["unit_id"] for f in of_type(frames, "unit.stale")] for name, frames in heard.items()}
    assert stale == {
        "amhp": [],
        "bedmanager": [suites[SUITE]],
        "conveyance": [],
        "commissioner": [],
        "taunton_bm": [suites["Taunton"]],
    }
    notice = of_type(heard["bedmanager"], "unit.stale")[0]["data"]
    assert notice["last_confirmed_at"].startswith("2026-03-02T09:00:00") and notice["stale_after_minutes"] == 240
    assert [k for k, _, _ in await _alert_rows(live)] == ["hold.expiring"] + ["unit.stale"] * 3

    # A confirmation re-arms the reminder for the next stale spell. Four hours on, the suite is stale
    # again and the other units (stale after 8 hours) for the first time: each is announced once.
    await live.put(f"/api/units/{suites[SUITE]}/availability", "bedmanager", json={"open_places": 4, "status": "open"})
    live.clock.advance(hours=4, minutes=1)
    awp = await live.provider_of(SUITE)
    async with live.db.read_sessions() as session:
        units = (await session.execute(select(Unit.id, Unit.provider_id, Unit.kind))).all()
    first_spell = [u for u, _, kind in units if kind != "s136_suite" and u != (await live.unit("Devizes")).id]
    assert await _run_alerts_as_two_instances(live) == 1 + len(first_spell)
    assert await _run_alerts_as_two_instances(live) == 0
    heard = await live.barrier(listeners["bedmanager"])
    assert sorted(f["data"]["unit_id"] for f in of_type(heard[0], "unit.stale")) == sorted(
        u for u, provider, _ in units if provider == awp.id
    )
    rows = await _alert_rows(live)
    assert len(rows) == len(set(rows)) == 1 + 3 + 1 + len(first_spell)
    assert_seq_unbroken(listeners["bedmanager"])


async def test_a_sweep_claims_only_the_units_newly_stale(api: Api) -> None:
    """Every 5 s each instance looks for stale units: one already reminded of this stale spell is not
    claimed again (no INSERT per stale unit per sweep, which at a national size held the write lock for
    seconds), and a confirmation re-arms it."""
    api.clock.advance(hours=9)  # every demo unit is stale
    first = await send_alerts(api.db)
    assert first > 3
    statements = Statements(api)
    assert await send_alerts(api.db) == 0
    assert [s for s in statements.sent if s.lstrip().upper().startswith("INSERT")] == []
    suite = await api.unit(SUITE)
    confirmed = await api.put(
        f"/api/units/{suite.id}/availability", "bedmanager", json={"open_places": 4, "status": "open"}
    )
    assert confirmed.status_code == 200, confirmed.text
    api.clock.advance(hours=4, minutes=1)
    assert await send_alerts(api.db) == 1  # the suite's new stale spell only


async def test_s136_warnings_and_breach_are_sent_once_by_two_instances(database_url: str) -> None:
    # Figures never go stale here, so that the only alerts are the s136 clock's.
    async with running(database_url, stale_minutes={kind: 100_000 for kind in KINDS}) as live:
        listeners = {name: await live.connect(name) for name in ("amhp", "bedmanager", "commissioner")}
        hold = await place_hold(live)
        arrived = await live.post(f"/api/holds/{hold['id']}/arrive", "amhp", json={})
        assert arrived.status_code == 201, arrived.text
        placement = arrived.json()
        deadline = START + timedelta(hours=24)
        assert placement["s136_deadline"].startswith("2026-03-03T09:00:00")

        warnings: dict[str, list] = {name: [] for name in listeners}
        for at, expected in [
            (deadline - timedelta(minutes=121), 0),
            (deadline - timedelta(minutes=119), 1),
            (deadline - timedelta(minutes=60), 0),
            (deadline - timedelta(minutes=29), 1),
            (deadline - timedelta(minutes=1), 0),
        ]:
            live.clock.set(at)
            assert await _run_alerts_as_two_instances(live) == expected, at
            heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))
            for name, frames in heard.items():
                warnings[name] += [
                    (f["data"]["threshold_minutes"], f["data"]["minutes_left"]) for f in of_type(frames, "s136.warning")
                ]
        assert warnings["amhp"] == warnings["bedmanager"] == [(120, 119.0), (30, 29.0)]
        assert warnings["commissioner"] == []
        assert [(k, o) for k, o, _ in await _alert_rows(live)] == [("s136.warning", placement["id"])] * 2

        live.clock.set(deadline)
        other = second_instance(live)
        try:
            results = await asyncio.gather(sweep(live.db), sweep(other))
        finally:
            await other.dispose()
        assert sorted(r.breached for r in results) == [[], [placement["id"]]]
        heard = dict(zip(listeners, await live.barrier(*listeners.values()), strict=True))
        for name in ("amhp", "bedmanager"):
            breaches = of_type(heard[name], "s136.breach")
            assert [b["data"]["placement_id"] for b in breaches] == [placement["id"]], name
        assert of_type(heard["commissioner"], "s136.breach") == []
        assert await _run_alerts_as_two_instances(live) == 0  # no warning after the deadline


# --- capacity watch ------------------------------------------------------------------------------------------


def test_watch_prints_london_time_seq_type_and_a_summary() -> None:
    frame = {
        "seq": 7,
        "type": "hold.created",
        "at": "2026-07-01T09:00:00+00:00",
        "data": {
            "hold_id": "0f3c2a9e-aaaa",
            "unit_id": "u1",
            "status": "held",
            "purpose": "s136",
            "expires_at": "2026-07-01T10:00:00+00:00",
            "person": {"ref": "LIVE-0001", "age": 34, "sex": "female", "home_area": BRISTOL},
        },
    }
    line = format_frame(frame, {"u1": "Bristol Place of Safety"})
    assert line.startswith("2026-07-01 10:00:00 BST  #7 ")
    assert "hold.created" in line and "Bristol Place of Safety" in line and "expires 11:00" in line
    assert "LIVE-0001" in line
    assert local_time("2026-01-15T09:00:00+00:00") == "2026-01-15 09:00:00 GMT"
    conveyance = format_frame(
        {
            "seq": 2,
            "type": "conveyance.updated",
            "at": "2026-01-15T09:00:00+00:00",
            "data": {
                "hold_id": "h",
                "unit_id": "u",
                "mode": "ambulance",
                "ambulance_response_minutes": 42.0,
                "ambulance_standard_minutes": 30,
            },
        }
    )
    assert "ambulance response 42.0 min (standard 30)" in conveyance
    assert events_url("https://capacity.example.nhs.uk/") == "wss://capacity.example.nhs.uk/ws/events"
    assert events_url("http://127.0.0.1:8000") == "ws://127.0.0.1:8000/ws/events"


async def test_watch_reconnects_with_a_resync_hint_and_gives_up_after_its_retries(database_url: str) -> None:
    lines: list[str] = []

    async def printed(pattern: str) -> str:
        async with asyncio.timeout(WAIT * 2):
            while True:
                for line in lines:
                    if re.search(pattern, line):
                        lines.remove(line)
                        return line
                await asyncio.sleep(0.02)

    async with running(database_url) as live:
        port, app_settings, clock = live.port, live.app.state.settings, live.clock
        options = WatchOptions(
            url=live.base_url,
            username="amhp",
            password="demo",
            retries=2,
            backoff_seconds=0.05,
            max_backoff_seconds=0.2,
        )
        watching = asyncio.create_task(watch(options, lines.append))
        await printed(r"#1 +hello +connected as amhp \(amhp\)")
        await place_hold(live)
        assert "Bristol Place of Safety" in await printed(r"#2 +hold\.created")
    # The server stops (closing its sockets with 1012): the watcher says so, and that missed events
    # need a resync, and keeps trying.
    assert "resync from GET /api/units" in await printed(r"connection closed \(1012\); reconnecting")
    app = create_app(app_settings, clock=clock)
    async with serve(app, port=port) as live:
        assert "units from GET /api/units" in await printed(r"^resync: 16 units")
        assert await printed(r"Bristol Place of Safety.*: 3 available \(4 open, 1 held, 0 occupied\)")
        await printed(r"#1 +hello")  # a new connection, counted afresh
        await place_hold(live, ref="LIVE-0002")
        await printed(r"#2 +hold\.created")
    async with asyncio.timeout(WAIT * 2):
        assert await watching == 1
    assert "giving up after 2 attempts" in lines[-1]

    with pytest.raises(WatchError, match="wrong username or password"):
        async with running(database_url) as live:
            await watch(WatchOptions(url=live.base_url, username="amhp", password="wrong", retries=0), lines.append)


@pytest.fixture
async def sqlite_live(sqlite_template, tmp_path):
    """One engine is enough for the command line: its server is the same on both."""
    path = tmp_path / "capacity.db"
    shutil.copyfile(sqlite_template, path)
    async with running(f"sqlite+aiosqlite:///{path}") as server:
        yield server


async def test_capacity_watch_command_prints_the_stream_and_stops_cleanly_on_ctrl_c(sqlite_live: LiveServer) -> None:
    live = sqlite_live
    suite = await live.unit(SUITE)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from capacity.cli import main; main()",
        "watch",
        "--url",
        live.base_url,
        "--username",
        "bedmanager",
        "--unit",
        suite.id,
        "--retries",
        "1",
        env={**os.environ, "CAPACITY_WATCH_PASSWORD": "demo", "PYTHONUNBUFFERED": "1"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    lines: list[str] = []

    async def printed(pattern: str) -> str:
        async with asyncio.timeout(WAIT * 4):  # the command's start-up included
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    raise AssertionError(f"output ended before {pattern!r}: {lines}")
                lines.append(raw.decode().rstrip("\n"))
                if re.search(pattern, lines[-1]):
                    return lines[-1]

    try:
        await printed(r"#1 +hello +connected as bedmanager \(bed_manager\)")
        await printed(rf"#2 +subscribed +subscribed to units={suite.id}$")
        hold = await place_hold(live)
        line = await printed(r"hold\.created")
        assert line.startswith("2026-03-02 09:00:00 GMT  #3 ")
        assert hold["id"][:8] in line and "Bristol Place of Safety" in line and "expires 10:00" in line
        line = await printed(r"unit\.availability")
        assert "#4 " in line and "3 available (4 open, 1 held, 0 occupied)" in line
        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(WAIT):
            rest = (await process.stdout.read()).decode()
            assert await process.wait() == 0, rest
        assert "Traceback" not in rest
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
