"""compose.yaml's processes run as a whole without containers (deploy/run-without-containers), used through
the proxy as a person would: ready, logged in, a hold made, both replicas serving, a WebSocket through the
proxy hearing the event; then everything stopped.

Needs the PostgreSQL server binaries, redis-server and nginx (Debian's; .ci/run installs nginx); skipped
with the reason where one is absent, except in CI.
"""

from __future__ import annotations

import asyncio
import glob
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from capacity.settings import Settings
from support.compose import ROOT, RUNNER, runner
from support.demo import load_demo
from support.live_server import http_client
from support.metrics import sample

MISSING = [
    what
    for what, found in (
        ("the PostgreSQL server binaries (/usr/lib/postgresql/*/bin)", glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        ("redis-server", shutil.which("redis-server")),
        ("nginx (apt-get install -y nginx)", shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")),
    )
    if not found
]
if MISSING and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI must run the compose processes: missing {', '.join(MISSING)}")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"missing {', '.join(MISSING)}")

SUITE = "Bristol Place of Safety"
BRISTOL = "E06000023"


def test_the_proxy_config_differs_from_compose_only_in_its_docker_lines() -> None:
    original = (ROOT / "deploy" / "nginx.conf").read_text()
    local = runner().proxy_config(original, "app:8000", [5001, 5002], 8080)
    removed = set(original.splitlines()) - set(local.splitlines())
    added = set(local.splitlines()) - set(original.splitlines())
    assert {line.strip() for line in removed} == {
        "resolver 127.0.0.11 valid=10s ipv6=off;",
        "server app:8000 resolve max_fails=3 fail_timeout=10s;",
        "listen 80;",
    }
    assert {line.strip() for line in added} == {
        "server 127.0.0.1:5001 max_fails=3 fail_timeout=10s;",
        "server 127.0.0.1:5002 max_fails=3 fail_timeout=10s;",
        "listen 127.0.0.1:8080;",
    }


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


def exists(path: str) -> bool:
    return Path(path).exists()


async def read_ready(process: asyncio.subprocess.Process, log: Path) -> dict:
    assert process.stdout is not None
    async with asyncio.timeout(120):
        while True:
            line = await process.stdout.readline()
            if not line:
                await process.wait()
                raise AssertionError(f"the script exited ({process.returncode}):\n{tail(log)}")
            if line.startswith(b"{"):
                info = json.loads(line)
                assert info["ready"] is True
                return info


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_compose_processes_without_containers_serve_through_the_proxy(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_")}
    env.update(POSTGRES_PASSWORD=secrets.token_urlsafe(16), CAPACITY_SECRET_KEY=secrets.token_urlsafe(40))
    log = tmp_path / "run-without-containers.log"
    with log.open("wb") as err:
        script = await asyncio.create_subprocess_exec(
            sys.executable,
            str(RUNNER),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,  # its process group: everything it starts, for the last-resort cleanup
        )
    info: dict = {}
    try:
        info = await read_ready(script, log)
        compose = runner().load_compose()
        app = compose["services"]["app"]
        replicas = info["app"]
        assert len(replicas) == app["deploy"]["replicas"] == 2
        # Exactly compose's startup command (migrate, then serve), only on a loopback port of its own.
        startup = runner().startup_command(app).split()
        for replica in replicas:
            command = [Path(replica["command"][0]).name, *replica["command"][1:]]
            port = replica["url"].rsplit(":", 1)[1]
            assert command == [*startup[:-1], "127.0.0.1", "--port", port], command
        database_url = info["environment"]["CAPACITY_DATABASE_URL"]
        assert database_url.endswith(f"@127.0.0.1:{info['services']['postgres']['port']}/capacity")
        assert env["POSTGRES_PASSWORD"] in database_url, "the app reaches PostgreSQL with compose's password"
        assert info["environment"]["CAPACITY_REDIS_URL"] == f"redis://127.0.0.1:{info['services']['redis']['port']}/0"
        await load_demo(database_url)  # the replicas migrated it; demo users to log in as

        proxy = info["url"]
        async with http_client(proxy) as client:
            ready = await client.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert ready.json()["checks"] == {"database": "ok", "schema": "ok", "redis": "ok"}
            assert (await client.get("/metrics")).status_code == 404, "metrics never through the public door"
            tokens = {}
            for user in ("amhp", "bedmanager"):
                login = await client.post("/api/auth/token", json={"username": user, "password": "demo"})
                assert login.status_code in (200, 201), login.text
                tokens[user] = login.json()["access_token"]
            amhp = {"Authorization": f"Bearer {tokens['amhp']}"}
            # The replicas' search read models were loaded before the demo data, which went straight into the
            # database with no event: each finds it at its next reconcile. Several answers in a row that list
            # the suite, so that both replicas (the proxy takes turns) have it.
            deadline = time.monotonic() + Settings.read_model_reconcile_seconds + 15
            found, in_a_row = [], 0
            while in_a_row < 4:
                units = await client.get("/api/units", headers=amhp)
                assert units.status_code == 200, units.text
                found = [u["id"] for u in units.json() if u["name"].startswith(SUITE)]
                in_a_row = in_a_row + 1 if found else 0
                if not found:
                    assert time.monotonic() < deadline, "a replica's search never found the demo's units"
                    await asyncio.sleep(0.5)
            (suite,) = found
            for _ in range(6):
                assert (await client.get(f"/api/units/{suite}", headers=amhp)).status_code == 200

            # Two sockets through the proxy (round robin: one on each replica), then a hold through it.
            sockets = [
                await connect(f"{proxy.replace('http', 'ws', 1)}/ws/events?token={tokens['bedmanager']}")
                for _ in range(2)
            ]
            try:
                for ws in sockets:
                    assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"
                made = await client.post(
                    "/api/holds",
                    headers=amhp,
                    json={
                        "unit_id": suite,
                        "purpose": "s136",
                        "person": {"ref": "COMPOSE-1", "age": 30, "sex": "male", "home_area": BRISTOL},
                    },
                )
                assert made.status_code == 201, made.text
                assert len(made.headers["X-Request-ID"]) == 32, "nginx's $request_id, kept by the replica"
                for ws in sockets:
                    async with asyncio.timeout(10):
                        while True:
                            frame = json.loads(await ws.recv())
                            if frame["type"] == "hold.created":
                                assert frame["data"]["hold_id"] == made.json()["id"]
                                break
            finally:
                for ws in sockets:
                    await ws.close()

        # Both replicas served (each one's own metrics, read on its loopback port as Prometheus would).
        for replica in replicas:
            async with http_client(replica["url"]) as direct:
                exposition = (await direct.get("/metrics")).text
            served = sample(exposition, "capacity_http_requests_total", route="/api/units/{unit_id}", status="200")
            assert served > 0, f"{replica['name']} served nothing through the proxy"
            assert sample(exposition, "capacity_http_requests_total", status="500") == 0

        # SIGTERM stops everything it started, and its directory goes.
        script.send_signal(signal.SIGTERM)
        async with asyncio.timeout(90):
            assert await script.wait() == 0, tail(log)
        pids = [info["pid"], *(s["pid"] for s in info["services"].values()), *(r["pid"] for r in replicas)]
        assert [pid for pid in pids if alive(pid)] == []
        assert not exists(info["workdir"])
    finally:
        if script.returncode is None:
            script.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(60):
                    await script.wait()
            except TimeoutError:
                os.killpg(script.pid, signal.SIGKILL)  # its own process group, made for it above
                await script.wait()
        if info.get("workdir"):
            shutil.rmtree(info["workdir"], ignore_errors=True)
