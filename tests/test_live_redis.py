"""Several instances through Redis, and an instance that outlives a Redis outage (issue 4).

Needs CAPACITY_TEST_DATABASE_URL (PostgreSQL: separate processes share it) and CAPACITY_TEST_REDIS_URL;
skipped without them, except in CI, where their absence is an error. The outage tests start their own
redis-server on a free port and stop only that one, never the shared Redis.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from litestar.security.jwt import Token
from sqlalchemy import func, select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from capacity.app import create_app
from capacity.auth.models import User
from capacity.booking.units.models import Unit
from capacity.clock import FixedClock
from capacity.db.engine import Database
from capacity.notify.alerts import AlertSent, send_alerts
from capacity.notify.channels import Bus, make_channels, make_publisher
from support.demo import START
from support.live_server import WAIT, Client, LiveServer, free_port, http_client, serve
from support.processes import Process, own_redis, until_answering
from support.settings import settings_for

PG_URL = os.environ.get("CAPACITY_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("CAPACITY_TEST_REDIS_URL")
if not (PG_URL and REDIS_URL):
    if os.environ.get("CI") == "true":
        raise RuntimeError(
            "CI must run the cross-instance tests: set CAPACITY_TEST_DATABASE_URL and CAPACITY_TEST_REDIS_URL"
        )
    pytest.skip("needs CAPACITY_TEST_DATABASE_URL and CAPACITY_TEST_REDIS_URL", allow_module_level=True)

SECRET = settings_for("sqlite+aiosqlite://").secret_key
SUITE = "Bristol Place of Safety"
MARKED = "Callington Road"  # a unit the bed manager sees: the barrier's events are about it
BRISTOL = "E06000023"


def person(ref: str) -> dict:
    return {"ref": ref, "age": 34, "sex": "female", "ethnicity": "A", "home_area": BRISTOL}


async def until_healthy(base_url: str, process: Process) -> None:
    async with http_client(base_url) as client:  # a minute: it migrates and imports argon2 first
        await until_answering(client, "/health", lambda: process.process.returncode, process.output)


def token_for(user_id: str) -> str:
    """A token as the servers issue them, signed with the deployment's shared key."""
    return Token(exp=datetime.now(UTC) + timedelta(hours=1), sub=user_id).encode(SECRET, "HS256")


async def user_ids(database_url: str) -> dict[str, str]:
    db = Database(settings_for(database_url))
    try:
        async with db.read_sessions() as session:
            return dict((await session.execute(select(User.username, User.id))).all())
    finally:
        await db.dispose()


async def unit_id(database_url: str, name_start: str) -> str:
    db = Database(settings_for(database_url))
    try:
        async with db.read_sessions() as session:
            return await session.scalar(select(Unit.id).where(Unit.name.startswith(name_start)))
    finally:
        await db.dispose()


async def alerts_recorded(database_url: str) -> int:
    db = Database(settings_for(database_url))
    try:
        async with db.read_sessions() as session:
            return await session.scalar(select(func.count()).select_from(AlertSent))
    finally:
        await db.dispose()


@asynccontextmanager
async def job_database(database_url: str, redis_url: str, clock: FixedClock) -> AsyncIterator[Database]:
    """A `Database` that publishes through Redis as an instance's does (`create_app`): what a job runs on."""
    settings = settings_for(database_url, redis_url=redis_url)
    db = Database(settings, clock)
    channels = make_channels(settings, Bus())
    db.publish = make_publisher(channels)
    try:
        async with channels:  # on leaving, every event published is in Redis
            yield db
    finally:
        await db.dispose()
        await channels._backend._redis.aclose()  # the Redis client make_channels made for this plugin


async def ws_client(base_url: str, token: str) -> Client:
    client = Client(
        await connect(
            base_url.replace("http", "ws", 1) + "/ws/events", open_timeout=WAIT, close_timeout=1, compression=None
        )
    )
    await client.send({"token": token})
    assert (await client.next())["type"] == "hello"
    return client


@asynccontextmanager
async def instances(database_url: str, redis_url: str, tmp_path: Path, count: int) -> AsyncIterator[list[str]]:
    """`capacity serve`, `count` times: instances of one deployment sharing a database, Redis and a key."""
    env = {
        "CAPACITY_DATABASE_URL": database_url,
        "CAPACITY_REDIS_URL": redis_url,
        "CAPACITY_SECRET_KEY": SECRET,
        # The scheduler is, in effect, off (its first run is a year away): the tests run the jobs by a clock.
        "CAPACITY_SWEEP_SECONDS": str(365 * 24 * 3600),
        "PYTHONUNBUFFERED": "1",
    }
    servers: list[tuple[Process, str]] = []
    try:
        for i in range(count):
            port = free_port()
            command = [
                sys.executable,
                "-c",
                "from capacity.cli import main; main()",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            servers.append(
                (await Process.start(command, tmp_path / f"instance{i}.log", env), f"http://127.0.0.1:{port}")
            )
        for process, url in servers:
            await until_healthy(url, process)
        yield [url for _, url in servers]
    finally:
        for process, _ in servers:
            await process.stop()


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_an_event_made_on_one_instance_reaches_clients_of_every_instance(
    database_url: str, tmp_path: Path
) -> None:
    users = await user_ids(database_url)
    suite = await unit_id(database_url, SUITE)
    async with instances(database_url, REDIS_URL, tmp_path, 2) as (a, b):
        # The bed manager watches on B and on A; the AMHP acts on A, then on B.
        on_b = await ws_client(b, token_for(users["bedmanager"]))
        on_a = await ws_client(a, token_for(users["bedmanager"]))
        amhp = {"Authorization": f"Bearer {token_for(users['amhp'])}"}
        made: list[dict] = []
        async with http_client(a) as http_a, http_client(b) as http_b:
            for http, ref in ((http_a, "LIVE-A"), (http_b, "LIVE-B")):
                response = await http.post(
                    "/api/holds", headers=amhp, json={"unit_id": suite, "purpose": "s136", "person": person(ref)}
                )
                assert response.status_code == 201, response.text
                made.append(response.json())
            holds = [h["id"] for h in made]
            for client in (on_a, on_b):
                for hold_id in holds:
                    await client.until(lambda f, h=hold_id: f["type"] == "hold.created" and f["data"]["hold_id"] == h)

            # The alert job, as each instance's scheduler runs it, twice at once on two Databases, at an
            # instant when both holds are inside the expiring window: each alert is claimed, and sent, once.
            window = timedelta(minutes=settings_for(database_url).hold_expiring_minutes)
            expiries = [datetime.fromisoformat(h["expires_at"]) for h in made]
            clock = FixedClock(max(expiries) - window / 2)
            assert all(clock.now() < e <= clock.now() + window for e in expiries)
            before = await alerts_recorded(database_url)
            async with (
                job_database(database_url, REDIS_URL, clock) as one,
                job_database(database_url, REDIS_URL, clock) as other,
            ):
                sent = await asyncio.gather(send_alerts(one), send_alerts(other))
                again = await asyncio.gather(send_alerts(one), send_alerts(other))
            assert sum(sent) == await alerts_recorded(database_url) - before
            assert sum(sent) >= len(holds)
            assert again == [0, 0]

            # Every event of the jobs is in Redis; one made now, on A, reaches each client after them all.
            marked = await unit_id(database_url, MARKED)
            response = await http_a.put(
                f"/api/units/{marked}/availability",
                headers={"Authorization": f"Bearer {token_for(users['admin'])}"},
                json={"open_places": 101, "status": "open"},
            )
            assert response.status_code == 200, response.text
            for client in (on_a, on_b):
                await client.until(
                    lambda f: (
                        f["type"] == "unit.availability"
                        and f["data"].get("unit_id") == marked
                        and f["data"].get("open_places") == 101
                    )
                )
                expiring = [f["data"]["hold_id"] for f in client.frames if f["type"] == "hold.expiring"]
                assert sorted(expiring) == sorted(holds), expiring
                seqs = [f["seq"] for f in client.frames]
                assert seqs == list(range(1, len(seqs) + 1))
        for client in (on_a, on_b):
            await client.ws.close()


async def hold(live: LiveServer, ref: str) -> dict:
    unit = await live.unit(SUITE)
    response = await live.post(
        "/api/holds", "amhp", json={"unit_id": unit.id, "purpose": "s136", "person": person(ref)}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_without_redis_sockets_are_told_1013_rest_goes_on_and_live_updates_return_by_themselves(
    database_url: str, tmp_path: Path
) -> None:
    """With its bus down an instance cannot know what other instances change: an open socket is closed
    1013 (try again later) rather than left showing stale figures as live, a new one is refused 1013,
    bookings and the REST snapshot go on, and once Redis is back new sockets hear every event."""
    async with own_redis(tmp_path) as (port, (start_redis, stop_redis)):
        settings = settings_for(database_url, redis_url=f"redis://127.0.0.1:{port}/0")
        async with serve(create_app(settings, clock=FixedClock(START))) as live:
            client = await live.connect("amhp")
            first = await hold(live, "LIVE-0001")
            await client.until(lambda f: f["type"] == "hold.created" and f["data"]["hold_id"] == first["id"])

            await stop_redis()
            assert await client.close_code(within=10) == 1013
            refused = await live.connect("amhp", hello=False)  # the bus is known to be down: refused
            assert await refused.close_code() == 1013
            # Without Redis: bookings go on and the snapshot is right.
            second = await hold(live, "LIVE-0002")
            suite = (await live.get(f"/api/units/{second['unit_id']}", "amhp")).json()
            assert (suite["held"], suite["available"]) == (2, 2)

            await start_redis()
            # Live updates come back by themselves: a client that reconnects is accepted, and hears.
            async with asyncio.timeout(15):
                while True:
                    again = await live.connect("amhp", hello=False)
                    try:
                        if (await again.next())["type"] == "hello":
                            break
                    except ConnectionClosed:  # 1013 while the subscription is not yet back
                        await asyncio.sleep(0.2)
            third = await hold(live, "LIVE-0003")
            frames = await again.until(lambda f: f["type"] == "unit.availability" and f["data"]["held"] == 3)
            assert [(f["type"], f["data"].get("hold_id")) for f in frames][-2:] == [
                ("hold.created", third["id"]),
                ("unit.availability", None),
            ]


async def test_deployments_on_other_redis_databases_hear_nothing_of_each_other(
    database_url: str, tmp_path: Path
) -> None:
    """Redis pub/sub ignores database numbers; two deployments sharing one server must not cross."""
    async with own_redis(tmp_path) as (port, _):
        apps = [
            create_app(settings_for(database_url, redis_url=f"redis://127.0.0.1:{port}/{db}"), clock=FixedClock(START))
            for db in (1, 2)
        ]
        async with serve(apps[0]) as one, serve(apps[1]) as other:
            here, there = await one.connect("admin"), await other.connect("admin")
            made = await hold(one, "LIVE-0001")
            await here.until(lambda f: f["type"] == "hold.created" and f["data"]["hold_id"] == made["id"])
            # `there` reads up to an event of its own deployment, published after `made` had gone round.
            heard = (await other.barrier(there))[0]
            assert heard == [], json.dumps(heard)[:500]
