"""Several server processes: exactly one sweeper among them, handed on when it dies; a graceful stop.

Real processes: the lock holders are separate Python processes killed with SIGKILL, and the server is
`capacity serve --workers 2`, stopped with SIGTERM as an orchestrator stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from support.demo import ENGINES, PG_URL
from support.live_server import free_port
from support.processes import until_answering

REPO = Path(__file__).resolve().parents[1]
# A process that takes the sweeper lock when it can and says so: what each server process does every
# sweep period (capacity.notify.leader).
HOLDER = """
import asyncio, sys
from capacity.db.engine import make_engine
from capacity.notify.leader import sweep_lock

async def main():
    lock = sweep_lock(make_engine(sys.argv[1]))
    print("started", flush=True)
    while True:
        if await lock.held():
            print("held", flush=True)
        await asyncio.sleep(0.1)

asyncio.run(main())
"""


class Holder:
    """A lock-holding process, and the lines it has printed (read by a thread as they come)."""

    def __init__(self, url: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def says(self, wanted: str, within: float) -> bool:
        """Whether the process prints `wanted` within the time."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if wanted in self.lines:
                return True
            time.sleep(0.05)
        return wanted in self.lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(params=ENGINES)
def lock_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'lock.db'}"
    assert PG_URL
    return PG_URL


def test_one_process_sweeps_and_the_next_takes_over_within_a_period_when_it_dies(lock_url: str) -> None:
    first = Holder(lock_url)
    second = None
    try:
        assert first.says("held", 10), f"the first process never took the free lock: {first.lines}"
        second = Holder(lock_url)
        assert second.says("started", 10), second.lines
        # The control: while the first lives, the second never holds the lock (two sweepers would).
        assert not second.says("held", 1.5), "two processes held the sweeper lock at once"
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=10)
        # Handed over within one sweep period (the default is 5 s; these try every 0.1 s).
        assert second.says("held", 5), f"the lock was not handed on after its holder died: {second.lines}"
    finally:
        for one in (first, second):
            if one is not None:
                one.stop()


def test_two_workers_have_one_sweeper_and_sigterm_closes_sockets_1001(tmp_path: Path) -> None:
    database = tmp_path / "workers.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_")}
    env.update(CAPACITY_DATABASE_URL=f"sqlite+aiosqlite:///{database}", CAPACITY_SWEEP_SECONDS="1")
    capacity = shutil.which("capacity", path=str(Path(sys.executable).parent)) or "capacity"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [capacity, "serve", "--demo", "--workers", "2", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a failed test kills the workers too
        )
    try:
        code, running = asyncio.run(_socket_closed_by_sigterm(f"127.0.0.1:{port}", server, log))
        assert code == 1001, log.read_text()
        assert server.wait(timeout=30) == 0, log.read_text()
        # While both ran, one took the lock. (Stopping, the supervisor stops one worker after the other:
        # the one still running may take the lock the first let go of, as it should.)
        assert running.count("this process is the sweeper now") == 1, log.read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)  # the supervisor and any worker still running
        server.wait(timeout=10)


async def _socket_closed_by_sigterm(host: str, server: subprocess.Popen, log: Path) -> tuple[int | None, str]:
    """The close code a live socket gets on SIGTERM, and the log as it was when the signal was sent."""
    async with httpx.AsyncClient(base_url=f"http://{host}", timeout=5) as client:
        await until_answering(client, "/health", server.poll, log.read_text)
        await asyncio.sleep(2)  # a sweep period or two: every worker has tried the lock
        token = (await client.post("/api/auth/token", json={"username": "amhp", "password": "demo"})).json()
        async with connect(f"ws://{host}/ws/events?token={token['access_token']}") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
            running = await asyncio.to_thread(log.read_text)
            server.send_signal(signal.SIGTERM)
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed as closed:
                return (closed.rcvd.code if closed.rcvd else None), running
