"""A real server for the live-stream tests: uvicorn on a free 127.0.0.1 port, in the test's own event loop.

The app's database engine is then used from one loop only, the test can run the sweep and the alert
jobs on the app's own `Database` (so their events reach the app's channels), and clients talk to it
through real HTTP and a real WebSocket (the `websockets` client). The app's lifespan is off, as in the
`api` fixture: the scheduler does not run, the tests run the jobs by the FixedClock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from litestar import Litestar
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from capacity.auth.models import User, UserArea
from capacity.booking.units.models import Provider
from capacity.db.unit_of_work import UnitOfWork
from support.api import Api

logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request in every failure report
SMALL_BUFFER = 4096
WAIT = 5.0  # seconds: the longest any single expected frame may take to arrive


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_client(base_url: str) -> httpx.AsyncClient:
    # TCP_NODELAY, or a request whose body follows its headers waits out a delayed ACK (~40 ms).
    transport = httpx.AsyncHTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
    return httpx.AsyncClient(base_url=base_url, timeout=WAIT * 2, transport=transport)


class Client:
    """One WebSocket connection to /ws/events, keeping every frame it has read."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict] = []

    async def send(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def next(self, within: float = WAIT) -> dict:
        frame = json.loads(await asyncio.wait_for(self.ws.recv(), within))
        self.frames.append(frame)
        return frame

    async def until(self, predicate: Callable[[dict], bool], within: float = WAIT) -> list[dict]:
        """Read frames until one matches; return those read, the match last."""
        deadline = asyncio.get_running_loop().time() + within
        read: list[dict] = []
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"no matching frame within {within}s; read {read}")
            try:
                frame = await self.next(left)
            except TimeoutError:
                raise AssertionError(f"no matching frame within {within}s; read {read}") from None
            read.append(frame)
            if predicate(frame):
                return read

    async def quiet(self, seconds: float = 0.2) -> list[dict]:
        """Frames that arrive within a short window (for asserting nothing more comes)."""
        read: list[dict] = []
        try:
            while True:
                read.append(await self.next(seconds))
        except TimeoutError:
            return read

    async def close_code(self, within: float = WAIT) -> int | None:
        """Read until the server closes the connection; its close code."""
        try:
            async with asyncio.timeout(within):
                while True:
                    await self.next(within)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd else None
        raise AssertionError("the connection stayed open")


class LiveServer(Api):
    """A running app: HTTP as any demo or test user, WebSocket clients, and the app's own objects."""

    def __init__(self, app: Litestar, port: int) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/ws/events"
        super().__init__(http_client(self.base_url), app, app.state.clock)
        self.clients: list[Client] = []
        self._barriers = 0

    async def provider_of(self, unit_name: str) -> Provider:
        unit = await self.unit(unit_name)
        async with self.db.read_sessions() as session:
            return await session.get(Provider, unit.provider_id)

    async def add_user(
        self, username: str, role: str, *, provider_id: str | None = None, areas: tuple[str, ...] = ()
    ) -> None:
        """A user who cannot log in with a password (tests use `token`); argon2 hashing is slow."""

        async def work(uow: UnitOfWork) -> None:
            uow.session.add(
                User(
                    username=username,
                    password_hash="!no-password",
                    role=role,
                    provider_id=provider_id,
                    created_at=self.clock.now(),
                    area_links=[UserArea(area_code=a) for a in areas],
                )
            )

        await self.db.write(work)

    async def connect(
        self, as_: str | None = None, *, token: str | None = None, via: str = "query", hello: bool = True, **kwargs: Any
    ) -> Client:
        """A WebSocket client, authenticated by `?token=` or by the first message; waits for `hello`."""
        token = token if token is not None else (await self.token(as_) if as_ else None)
        url = f"{self.ws_url}?token={token}" if token is not None and via == "query" else self.ws_url
        # No compression: frames on the wire are then as large as the events, as a browser's may be.
        ws = await connect(url, open_timeout=WAIT, close_timeout=1, compression=None, **kwargs)
        client = Client(ws)
        self.clients.append(client)
        if via == "message" and token is not None:
            await client.send({"token": token})
        if hello:
            first = await client.next()
            assert (first["seq"], first["type"]) == (1, "hello"), first
        return client

    async def barrier(self, *clients: Client, unit_name: str = "Devizes") -> list[list[dict]]:
        """Make one more event and read each client up to it: everything published before has arrived.

        Events travel one ordered path (publish queue, backend, subscriber queue), so a frame for a
        declaration made now comes after every frame for what was committed earlier.
        """
        self._barriers += 1
        marker = 100 + self._barriers
        unit = await self.unit(unit_name)
        response = await self.put(
            f"/api/units/{unit.id}/availability", "admin", json={"open_places": marker, "status": "open"}
        )
        assert response.status_code == 200, response.text

        def is_marker(frame: dict) -> bool:
            data = frame.get("data", {})
            return (
                frame["type"] == "unit.availability"
                and data.get("unit_id") == unit.id
                and data.get("open_places") == marker
            )

        return [(await c.until(is_marker))[:-1] for c in clients]

    async def close(self) -> None:
        for client in self.clients:
            await client.ws.close()
        await self.client.aclose()


class SmallBufferWebSocket(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol with a 4 KiB write buffer instead of 64 KiB."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        transport.set_write_buffer_limits(high=SMALL_BUFFER)


@asynccontextmanager
async def serve(
    app: Litestar, *, small_buffers: bool = False, port: int = 0, log_level: str = "warning"
) -> AsyncIterator[LiveServer]:
    """Serve `app` on a free port in this event loop until the block ends.

    `small_buffers` shrinks what a connection may buffer on its way out (uvicorn's write buffer, and
    the kernel's send buffer, which Linux copies from the listening socket to each accepted one), so
    that a client that stops reading holds the server up after a few kilobytes rather than after
    megabytes of loopback buffering. That is what a slow client does to a server, only sooner.
    """
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say so, and without it every
    # response waits out a delayed ACK (about 40 ms a request on loopback).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if small_buffers:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_level=log_level,
        # As `capacity serve` runs it: X-Forwarded-For is the app's to judge (CAPACITY_TRUSTED_PROXIES).
        proxy_headers=False,
        timeout_graceful_shutdown=2,
        ws=SmallBufferWebSocket if small_buffers else "auto",
    )
    server = uvicorn.Server(config)
    channels = app.state.channels
    await channels.__aenter__()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    live = LiveServer(app, port)
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield live
    finally:
        try:
            await live.close()
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            await app.state.hub.stop()  # the app's shutdown hook, which this lifespan-less server does not run
            # Bounded: a publisher that has died would otherwise leave this waiting for ever.
            await asyncio.wait_for(channels.__aexit__(None, None, None), 10)
        finally:
            sock.close()
            await app.state.db.dispose()
