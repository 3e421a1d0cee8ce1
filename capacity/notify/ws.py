"""`/ws/events`: the live stream, scoped by role exactly as the REST API is.

Authentication is by token, in `?token=` or as the first message `{"token": "..."}`. A client may
narrow its stream with `{"action": "subscribe", "areas": [...], "providers": [...], "units": [...]}`
(at most `MAX_CODES` codes in each list, each at most 64 characters: a longer one is answered with an
`error` frame `{"status": 422, "field", "detail"}` and changes nothing) and ask `{"action": "ping"}` to
get a `pong`. Every frame is `{"seq", "type", "at", "data"}` with `seq` counting 1, 2, 3... per
connection without gaps. No database session lives as long as the socket.

A message over 64 KB closes the socket with 1009. Every few seconds each instance re-checks the tokens
of all its sockets at once (`SocketWatch`): a token revoked, expired, or whose user was deactivated or
given another role, provider or areas, closes its socket with 4401.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

import msgspec
from litestar import WebSocket, websocket
from litestar.channels import ChannelsPlugin
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from msgspec import Meta
from sqlalchemy import select

from capacity.auth.models import User, UserArea
from capacity.auth.revocation import Presented
from capacity.auth.scope import hears
from capacity.auth.security import SESSION_COOKIE, Actor
from capacity.errors import database_fault
from capacity.events import PUBLIC_TYPES, Event, decode
from capacity.notify.channels import CHANNEL, BoundedSubscriber, Bus

# Close codes a client can act on.
CLOSE_UNAUTHORISED = 4401
CLOSE_TOO_SLOW = 4008  # fell too far behind: reconnect and resync from GET /api/units
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
# RFC 6455 "try again later": the database is unavailable at the handshake, or the live bus (Redis) is down.
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001  # RFC 6455: the server is stopping (SIGTERM); reconnect to another and resync
FIRST_MESSAGE_SECONDS = 10
PERSON_ROLES = {"admin", "bed_manager", "amhp", "conveyance"}
MAX_MESSAGE_BYTES = 64 * 1024
MAX_CODES = 200
log = logging.getLogger("capacity.notify")


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


Code = Annotated[str, Meta(max_length=64)]
Codes = Annotated[list[Code], Meta(max_length=MAX_CODES)]


class SubscribeMessage(msgspec.Struct):
    # Optional, so that the first message may be just {"token": "..."}, as documented.
    action: Annotated[str, Meta(max_length=32)] = ""
    areas: Codes = []
    providers: Codes = []
    units: Codes = []
    token: Annotated[str, Meta(max_length=4096)] | None = None


class MessageTooBig(Exception):
    pass


def _message_text(event: Any) -> str:
    """The text of a received message, refusing (before decoding any of it) one over 64 KB."""
    if event["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(detail="disconnect event", code=event.get("code", 1000))
    data = event.get("text")
    if data is None:
        raw = event.get("bytes") or b""
        if len(raw) > MAX_MESSAGE_BYTES:
            raise MessageTooBig()
        return raw.decode("utf-8", errors="replace")
    # A character is 1 to 4 bytes in UTF-8: count the bytes only when the length alone cannot tell.
    if len(data) > MAX_MESSAGE_BYTES or (len(data) * 4 > MAX_MESSAGE_BYTES and len(data.encode()) > MAX_MESSAGE_BYTES):
        raise MessageTooBig()
    return data


_FIELD = re.compile(r"at `\$\.([a-z_]+)")


async def _actor_for(socket: WebSocket[Any, Any, Any], encoded: str | None) -> tuple[Actor, Presented]:
    if not encoded:
        raise NotAuthorizedException("no token")
    state = socket.app.state
    token = Presented.of(state.jwt_auth.decode(encoded))
    async with state.db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.id == token.sub, User.active.is_(True)))
    if user is None or (await state.revocations.revoked([token]))[0]:
        raise NotAuthorizedException("unknown user or revoked token")
    return Actor.of(user), token


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

    def __init__(self, socket: WebSocket[Any, Any, Any], actor: Actor, token: Presented) -> None:
        self.socket = socket
        self.actor = actor
        self.token = token
        self.filter = Filter()
        self.seq = 0
        self.lock = asyncio.Lock()
        # Set by SocketWatch when the token no longer holds: the handler then closes with 4401.
        self.unauthorised = asyncio.Event()

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
        """Read the client's messages until it goes away; returns (after MessageTooBig) to be closed 1009."""
        while True:
            raw = _message_text(await self.socket.receive())
            try:
                message = msgspec.json.decode(raw, type=SubscribeMessage)
            except msgspec.ValidationError as exc:
                found = _FIELD.search(str(exc))
                error = {"status": 422, "field": found.group(1) if found else None, "detail": str(exc)}
                await self.send("error", error)
                continue
            except msgspec.DecodeError as exc:
                await self.send("error", {"status": 400, "detail": f"not understood: {exc}"})
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


class SocketWatch:
    """One per app: every `interval` seconds, while any socket is open, checks all their tokens at once
    (one denylist look-up and one users query), and marks the streams whose token no longer holds:
    revoked, expired, or its user deactivated or given another role, provider or areas."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.streams: set[Stream] = set()
        self._task: asyncio.Task[None] | None = None
        # Set when the process is told to stop: every socket is then closed 1001 (capacity.shutdown),
        # which waits for `emptied`, set whenever the last socket goes.
        self.going_away = asyncio.Event()
        self.emptied = asyncio.Event()

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        self.emptied.clear()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(stream.socket.app.state))

    def discard(self, stream: Stream) -> None:
        self.streams.discard(stream)
        if not self.streams:
            self.emptied.set()

    async def _run(self, state: Any) -> None:
        while self.streams:
            await asyncio.sleep(self.interval)
            try:
                await self.check(state, list(self.streams))
            except Exception:  # a failed round (database or Redis away) is tried again next time
                log.warning("could not re-check the live sockets' tokens", exc_info=True)

    async def check(self, state: Any, streams: list[Stream]) -> None:
        now = time.time()
        live = [s for s in streams if s.token.exp > now]
        revoked = await state.revocations.revoked([s.token for s in live]) if live else []
        users: dict[str, tuple[str, str | None, list[str]]] = {}
        if live:
            query = (
                select(User.id, User.role, User.provider_id, UserArea.area_code)
                .outerjoin(UserArea, UserArea.user_id == User.id)
                .where(User.id.in_({s.actor.id for s in live}), User.active.is_(True))
            )
            async with state.db.autocommit_engine.connect() as conn:
                for user_id, role, provider_id, area in (await conn.execute(query)).all():
                    entry = users.setdefault(user_id, (role, provider_id, []))
                    if area is not None:
                        entry[2].append(area)
        good = {
            s
            for s, gone in zip(live, revoked, strict=True)
            if not gone
            and (user := users.get(s.actor.id)) is not None
            and (user[0], user[1], tuple(sorted(user[2]))) == (s.actor.role, s.actor.provider_id, s.actor.areas)
        }
        for stream in streams:
            if stream not in good:
                stream.unauthorised.set()


@websocket("/ws/events", opt={"exclude_from_auth": True})
async def events_socket(socket: WebSocket[Any, Any, Any], channels: NamedDependency[ChannelsPlugin]) -> None:
    await socket.accept()
    # A browser's session cookie, or a token in the query or the first message.
    encoded = socket.query_params.get("token") or socket.cookies.get(SESSION_COOKIE, "").split(" ")[-1]
    try:
        if not encoded:
            first = _message_text(await asyncio.wait_for(socket.receive(), FIRST_MESSAGE_SECONDS))
            encoded = msgspec.json.decode(first, type=SubscribeMessage).token
        actor, token = await _actor_for(socket, encoded)
    except MessageTooBig:
        await socket.close(code=CLOSE_TOO_BIG, reason="a message may be at most 64 KB")
        return
    except (NotAuthorizedException, msgspec.DecodeError, TimeoutError):
        await socket.close(code=CLOSE_UNAUTHORISED, reason="a valid token is required")
        return
    except WebSocketDisconnect:
        return
    except Exception as exc:  # the database (or the way to it) is away: try again later, not a crash
        if database_fault(exc) is None:
            raise
        await socket.close(code=CLOSE_TRY_AGAIN_LATER, reason="the database is unavailable; reconnect shortly")
        return

    bus: Bus = socket.app.state.bus
    if bus.down:
        await socket.close(code=CLOSE_TRY_AGAIN_LATER, reason="live updates are unavailable; reconnect shortly")
        return
    lost = bus.lost  # this socket's: set if the bus stops working while it is open
    stream = Stream(socket, actor, token)
    watch: SocketWatch = socket.app.state.socket_watch
    watch.add(stream)
    subscriber: BoundedSubscriber = await channels.subscribe([CHANNEL])  # type: ignore[assignment]
    tasks: list[asyncio.Task[Any]] = []
    try:
        await stream.send(
            "hello",
            {
                "username": actor.username,
                "role": actor.role,
                "resync": "GET /api/units is the snapshot after a reconnect",
            },
        )
        tasks = [
            asyncio.create_task(stream.forward(subscriber)),
            asyncio.create_task(stream.listen()),
            asyncio.create_task(subscriber.overflowed.wait()),
            asyncio.create_task(stream.unauthorised.wait()),
            asyncio.create_task(watch.going_away.wait()),
            asyncio.create_task(lost.wait()),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[5] in done:
            await socket.close(code=CLOSE_TRY_AGAIN_LATER, reason="live updates were interrupted: reconnect and resync")
        elif tasks[4] in done:
            await socket.close(code=CLOSE_GOING_AWAY, reason="the server is stopping: reconnect and resync")
        elif tasks[3] in done:
            await socket.close(code=CLOSE_UNAUTHORISED, reason="the token was revoked or has expired")
        elif tasks[2] in done:
            await socket.close(code=CLOSE_TOO_SLOW, reason="too far behind; reconnect and resync")
        elif tasks[1] in done and isinstance(tasks[1].exception(), MessageTooBig):
            await socket.close(code=CLOSE_TOO_BIG, reason="a message may be at most 64 KB")
    except WebSocketDisconnect:
        pass
    finally:
        watch.discard(stream)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
                await task
        await channels.unsubscribe(subscriber)
