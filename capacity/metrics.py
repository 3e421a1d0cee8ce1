"""`GET /metrics`: Prometheus text format (prometheus-client), one registry per app (API.md "Operations").

What is counted, and where:

- `capacity_http_requests_total{method,route,status}` (counter): every HTTP request, by route template
  (`/api/holds/{hold_id}`, never the raw path; `unmatched` when no route matched);
- `capacity_http_request_duration_seconds{method,route}` (histogram): their latency;
- `capacity_holds_created_total` (counter): `hold.created` events of committed writes;
- `capacity_holds_refused_total{reason}` (counter): `POST /api/holds` answered other than 2xx: `no_place`
  (409), `not_allowed` (401/403), `invalid` (400/404/422), `unavailable` (503);
- `capacity_websockets_open` (gauge): live `/ws/events` sockets of this process;
- `capacity_events_published_total{type}` (counter): domain events handed to the channels after commit;
- `capacity_event_lag_seconds` (histogram): from an event's transaction instant to its arrival at this
  instance's fan-out (across instances this assumes synchronised clocks);
- `capacity_sweep_runs_total{job,outcome}` (counter) and `capacity_sweep_duration_seconds{job}`
  (histogram): the scheduled sweep/alert job, `ok` or `error`, and its run time;
- `capacity_db_pool_connections{state}` (gauge, `in_use` / `idle`) and `capacity_db_pool_limit` (gauge,
  pool size + overflow): this process's database pool.

Served to loopback callers that came straight in (no `X-Forwarded-For`: a proxy on the same host does not
make the world local), or to anyone with `Authorization: Bearer $CAPACITY_METRICS_TOKEN`.

One process, one registry: with `capacity serve --workers N` every worker counts on its own, and a scrape
reaches whichever worker accepts it. Scrape each worker on its own, or run prometheus-client's
multiprocess mode (PROMETHEUS_MULTIPROC_DIR; the gauges read at scrape time would then have to become
live-summed gauges): see README "Running in production".
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from litestar import Request, Response, get
from litestar.channels import ChannelsPlugin
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from capacity.events import Event, decode

# The `_created` timestamp series double every counter and histogram for nothing a dashboard uses.
disable_created_metrics()

log = logging.getLogger("capacity")

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HOLDS_ROUTE = "/api/holds"
_REFUSALS = {409: "no_place", 401: "not_allowed", 403: "not_allowed", 503: "unavailable"}


class _LiveState(Collector):
    """Gauges read when scraped: the pool's connections and the open sockets."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def collect(self) -> Iterable[GaugeMetricFamily]:
        sockets = GaugeMetricFamily("capacity_websockets_open", "Live /ws/events sockets of this process.")
        sockets.add_metric([], len(self.state.hub.streams))
        yield sockets
        pool = self.state.db.engine.pool
        connections = GaugeMetricFamily(
            "capacity_db_pool_connections", "Database connections of this process's pool.", labels=["state"]
        )
        limit = GaugeMetricFamily("capacity_db_pool_limit", "The most connections this process's pool opens.")
        checked_out = getattr(pool, "checkedout", None)
        if checked_out is not None:
            connections.add_metric(["in_use"], checked_out())
            connections.add_metric(["idle"], pool.checkedin())
            limit.add_metric([], pool.size() + max(getattr(pool, "_max_overflow", 0), 0))
        yield connections
        yield limit


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "capacity_http_requests",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "capacity_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.holds_created = Counter("capacity_holds_created", "Holds created (committed).", registry=r)
        self.holds_refused = Counter(
            "capacity_holds_refused", "Hold requests refused, by reason.", ["reason"], registry=r
        )
        self.events_published = Counter(
            "capacity_events_published", "Domain events published after their commit.", ["type"], registry=r
        )
        self.event_lag = Histogram(
            "capacity_event_lag_seconds",
            "From an event's transaction to its arrival at this instance's fan-out.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.sweep_runs = Counter("capacity_sweep_runs", "Scheduled job runs.", ["job", "outcome"], registry=r)
        self.sweep_duration = Histogram(
            "capacity_sweep_duration_seconds", "Scheduled job run time.", ["job"], buckets=SWEEP_BUCKETS, registry=r
        )
        for reason in ("no_place", "not_allowed", "invalid", "unavailable"):
            self.holds_refused.labels(reason)
        for outcome in ("ok", "error"):
            self.sweep_runs.labels("sweep", outcome)
        self.sweep_duration.labels("sweep")
        self._event_task: asyncio.Task[None] | None = None

    def watch_state(self, state: Any) -> None:
        self.registry.register(_LiveState(state))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # --- HTTP ---------------------------------------------------------------------------------------

    def asgi(self, app: ASGIApp) -> ASGIApp:
        """Wrap the app's whole handler (outside its router and exception handling): every request is
        counted with the status it was answered, 404s and failed authentication included."""

        async def metered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                self.observe(
                    str(scope.get("method", "GET")), str(scope.get("path_template") or "unmatched"), status, start
                )

        return metered

    def observe(self, method: str, route: str, status: int, start: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(time.perf_counter() - start)
        if route == HOLDS_ROUTE and method == "POST" and status >= 300:
            self.holds_refused.labels(_REFUSALS.get(status, "invalid")).inc()

    # --- Events -------------------------------------------------------------------------------------

    def publisher(self, publish: Callable[[list[Event]], Awaitable[None]]) -> Callable[[list[Event]], Awaitable[None]]:
        """`Database.publish`, counting what it publishes."""

        async def counted(events: list[Event]) -> None:
            await publish(events)
            for event in events:
                self.events_published.labels(event.type).inc()
                if event.type == "hold.created":
                    self.holds_created.inc()

        return counted

    async def start_event_lag(self, channels: ChannelsPlugin, channel: str) -> None:
        """Subscribe as one more (bounded) listener and time each event's arrival after its transaction."""

        async def watch() -> None:
            subscriber = await channels.subscribe([channel])
            try:
                async for raw in subscriber.iter_events():
                    try:
                        at = decode(raw).at.timestamp()
                    except Exception:
                        continue
                    self.event_lag.observe(max(0.0, time.time() - at))
            finally:
                await channels.unsubscribe(subscriber)

        self._event_task = asyncio.create_task(watch())

    async def stop_event_lag(self) -> None:
        if self._event_task is not None:
            self._event_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._event_task

    # --- Scheduled jobs -----------------------------------------------------------------------------

    def watch_scheduler(self, scheduler: Any) -> None:
        """Count and time the scheduler's jobs through its events (APScheduler 3): submitted, then
        executed or failed."""
        from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_SUBMITTED

        started: dict[str, float] = {}

        def listen(event: Any) -> None:
            if event.code == EVENT_JOB_SUBMITTED:
                started[event.job_id] = time.perf_counter()
                return
            outcome = "error" if event.code == EVENT_JOB_ERROR else "ok"
            self.sweep_runs.labels(event.job_id, outcome).inc()
            if (begun := started.pop(event.job_id, None)) is not None:
                self.sweep_duration.labels(event.job_id).observe(time.perf_counter() - begun)

        scheduler.add_listener(listen, EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)


def _loopback(request: Request[Any, Any, Any]) -> bool:
    """A caller on this host that came straight in: not through a proxy, which would add X-Forwarded-For."""
    if any(name == b"x-forwarded-for" for name, _ in request.scope["headers"]):
        return False
    client = request.scope.get("client")
    if not client:
        return False
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except ValueError:
        return False


def _token_matches(request: Request[Any, Any, Any], token: str | None) -> bool:
    if not token:
        return False
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@get("/metrics", include_in_schema=False, opt={"exclude_from_auth": True}, sync_to_thread=False)
def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    state = request.app.state
    if not (_loopback(request) or _token_matches(request, state.settings.metrics_token)):
        body = (
            b'{"type":"/problems/forbidden","title":"Forbidden","status":403,'
            b'"detail":"Metrics are served to loopback callers, or with the metrics token."}'
        )
        return Response(body, status_code=403, media_type="application/problem+json")
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
