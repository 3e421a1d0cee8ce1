"""`/ws/events`: the live stream, scoped by role exactly as the REST API is.

Authentication is by token, in `?token=` or as the first message `{"token": "..."}`. A client may
narrow its stream with `{"action": "subscribe", "areas": [...], "providers": [...], "units": [...]}`
(at most `MAX_CODES` codes in each list, each at most 64 characters: a longer one is answered with an
`error` frame `{"status": 422, "field", "detail"}` and changes nothing) and ask `{"action": "ping"}` to
get a `pong`. Every frame is `{"seq", "type", "at", "data"}` with `seq` counting 1, 2, 3... per
connection without gaps. No database session lives as long as the socket.

Events reach the socket through this instance's hub (`capacity.notify.hub`): this handler answers the
client's messages, and one writer task writes the frames the hub and the answers queue. A message
over 64 KB closes the socket with 1009; a token revoked, expired, or whose user was deactivated or
given another role, provider or areas, closes its socket with 4401 (the hub re-checks every few seconds).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Annotated, Any

import msgspec
from litestar import WebSocket, websocket
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from msgspec import Meta
from sqlalchemy import select

from capacity.auth.models import User
from capacity.auth.revocation import Presented
from capacity.auth.security import SESSION_COOKIE, Actor
from capacity.errors import database_fault
from capacity.notify.channels import Bus
from capacity.notify.hub import (
    CLOSE_TOO_BIG,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNAUTHORISED,
    Filter,
    Hub,
    Stream,
)

FIRST_MESSAGE_SECONDS = 10
MAX_MESSAGE_BYTES = 64 * 1024
MAX_CODES = 200
log = logging.getLogger("capacity.notify")

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


async def listen(stream: Stream) -> None:
    """Read the client's messages until it goes away or sends one over 64 KB; the stream then closes."""
    try:
        while True:
            raw = _message_text(await stream.socket.receive())
            try:
                message = msgspec.json.decode(raw, type=SubscribeMessage)
            except msgspec.ValidationError as exc:
                found = _FIELD.search(str(exc))
                stream.reply("error", {"status": 422, "field": found.group(1) if found else None, "detail": str(exc)})
                continue
            except msgspec.DecodeError as exc:
                stream.reply("error", {"status": 400, "detail": f"not understood: {exc}"})
                continue
            if message.action == "subscribe":
                stream.filter = Filter(set(message.areas), set(message.providers), set(message.units))
                stream.reply(
                    "subscribed", {"areas": message.areas, "providers": message.providers, "units": message.units}
                )
            elif message.action == "ping":
                stream.reply("pong", {})
            else:
                stream.reply("error", {"detail": f"unknown action {message.action!r}"})
    except MessageTooBig:
        stream.close(CLOSE_TOO_BIG, "a message may be at most 64 KB")
    except WebSocketDisconnect:
        stream.close(None)


@websocket("/ws/events", opt={"exclude_from_auth": True})
async def events_socket(socket: WebSocket[Any, Any, Any]) -> None:
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
    hub: Hub = socket.app.state.hub
    await hub.start()
    stream = Stream(socket, actor, token, hub.max_backlog)
    stream.reply(
        "hello",
        {"username": actor.username, "role": actor.role, "resync": "GET /api/units is the snapshot after a reconnect"},
    )
    hub.add(stream)  # from now on the hub queues this socket's events, after the hello
    writer = asyncio.create_task(stream.write())
    try:
        await listen(stream)  # until the client goes, or is closed by the writer (which ends the reading)
        await writer
    except (WebSocketDisconnect, OSError):  # the client went while a frame was being written
        pass
    finally:
        hub.discard(stream)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, Exception):
            await writer
