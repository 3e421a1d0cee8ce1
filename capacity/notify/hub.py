"""One fan-out per instance: every committed event is heard once, scoped once per audience, encoded once.

The hub takes the one subscription of this instance to the channels (in-process, or Redis across
instances) and, for each event, asks the scope module (`capacity.auth.scope`, the REST API's rule)
once per audience: the sockets whose callers share a role, provider and areas. The frame's body is
encoded once for all who hear it; each socket's frames are that body with its own `seq` spliced in
front. The hub never waits for a socket: it appends the body to the socket's bounded outbox, and the
socket's own writer writes its outbox in order, so a slow client delays only itself.

Each socket has its connection task, which reads the client's messages, and one writer task; whatever
ends a socket (too far behind, token revoked, bus lost, shutdown, a message too big) marks its stream
`closing` and wakes the writer, which closes with that code. Every few seconds the hub also re-checks the tokens of
all its sockets at once (one denylist look-up and one users query).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from litestar import WebSocket
from litestar.channels import ChannelsPlugin
from sqlalchemy import select

from capacity.auth.models import User, UserArea
from capacity.auth.revocation import Presented
from capacity.auth.scope import hears
from capacity.auth.security import Actor
from capacity.events import PUBLIC_TYPES, Event, decode
from capacity.notify.channels import CHANNEL, BoundedSubscriber, Bus

# Close codes a client can act on.
CLOSE_UNAUTHORISED = 4401
CLOSE_TOO_SLOW = 4008  # fell too far behind: reconnect and resync from GET /api/units
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
# RFC 6455 "try again later": the database is unavailable at the handshake, or the live bus (Redis) is down.
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_GOING_AWAY = 1001  # RFC 6455: the server is stopping (SIGTERM); reconnect to another and resync
TOO_SLOW = (CLOSE_TOO_SLOW, "too far behind; reconnect and resync")
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


def body(type_: str, at: str, data: dict[str, Any]) -> str:
    """A frame's JSON without its opening brace and `seq`, which differ per connection."""
    return msgspec.json.encode({"type": type_, "at": at, "data": data}).decode()[1:]


Scope = tuple[str, str | None, tuple[str, ...]]


def scope_of(actor: Actor) -> Scope:
    """What `capacity.auth.scope` decides by: callers alike in these hear alike."""
    return actor.role, actor.provider_id, actor.areas


class Stream:
    """One connection: its caller, its filter, the frames waiting to be written and their numbering."""

    def __init__(self, socket: WebSocket[Any, Any, Any], actor: Actor, token: Presented, max_backlog: int) -> None:
        self.socket = socket
        self.actor = actor
        self.token = token
        self.filter = Filter()
        self.seq = 0
        self.max_backlog = max_backlog
        self.outbox: deque[str] = deque()
        self._waiter: asyncio.Future[None] | None = None  # the writer's, while it waits for frames
        # (code, reason) to close with, or (None, "") when the client has gone; set once.
        self.closing: tuple[int | None, str] | None = None

    def push(self, frame_body: str) -> None:
        """Queue a frame; a client this far behind is closed 4008 (it resyncs from GET /api/units)."""
        if self.closing is not None:
            return
        if len(self.outbox) >= self.max_backlog:
            self.close(*TOO_SLOW)
            return
        self.outbox.append(frame_body)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def reply(self, type_: str, data: dict[str, Any], at: datetime | None = None) -> None:
        self.push(body(type_, (at or self.socket.app.state.db.clock.now()).isoformat(), data))

    def close(self, code: int | None, reason: str = "") -> None:
        if self.closing is None:
            self.closing = (code, reason)
            self._wake()

    async def write(self) -> None:
        """The socket's writer: its outbox in order, each frame numbered, until the stream is closing;
        then the close frame with its code (none when the client has gone).

        A task of its own, not the connection's task: waking it resumes two frames, not the whole
        middleware stack the connection's task runs in (measured by bench/fanout.py)."""
        loop = asyncio.get_running_loop()
        outbox = self.outbox
        while self.closing is None:
            if not outbox:
                self._waiter = loop.create_future()
                await self._waiter
                continue
            self.seq += 1
            await self.socket.send_text(f'{{"seq":{self.seq},{outbox.popleft()}')
        code, reason = self.closing
        if code is not None:
            await self.socket.close(code=code, reason=reason)


class Hub:
    """One per app: the streams of this instance, the fan-out to them, and the re-check of their tokens."""

    def __init__(self, channels: ChannelsPlugin, bus: Bus, *, recheck_seconds: float, max_backlog: int) -> None:
        self.channels = channels
        self.bus = bus
        self.recheck_seconds = recheck_seconds
        self.max_backlog = max_backlog
        self.streams: set[Stream] = set()
        self.audiences: dict[Scope, set[Stream]] = {}
        # Frame bodies encoded: one per event that anyone here hears, however many sockets hear it.
        self.encoded = 0
        # Set when the process is told to stop: every socket is then closed 1001 (capacity.shutdown),
        # which waits for `emptied`, set whenever the last socket goes.
        self.going_away = False
        self.emptied = asyncio.Event()
        self.emptied.set()
        self._subscriber: BoundedSubscriber | None = None
        self._fan_out: asyncio.Task[None] | None = None
        self._recheck: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        bus.listeners.append(self._bus_lost)

    # --- lifecycle: subscribed when the first socket comes, stopped by the app's shutdown hook ---------

    async def start(self) -> None:
        """Subscribe to the channels, once; a socket awaits this before its hello, so it misses nothing after."""
        async with self._starting:
            if self._fan_out is not None and not self._fan_out.done():
                return
            subscriber = await self.channels.subscribe([CHANNEL])
            assert isinstance(subscriber, BoundedSubscriber)
            self._subscriber = subscriber
            self._fan_out = asyncio.create_task(self._run(subscriber))

    async def stop(self) -> None:
        for task in (self._fan_out, self._recheck):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._fan_out = self._recheck = None
        if self._subscriber is not None:
            await self.channels.unsubscribe(self._subscriber)
            self._subscriber = None

    # --- the streams -----------------------------------------------------------------------------------

    def add(self, stream: Stream) -> None:
        self.streams.add(stream)
        self.audiences.setdefault(scope_of(stream.actor), set()).add(stream)
        self.emptied.clear()
        if self.going_away:
            stream.close(CLOSE_GOING_AWAY, "the server is stopping: reconnect and resync")
        if self._recheck is None or self._recheck.done():
            self._recheck = asyncio.create_task(self._recheck_tokens(stream.socket.app.state))

    def discard(self, stream: Stream) -> None:
        self.streams.discard(stream)
        scope = scope_of(stream.actor)
        audience = self.audiences.get(scope)
        if audience is not None:
            audience.discard(stream)
            if not audience:
                del self.audiences[scope]
        if not self.streams:
            self.emptied.set()

    def close_all(self, code: int, reason: str) -> None:
        for stream in self.streams:
            stream.close(code, reason)

    def go_away(self) -> None:
        """The process is stopping: close every socket 1001, now and as they come."""
        self.going_away = True
        self.close_all(CLOSE_GOING_AWAY, "the server is stopping: reconnect and resync")

    def _bus_lost(self) -> None:
        # New sockets are refused while the bus is down; those open cannot be trusted to hear everything.
        self.close_all(CLOSE_TRY_AGAIN_LATER, "live updates were interrupted: reconnect and resync")

    # --- the fan-out -----------------------------------------------------------------------------------

    async def _run(self, subscriber: BoundedSubscriber) -> None:
        async for raw in subscriber.iter_events():
            try:
                self.deliver(decode(raw))
            except Exception:  # one bad message must not end the fan-out
                log.exception("could not deliver a live event")
            if subscriber.overflowed.is_set():  # the hub itself fell behind: everyone missed an event
                subscriber.overflowed.clear()
                self.close_all(*TOO_SLOW)

    def deliver(self, event: Event) -> None:
        """Queue the event on every stream whose scope and filter take it, encoding it at most once."""
        frame_body: str | None = None
        for audience in self.audiences.values():
            if not visible(next(iter(audience)).actor, event):
                continue
            for stream in audience:
                if stream.filter.matches(event):
                    if frame_body is None:
                        frame_body = body(event.type, event.at.isoformat(), event.data)
                        self.encoded += 1
                    stream.push(frame_body)

    # --- tokens ------------------------------------------------------------------------------------------

    async def _recheck_tokens(self, state: Any) -> None:
        while self.streams:
            await asyncio.sleep(self.recheck_seconds)
            try:
                await self.check(state, list(self.streams))
            except Exception:  # a failed round (database or Redis away) is tried again next time
                log.warning("could not re-check the live sockets' tokens", exc_info=True)

    async def check(self, state: Any, streams: list[Stream]) -> None:
        """Close 4401 the streams whose token no longer holds: revoked, expired, or its user deactivated
        or given another role, provider or areas."""
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
                stream.close(CLOSE_UNAUTHORISED, "the token was revoked or has expired")
