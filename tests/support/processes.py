"""Child processes of a test's own (a server, a redis-server), each stopped by its own pid only, the wait
for a server to answer, and a redis-server on a free port that the test may stop and start again."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import httpx

from support.live_server import free_port

REDIS_SERVER = shutil.which("redis-server")


def _log_file(path: Path) -> BinaryIO:
    return open(path, "wb")  # a local file, opened once before the child starts


def uvicorn_command(factory: str, port: int, *options: str) -> list[str]:
    """The command that serves the app `factory` makes on 127.0.0.1:`port` under uvicorn, logging warnings only."""
    where = ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [sys.executable, "-m", "uvicorn", "--factory", factory, *where, *options]


async def stop_process(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM, within: float = 10) -> None:
    """Send `sig` to the process if it still runs, and kill it if it outstays `within` seconds."""
    if process.returncode is None:
        process.send_signal(sig)
        try:
            async with asyncio.timeout(within):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


async def until_answering(
    client: httpx.AsyncClient,
    path: str,
    returncode: Callable[[], int | None],
    log: Callable[[], str],
    seconds: float = 60,
) -> None:
    """Ask for `path` until the server answers 200; fail, with its log, once it has exited (`returncode` is its
    process's, None while it runs) or after `seconds`."""
    try:
        async with asyncio.timeout(seconds):
            while returncode() is None:
                try:
                    if (await client.get(path)).status_code == 200:
                        return
                except httpx.TransportError:
                    pass  # not listening yet
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"the server did not answer {path} within {seconds} s:\n{log()}") from None
    raise AssertionError(f"the server exited:\n{log()}")


class Process:
    """A child process with its output in a file, stopped by its own pid only."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process, self.log = process, log

    @classmethod
    async def start(cls, args: list[str], log: Path, env: dict[str, str] | None = None) -> Process:
        with _log_file(log) as out:
            process = await asyncio.create_subprocess_exec(
                *args, env={**os.environ, **(env or {})}, stdout=out, stderr=asyncio.subprocess.STDOUT
            )
        return cls(process, log)

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        await stop_process(self.process, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


async def until_listening(port: int, process: Process, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while True:
            assert process.process.returncode is None, f"exited early:\n{process.output()}"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                await asyncio.sleep(0.05)


Restart = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


@asynccontextmanager
async def own_redis(tmp_path: Path) -> AsyncIterator[tuple[int, Restart]]:
    """A redis-server of the test's own on a free port (never the shared one), stopped when the block ends
    however it ends; yields the port and (start, stop) to take it away and bring it back."""
    assert REDIS_SERVER, "redis-server is not installed"
    port = free_port()
    state: dict[str, Process] = {}

    async def start() -> None:
        state["p"] = await Process.start(
            [
                REDIS_SERVER,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
            ],
            tmp_path / f"redis-{port}.log",
        )
        await until_listening(port, state["p"], 10)

    async def stop() -> None:
        await state["p"].stop()

    await start()
    try:
        yield port, (start, stop)
    finally:
        await stop()
