"""No double booking under concurrency: many holds at once for the last few places (ARCHITECTURE rule 8).

Every request is a real HTTP request to the app, with its own session and its own committed
transaction. The burst runs in one process (through the ASGI transport), and across two real uvicorn
processes sharing one database. That these tests can see the race they guard against is shown by
tests/test_races.py, whose controls force the interleaving (rather than hoping a burst hits it) and
overbook once the locks are switched off.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from capacity.booking.holds.models import Hold
from capacity.booking.units.models import UnmetDemand
from capacity.db.engine import Database
from support.api import Api, assert_problem
from support.processes import until_answering, uvicorn_command
from support.settings import settings_for as make_settings

BRISTOL = "E06000023"
SUITE = "Bristol Place of Safety"  # run by the bed manager's provider; takes people from 16
PLACES = 3
BURST = 50
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # Enough patience that no request in the burst gives up with 503: every answer is 201 or 409.
    return {"write_attempts": 50, "lock_timeout_ms": 30_000}


def hold_body(unit_id: str, i: int) -> dict:
    return {
        "unit_id": unit_id,
        "purpose": "s136",
        "person": {"ref": f"BURST-{i:03d}", "age": 30 + i % 40, "sex": "male", "home_area": BRISTOL},
    }


async def live_holds(db: Database, unit_id: str, now) -> int:
    async with db.read_sessions() as session:
        return await session.scalar(
            select(func.count(Hold.id)).where(Hold.unit_id == unit_id, Hold.status == "held", Hold.expires_at > now)
        )


async def unmet_demand(db: Database, unit_id: str) -> int:
    async with db.read_sessions() as session:
        return await session.scalar(select(func.count(UnmetDemand.id)).where(UnmetDemand.unit_id == unit_id))


async def burst(api: Api, unit_id: str, n: int = BURST) -> list[httpx.Response]:
    await api.headers("amhp")  # one token, made before the burst
    return list(await asyncio.gather(*(api.post("/api/holds", "amhp", json=hold_body(unit_id, i)) for i in range(n))))


async def open_places(api: Api, unit_id: str, places: int) -> None:
    response = await api.put(
        f"/api/units/{unit_id}/availability", "bedmanager", json={"open_places": places, "status": "open"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["available"] == places


async def test_a_burst_of_holds_takes_exactly_the_open_places(api: Api) -> None:
    unit = await api.unit(SUITE)
    await open_places(api, unit.id, PLACES)

    responses = await burst(api, unit.id)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: PLACES, 409: BURST - PLACES}, statuses
    for r in responses:
        if r.status_code == 409:
            assert_problem(r, 409, "unit_id")
    created = [r.json() for r in responses if r.status_code == 201]
    assert len({h["id"] for h in created}) == PLACES
    assert all(h["status"] == "held" and h["unit_id"] == unit.id for h in created)
    assert await live_holds(api.db, unit.id, api.clock.now()) == PLACES
    # Every refusal is recorded as unmet demand; nothing is lost or doubled by the queueing.
    assert await unmet_demand(api.db, unit.id) == BURST - PLACES
    got = (await api.get(f"/api/units/{unit.id}", "amhp")).json()
    assert (got["open_places"], got["held"], got["occupied"], got["available"]) == (PLACES, PLACES, 0, 0)


# --- Two app processes sharing one database ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(url: str, port: int, log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_")}
    env.update(CAPACITY_DATABASE_URL=url, CAPACITY_SECRET_KEY="two-process-test-key-" + "y" * 32)
    with log.open("wb") as out:
        return subprocess.Popen(
            uvicorn_command("capacity.app:create_app", port, "--no-access-log"),
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def login(client: httpx.AsyncClient, base: str, username: str) -> dict[str, str]:
    response = await client.post(f"{base}/api/auth/token", json={"username": username, "password": "demo"})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def stop(procs: list[subprocess.Popen]) -> None:
    """Ask every server to stop, then wait for each; kill any that outstays 10 seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_a_burst_across_two_app_processes_takes_exactly_the_open_places(database_url: str, tmp_path: Path) -> None:
    """The two processes share the test's database (a file, on SQLite)."""
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"server-{p}.log" for p in ports]
    procs: list[subprocess.Popen] = []
    try:
        for port, log in zip(ports, logs, strict=True):
            procs.append(start_server(database_url, port, log))
        # The test's own loop, apart from the servers' processes: only HTTP joins them.
        asyncio.run(_two_processes(database_url, procs, ports, logs))
    finally:
        stop(procs)


async def _two_processes(url: str, procs: list[subprocess.Popen], ports: list[int], logs: list[Path]) -> None:
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    async with httpx.AsyncClient(timeout=httpx.Timeout(60), limits=limits) as client:
        for base, proc, log in zip(bases, procs, logs, strict=True):
            await until_answering(client, f"{base}/health", proc.poll, log.read_text, seconds=30)
        amhp = [await login(client, base, "amhp") for base in bases]
        manager = await login(client, bases[0], "bedmanager")
        units = (await client.get(f"{bases[0]}/api/units", headers=manager)).json()
        unit_id = next(u["id"] for u in units if u["name"].startswith(SUITE))
        declared = await client.put(
            f"{bases[0]}/api/units/{unit_id}/availability",
            headers=manager,
            json={"open_places": PLACES, "status": "open"},
        )
        assert declared.status_code == 200, declared.text

        async def hold(i: int) -> httpx.Response:
            # The servers run with the default retry budget; a 503 "busy, retry" is answered as a client
            # must answer it, by trying again after Retry-After. Only 201 and 409 are final.
            for _ in range(20):
                response = await client.post(
                    f"{bases[i % 2]}/api/holds", headers=amhp[i % 2], json=hold_body(unit_id, i)
                )
                if response.status_code != 503:
                    return response
                await asyncio.sleep(float(response.headers.get("Retry-After", 1)))
            return response

        responses = await asyncio.wait_for(asyncio.gather(*(hold(i) for i in range(BURST))), timeout=120)

        statuses = Counter(r.status_code for r in responses)
        assert statuses == {201: PLACES, 409: BURST - PLACES}, (
            statuses,
            [r.text for r in responses if r.status_code not in (201, 409)][:3],
        )
        # Both instances answered, and both agree on what is left.
        by_server = Counter((i % 2, r.status_code) for i, r in enumerate(responses))
        assert by_server[(0, 201)] + by_server[(0, 409)] == by_server[(1, 201)] + by_server[(1, 409)] == BURST // 2
        for base, headers in zip(bases, amhp, strict=True):
            got = (await client.get(f"{base}/api/units/{unit_id}", headers=headers)).json()
            assert (got["held"], got["available"]) == (PLACES, 0), got
    db = Database(make_settings(url))
    try:
        async with db.read_sessions() as session:
            stored = await session.scalar(
                select(func.count(Hold.id)).where(Hold.unit_id == unit_id, Hold.status == "held")
            )
        assert stored == PLACES
        assert await unmet_demand(db, unit_id) == BURST - PLACES
    finally:
        await db.dispose()
