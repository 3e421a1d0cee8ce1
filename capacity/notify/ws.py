"""`/ws/events`: the live stream, scoped by role exactly as the REST API is.

Authentication is by token, in `?token=` or as the first message `{"token": "..."}`. A client may
narrow its stream with `{"action": "subscribe", "areas": [...], "providers": [...], "units": [...]}`
and ask `{"action": "ping"}` to get a `pong`. Every frame is `{"seq", "type", "at", "data"}` with `seq`
counting 1, 2, 3... per connection without gaps. No database session lives as long as the socket.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import msgspec
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.security.jwt import Token
from sqlalchemy import select

from capacity.auth.models import User
from capacity.auth.scope import hears
from capacity.auth.security import SESSION_COOKIE, Actor
from capacity.events import PUBLIC_TYPES, Event, decode
from capacity.notify.channels import CHANNEL, BoundedSubscriber

# Close codes a client can act on.
CLOSE_UNAUTHORISED = 4401
CLOSE_TOO_SLOW = 4008  # fell too far behind: reconnect and resync from GET /api/units
FIRST_MESSAGE_SECONDS = 10
PERSON_ROLES = {"admin", "bed_manager", "amhp", "conveyance"}


def visible(actor: Actor, event: Event) -> bool:
    """Whether this caller may hear this event: the REST API's scope (capacity.auth.scope), on the stream."""
    return event.type in PUBLIC_TYPES or hears(
        actor, home_area=event.home_area, provider_id=event.provider_id, unit_area=event.unit_area
    )


@dataclass
class Filter:
    """What the client asked for; empty means everything in its scope."""

    areas: set[str] = field(default_factory=set)
    providers: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)

    def matches(self, event: Event) -> bool:
        if not (self.areas or self.providers or self.units):
            return True
        return (
            bool(self.areas & {event.unit_area, event.home_area})
            or event.provider_id in self.providers
            or event.unit_id in self.units
        )


class SubscribeMessage(msgspec.Struct):
    # Optional, so that the first message may be just {"token": "..."}, as documented.
    action: str = ""
    areas: list[str] = []
    providers: list[str] = []
    units: list[str] = []
    token: str | None = None


async def _actor_for(socket: WebSocket[Any, Any, Any], encoded: str | None) -> Actor:
    if not encoded:
        raise NotAuthorizedException("no token")
    jwt_auth = socket.app.state.jwt_auth
    token = Token.decode(encoded, secret=jwt_auth.token_secret, algorithm=jwt_auth.algorithm)
    async with socket.app.state.db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.id == token.sub, User.active.is_(True)))
    if user is None:
        raise NotAuthorizedException("unknown user")
    return Actor.of(user)


def _body(type_: str, at: str, data: dict[str, Any]) -> str:
    """A frame's JSON without its opening brace and `seq`, which differ per connection."""
    return msgspec.json.encode({"type": type_, "at": at, "data": data}).decode()[1:]


@lru_cache(maxsize=256)
def _prepared(raw: bytes) -> tuple[Event, str]:
    """Decode an event and encode its frame once per instance, not once per connection.

    The channels plugin hands the same `bytes` object to every subscriber, and bytes cache their hash,
    so after the first connection every lookup is a dict hit on an identical key.
    """
    event = decode(raw)
    return event, _body(event.type, event.at.isoformat(), event.data)


class Stream:
    """One connection: numbers the frames it sends and applies the caller's scope and filter."""

    def __init__(self, socket: WebSocket[Any, Any, Any], actor: Actor) -> None:
        self.socket = socket
        self.actor = actor
        self.filter = Filter()
        self.seq = 0
        self.lock = asyncio.Lock()

    async def send(self, type_: str, data: dict[str, Any], at: datetime | None = None) -> None:
        await self.send_body(_body(type_, (at or self.socket.app.state.db.clock.now()).isoformat(), data))

    async def send_body(self, body: str) -> None:
        async with self.lock:  # seq order is send order
            self.seq += 1
            await self.socket.send_text(f'{{"seq":{self.seq},{body}')

    async def forward(self, subscriber: BoundedSubscriber) -> None:
        async for raw in subscriber.iter_events():
            event, body = _prepared(raw)
            if visible(self.actor, event) and self.filter.matches(event):
                await self.send_body(body)

    async def listen(self) -> None:
        while True:
            raw = await self.socket.receive_text()
            try:
                message = msgspec.json.decode(raw, type=SubscribeMessage)
            except msgspec.DecodeError as exc:
                await self.send("error", {"detail": f"not understood: {exc}"})
                continue
            if message.action == "subscribe":
                self.filter = Filter(set(message.areas), set(message.providers), set(message.units))
                await self.send(
                    "subscribed", {"areas": message.areas, "providers": message.providers, "units": message.units}
                )
            elif message.action == "ping":
                await self.send("pong", {})
            else:
                await self.send("error", {"detail": f"unknown action {message.action!r}"})


@websocket("/ws/events", opt={"exclude_from_auth": True})
async def events_socket(socket: WebSocket[Any, Any, Any], channels: NamedDependency[ChannelsPlugin]) -> None:
    await socket.accept()
    # A browser's session cookie, or a token in the query or the first message.
    encoded = socket.query_params.get("token") or socket.cookies.get(SESSION_COOKIE, "").split(" ")[-1]
    try:
        if not encoded:
            first = await asyncio.wait_for(socket.receive_text(), FIRST_MESSAGE_SECONDS)
            encoded = msgspec.json.decode(first, type=SubscribeMessage).token
        actor = await _actor_for(socket, encoded)
    except (NotAuthorizedException, msgspec.DecodeError, TimeoutError):
        await socket.close(code=CLOSE_UNAUTHORISED, reason="a valid token is required")
        return

    stream = Stream(socket, actor)
    subscriber: BoundedSubscriber = await channels.subscribe([CHANNEL])  # type: ignore[assignment]
    await stream.send(
        "hello",
        {"username": actor.username, "role": actor.role, "resync": "GET /api/units is the snapshot after a reconnect"},
    )
    tasks = [
        asyncio.create_task(stream.forward(subscriber)),
        asyncio.create_task(stream.listen()),
        asyncio.create_task(subscriber.overflowed.wait()),
    ]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[2] in done:
            await socket.close(code=CLOSE_TOO_SLOW, reason="too far behind; reconnect and resync")
    except WebSocketDisconnect:
        pass
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        await channels.unsubscribe(subscriber)
