"""`capacity watch`: log in, then print the live stream as one readable line per event, for operators.

The password is exchanged for a token at `POST /api/auth/token`; the token travels to `/ws/events` in
the first message rather than in the URL, so it stays out of access logs. Each frame is printed as the
local (Europe/London) time, its `seq`, its type and a short summary. When the connection drops the
watcher says so, reminds the operator that events sent meanwhile are not replayed, reconnects with
backoff (a bounded number of attempts), and prints the `GET /api/units` snapshot to resync from.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

LONDON = ZoneInfo("Europe/London")
CLOSE_UNAUTHORISED = 4401
CLOSE_TOO_SLOW = 4008
RESYNC_HINT = "events sent while disconnected are not replayed: resync from GET /api/units"


class WatchError(Exception):
    """Something the operator must fix (wrong password, wrong URL); retrying will not help."""


@dataclass
class WatchOptions:
    url: str
    username: str
    password: str
    areas: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    # Reconnection attempts in a row before giving up; a connection that opens resets the count.
    retries: int = 10
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    timeout_seconds: float = 10.0
    unit_names: dict[str, str] = field(default_factory=dict)


def events_url(base_url: str) -> str:
    """ws(s)://host/ws/events for an http(s)://host base URL (any path on it is kept as a prefix)."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
        raise WatchError(f"not an http(s) URL: {base_url!r}")
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + "/ws/events", "", ""))


def local_time(value: str | None) -> str:
    """An ISO timestamp as London wall-clock time, with GMT or BST; the raw text if it is not one."""
    if not value:
        return "--"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    if moment.tzinfo is None:
        return value
    return moment.astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S %Z")


def _clock(value: str | None) -> str:
    """A short HH:MM London time for use inside a summary."""
    text = local_time(value)
    return text[11:16] if len(text) > 16 else text


def _short(identifier: Any) -> str:
    return str(identifier)[:8] if identifier else "?"


def _person(person: dict | None) -> str:
    if not person:
        return ""
    bits = [str(person[k]) for k in ("age", "sex", "home_area") if person.get(k) is not None]
    return f" person {person.get('ref', '?')}" + (f" ({', '.join(bits)})" if bits else "")


def summary(kind: str, data: dict, names: dict[str, str] | None = None) -> str:
    """A short, readable account of one event's data."""
    names = names or {}
    unit = names.get(data.get("unit_id") or "", _short(data.get("unit_id")))
    if kind == "hello":
        return f"connected as {data.get('username')} ({data.get('role')})"
    if kind == "subscribed":
        parts = [f"{k}={','.join(v)}" for k in ("areas", "providers", "units") if (v := data.get(k))]
        return "subscribed to " + ("; ".join(parts) or "everything in scope")
    if kind == "pong":
        return "pong"
    if kind == "error":
        return str(data.get("detail", data))
    if kind == "unit.availability":
        text = (
            f"{unit}: {data.get('available')} available ({data.get('open_places')} open, "
            f"{data.get('held')} held, {data.get('occupied')} occupied)"
        )
        if data.get("status") != "open":
            text += f" {str(data.get('status')).upper()}"
        return text + (" STALE" if data.get("stale") else "")
    if kind == "unit.stale":
        return (
            f"{data.get('name') or unit}: not confirmed since {_clock(data.get('last_confirmed_at'))} "
            f"by {data.get('last_confirmed_by')} (stale after {data.get('stale_after_minutes')} min)"
        )
    if kind == "conveyance.updated":
        text = f"hold {_short(data.get('hold_id'))} to {unit}: {data.get('mode')}"
        if data.get("ambulance_response_minutes") is not None:
            text += (
                f", ambulance response {data['ambulance_response_minutes']} min"
                f" (standard {data.get('ambulance_standard_minutes')})"
            )
        if data.get("eta"):
            text += f", eta {_clock(data['eta'])}"
        if data.get("arrived_at"):
            text += f", arrived {_clock(data['arrived_at'])}"
        return text
    if kind.startswith("hold."):
        text = f"hold {_short(data.get('hold_id'))} at {unit}: {data.get('status')}, {data.get('purpose')}"
        if data.get("status") == "held":
            text += f", expires {_clock(data.get('expires_at'))}"
        if data.get("minutes_left") is not None:
            text += f", {data['minutes_left']} min left"
        return text + _person(data.get("person"))
    if kind.startswith("placement.") or kind.startswith("s136."):
        if data.get("place_type"):  # at a place that is not a unit
            place = data.get("place_name") or str(data["place_type"]).replace("_", " ")
            text = f"detention {_short(data.get('detention_id'))} at {place}: {data.get('legal_basis')}"
        else:
            text = f"placement {_short(data.get('placement_id'))} at {unit}: {data.get('legal_basis')}"
        if data.get("minutes_left") is not None:
            text += f", {data['minutes_left']} min left"
        if data.get("s136_deadline"):
            text += f", s136 deadline {_clock(data['s136_deadline'])}"
        if data.get("ended_at"):
            text += f", ended {_clock(data['ended_at'])}"
        return text + _person(data.get("person"))
    scalars = [f"{k}={v}" for k, v in data.items() if isinstance(v, str | int | float | bool) or v is None]
    return " ".join(scalars)


def format_frame(frame: dict, names: dict[str, str] | None = None) -> str:
    """One line: London time, seq, type, summary."""
    kind = str(frame.get("type", "?"))
    data = frame.get("data")
    if not isinstance(data, dict):
        data = {}
    return f"{local_time(frame.get('at'))}  #{frame.get('seq', '?'):<5} {kind:<19} {summary(kind, data, names)}"


async def login(client: httpx.AsyncClient, options: WatchOptions) -> str:
    try:
        response = await client.post(
            "/api/auth/token", json={"username": options.username, "password": options.password}
        )
    except httpx.HTTPError as exc:
        raise ConnectionError(f"cannot reach {options.url}: {exc}") from exc
    if response.status_code == 401:
        raise WatchError("wrong username or password")
    if response.status_code == 429:
        raise WatchError("too many failed logins; try again later")
    if response.status_code != 200:
        raise WatchError(f"login failed: HTTP {response.status_code}")
    return response.json()["access_token"]


async def snapshot(client: httpx.AsyncClient, token: str, options: WatchOptions) -> list[dict]:
    """GET /api/units: the figures to resync from; also names units for the summaries."""
    response = await client.get("/api/units", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    units = response.json()
    options.unit_names.update({u["id"]: u["name"] for u in units})
    return units


def _backoff(options: WatchOptions, attempt: int) -> float:
    delay = min(options.max_backoff_seconds, options.backoff_seconds * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


async def watch(options: WatchOptions, out: Callable[[str], None] | None = None) -> int:
    """Print the stream until cancelled; return 1 after `retries` failed reconnections in a row."""
    emit = out or (lambda line: print(line, flush=True))
    url = events_url(options.url)
    subscription = {
        "action": "subscribe",
        "areas": list(options.areas),
        "providers": list(options.providers),
        "units": list(options.units),
    }
    wants_subscription = bool(options.areas or options.providers or options.units)
    token: str | None = None
    failures = 0
    connected_before = False
    async with httpx.AsyncClient(base_url=options.url.rstrip("/"), timeout=options.timeout_seconds) as client:
        while True:
            reason = ""
            try:
                if token is None:
                    token = await login(client, options)
                units = await snapshot(client, token, options)
                if connected_before:
                    emit(f"resync: {len(units)} units from GET /api/units")
                    for unit in units:
                        emit("  " + summary("unit.availability", {**unit, "unit_id": unit["id"]}, options.unit_names))
                async with connect(url, open_timeout=options.timeout_seconds, close_timeout=2) as socket:
                    await socket.send(json.dumps({"token": token}))
                    if wants_subscription:
                        await socket.send(json.dumps(subscription))
                    failures = 0
                    connected_before = True
                    async for raw in socket:
                        try:
                            emit(format_frame(json.loads(raw), options.unit_names))
                        except (ValueError, AttributeError):
                            emit(f"unreadable frame: {str(raw)[:200]}")
                reason = "the server closed the connection"
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code == CLOSE_UNAUTHORISED:
                    token = None  # expired or revoked: log in afresh
                    reason = "the token was refused (4401)"
                elif code == CLOSE_TOO_SLOW:
                    reason = "this watcher fell too far behind (4008)"
                else:
                    reason = f"connection closed ({code})" if code else "connection lost"
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code == 401:
                    token = None
                reason = f"HTTP {exc.response.status_code} from {exc.request.url.path}"
            except (OSError, InvalidHandshake, TimeoutError, httpx.HTTPError) as exc:
                reason = f"cannot connect: {exc}"
            except InvalidURI as exc:
                raise WatchError(str(exc)) from exc
            failures += 1
            if failures > options.retries:
                emit(f"giving up after {options.retries} attempts to reconnect ({reason}); {RESYNC_HINT}")
                return 1
            delay = _backoff(options, failures)
            emit(f"{reason}; reconnecting in {delay:.1f}s (attempt {failures} of {options.retries}); {RESYNC_HINT}")
            await asyncio.sleep(delay)


def options_from(
    url: str,
    username: str,
    password: str,
    areas: Iterable[str],
    units: Iterable[str],
    providers: Iterable[str],
    retries: int,
) -> WatchOptions:
    return WatchOptions(
        url=url,
        username=username,
        password=password,
        areas=tuple(areas),
        units=tuple(units),
        providers=tuple(providers),
        retries=retries,
    )
