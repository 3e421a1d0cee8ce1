"""Readiness, metrics and database faults (issue 13 items 1-3 and their part of 7).

The fault tests run the app against a PostgreSQL cluster of their own (initdb/pg_ctl on a free port, in
a temporary directory, as the `postgres` user when the tests run as root), stop and start it under a
load of holds, and exhaust its connections; never the shared PostgreSQL. They are skipped, with the
reason, only where the PostgreSQL server binaries are absent (never in CI).
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest
from litestar import get
from litestar.security.jwt import Token
from redis.asyncio import Redis
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from capacity.audit import AuditEntry
from capacity.auth.models import User
from capacity.booking.holds.models import Hold
from capacity.booking.units.models import Unit
from capacity.cli import migrate_to_head
from capacity.db.engine import Database
from capacity.errors import ServiceBusy, ServiceUnavailable, database_fault
from capacity.health import schema_heads
from support.api import Api
from support.demo import load_demo
from support.live_server import free_port, http_client
from support.metrics import sample
from support.processes import own_redis, stop_process, until_answering
from support.settings import settings_for

ROOT = Path(__file__).resolve().parent.parent
SUITE = "Bristol Place of Safety"
BRISTOL = "E06000023"
SECRET = settings_for("sqlite+aiosqlite://").secret_key


# --- Readiness ---------------------------------------------------------------------------------------


async def test_ready_when_the_database_answers_at_head(api: Api) -> None:
    response = await api.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "schema": "ok"}}
    assert (await api.get("/health")).json() == {"status": "ok"}


async def test_not_ready_when_the_schema_is_not_at_head(api: Api) -> None:
    (head,) = schema_heads()
    async with api.db.engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        response = await api.get("/health/ready")
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        body = response.json()
        assert body["failing"] == ["schema"] and body["checks"]["database"] == "ok"
        assert head in body["checks"]["schema"] and "schema" in body["detail"]
    finally:
        async with api.db.engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert (await api.get("/health/ready")).status_code == 200


async def test_not_ready_while_redis_is_away_where_it_is_configured(api: Api) -> None:
    api.app.state.redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    try:
        response = await api.get("/health/ready")
    finally:
        await api.app.state.redis.aclose()
        api.app.state.redis = None
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis"], body
    assert body["checks"] == {"database": "ok", "schema": "ok", "redis": "unavailable"}


# --- Metrics -----------------------------------------------------------------------------------------


def metric_names(exposition: str) -> set[str]:
    """Every metric family and sample name in a Prometheus text exposition."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\w+) (\w+)", exposition, re.M):
        names.add(name)
        if kind in ("histogram", "summary"):  # a family declares its series even before any observation
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    names |= set(re.findall(r"^([a-zA-Z_:][\w:]*)(?:\{| )", exposition, re.M))
    return names


async def test_metrics_count_requests_by_route_template_and_holds(api: Api) -> None:
    unit = await api.unit(SUITE)
    await api.put(f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 1, "status": "open"})
    body = {
        "unit_id": unit.id,
        "purpose": "s136",
        "person": {"ref": "M-1", "age": 30, "sex": "male", "home_area": BRISTOL},
    }
    assert (await api.post("/api/holds", "amhp", json=body)).status_code == 201
    refused = await api.post("/api/holds", "amhp", json={**body, "person": {**body["person"], "ref": "M-2"}})
    assert refused.status_code == 409
    assert (await api.get(f"/api/units/{unit.id}", "amhp")).status_code == 200
    assert (await api.get("/no/such/route")).status_code == 404

    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text_ = response.text
    assert sample(text_, "capacity_http_requests_total", method="GET", route="/api/units/{unit_id}", status="200") == 1
    assert unit.id not in text_, "the route template, never the raw path"
    assert sample(text_, "capacity_http_requests_total", route="unmatched", status="404") == 1
    assert sample(text_, "capacity_http_request_duration_seconds_count", method="POST", route="/api/holds") == 2
    assert sample(text_, "capacity_holds_created_total") == 1
    assert sample(text_, "capacity_holds_refused_total", reason="no_place") == 1
    assert sample(text_, "capacity_events_published_total", type="hold.created") == 1
    assert sample(text_, "capacity_db_pool_limit") > 0
    assert "capacity_db_pool_connections" in metric_names(text_)
    assert sample(text_, "capacity_websockets_open") == 0


async def test_metrics_are_for_loopback_callers_or_the_token(api: Api) -> None:
    app = api.app
    app.state.settings = dataclasses.replace(app.state.settings, metrics_token="m" * 32)

    async def call(client: tuple[str, int], **headers: str) -> int:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return (await http.get("/metrics", headers=headers)).status_code

    assert await call(("127.0.0.1", 1)) == 200
    assert await call(("::1", 1)) == 200
    assert await call(("10.1.2.3", 1)) == 403
    assert await call(("10.1.2.3", 1), Authorization="Bearer " + "m" * 32) == 200
    assert await call(("10.1.2.3", 1), Authorization="Bearer wrong") == 403
    # Through a proxy on this host: the peer is loopback, but the caller is not.
    assert await call(("127.0.0.1", 1), **{"X-Forwarded-For": "203.0.113.9"}) == 403


async def test_every_metric_the_dashboard_queries_is_served(api: Api) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []) if "expr" in target]
    assert len(exprs) >= 8
    queried = {name for expr in exprs for name in re.findall(r"\b(capacity_\w+)", expr)}
    served = metric_names((await api.get("/metrics")).text)
    assert queried - served == set(), "queried by the dashboard but not served"
    for family in (
        "capacity_http_requests_total",
        "capacity_http_request_duration_seconds_bucket",
        "capacity_holds_created_total",
        "capacity_holds_refused_total",
        "capacity_websockets_open",
        "capacity_events_published_total",
        "capacity_event_lag_seconds_bucket",
        "capacity_sweep_runs_total",
        "capacity_sweep_duration_seconds_bucket",
        "capacity_db_pool_connections",
    ):
        assert family in queried, f"the dashboard does not show {family}"


# --- Which errors are database faults ------------------------------------------------------------------


class _PgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _dbapi(orig: Exception, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        pytest.param(
            ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), ServiceUnavailable, id="refused"
        ),
        pytest.param(
            OSError("Multiple exceptions: Connect call failed ('::1', 5432)"), ServiceUnavailable, id="refused-all"
        ),
        pytest.param(ConnectionResetError(errno.ECONNRESET, "reset"), ServiceUnavailable, id="reset"),
        pytest.param(TimeoutError(), ServiceUnavailable, id="connect-timeout"),
        pytest.param(PoolTimeout("QueuePool limit of size 1 overflow 0 reached"), ServiceUnavailable, id="pool"),
        pytest.param(_dbapi(_PgError("sorry, too many clients already", "53300")), ServiceUnavailable, id="too-many"),
        pytest.param(_dbapi(_PgError("terminating connection", "57P01")), ServiceUnavailable, id="admin-shutdown"),
        pytest.param(_dbapi(_PgError("the database system is starting up", "57P03")), ServiceUnavailable, id="start"),
        pytest.param(
            InterfaceError("x", {}, Exception("closed"), connection_invalidated=True), ServiceUnavailable, id="closed"
        ),
        pytest.param(_dbapi(_PgError("lock timeout", "55P03")), ServiceBusy, id="lock-timeout"),
        pytest.param(_dbapi(_PgError("deadlock detected", "40P01")), ServiceBusy, id="deadlock"),
        pytest.param(OperationalError("x", {}, Exception("database is locked")), ServiceBusy, id="sqlite-busy"),
        pytest.param(_dbapi(_PgError("invalid byte sequence", "22021")), None, id="bad-text"),
        pytest.param(OperationalError("x", {}, Exception("disk I/O")), None, id="disk"),
        pytest.param(FileNotFoundError(errno.ENOENT, "no such file"), None, id="missing-file"),
        pytest.param(RuntimeError("boom"), None, id="bug"),
    ],
)
def test_database_faults_are_told_from_bugs(exc: Exception, kind: type | None) -> None:
    assert database_fault(exc) is kind


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed ('127.0.0.1', 5432)"),
        PoolTimeout("QueuePool limit of size 20 overflow 20 reached"),
        _dbapi(_PgError("sorry, too many clients already", "53300")),
        _dbapi(_PgError("terminating connection due to administrator command", "57P01")),
    ],
    ids=["refused", "pool", "too-many", "admin-shutdown"],
)
async def test_a_database_fault_anywhere_is_503_with_retry_after(api: Api, exc: Exception) -> None:
    @get("/api/test-only/fault", sync_to_thread=False)
    def fault() -> None:
        raise exc

    api.app.register(fault)
    response = await api.get("/api/test-only/fault", "admin")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["content-type"].startswith("application/problem+json")
    assert "5432" not in response.text and "QueuePool" not in response.text


def test_the_pool_is_configured_from_the_environment() -> None:
    from capacity.settings import Settings

    env = {"CAPACITY_DB_POOL_SIZE": "3", "CAPACITY_DB_MAX_OVERFLOW": "0", "CAPACITY_DB_POOL_TIMEOUT": "4"}
    settings = Settings.from_env(env, database_url="postgresql+asyncpg://u@127.0.0.1:1/x", secret_key="k" * 32)
    assert (settings.db_pool_size, settings.db_max_overflow, settings.db_pool_timeout_seconds) == (3, 0, 4.0)
    db = Database(settings)
    try:
        pool: Any = db.engine.pool
        assert (pool.size(), pool._max_overflow, pool._timeout) == (3, 0, 4.0)
    finally:
        asyncio.run(db.dispose())


# --- A PostgreSQL cluster of the tests' own --------------------------------------------------------------

PG_BIN = next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)), None)
needs_pg = pytest.mark.skipif(
    not (PG_BIN and os.path.exists(f"{PG_BIN}/initdb")) and os.environ.get("CI") != "true",
    reason="the PostgreSQL server binaries (initdb, pg_ctl under /usr/lib/postgresql/*/bin) are not installed",
)


@dataclass
class Cluster:
    """A private PostgreSQL: its own directory, port and socket; stopped and started only by this test."""

    directory: Path
    port: int
    max_connections: int

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/capacity"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = list(args)
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, text=True, timeout=60)

    def initdb(self) -> None:
        self._run(
            f"{PG_BIN}/initdb", "-D", str(self.directory / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            f"-c max_connections={self.max_connections} -c superuser_reserved_connections=0 -c fsync=off"
        )
        self._run(
            f"{PG_BIN}/pg_ctl", "-D", str(self.directory / "data"), "-o", options, "-l", str(self.log), "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(f"{PG_BIN}/pg_ctl", "-D", str(self.directory / "data"), "-m", mode, "-w", "stop", check=False)

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"


@pytest.fixture
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A migrated demo database on a private cluster; stopped and deleted when the test ends, however it ends."""
    assert PG_BIN, "CI has the PostgreSQL server binaries: /usr/lib/postgresql/*/bin"
    directory = Path(tempfile.mkdtemp(prefix="capacity-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    made = Cluster(directory, free_port(), getattr(request, "param", 40))  # max_connections
    try:
        made.initdb()
        made.start()
        asyncio.run(_create_database(made))
        migrate_to_head(made.url)
        asyncio.run(load_demo(made.url))
        yield made
    finally:
        made.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)


async def _create_database(cluster: Cluster) -> None:
    engine = create_async_engine(
        f"postgresql+asyncpg://postgres@127.0.0.1:{cluster.port}/postgres", isolation_level="AUTOCOMMIT"
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE DATABASE capacity"))
    finally:
        await engine.dispose()


def _log_file(path: Path) -> BinaryIO:
    return open(path, "wb")  # opened once, before the child starts


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:]


def token_for(user_id: str) -> str:
    return Token(exp=datetime.now(UTC) + timedelta(hours=1), sub=user_id).encode(SECRET, "HS256")


@dataclass
class Instance:
    """One `capacity serve` process: its address, the process (for a real SIGKILL) and its log."""

    base: str
    process: asyncio.subprocess.Process
    log: Path

    def says(self, text_: str) -> bool:
        return text_ in self.log.read_text(errors="replace")


@asynccontextmanager
async def instance(url: str, log: Path, **env: str) -> AsyncIterator[Instance]:
    """`capacity serve` in a process of its own (its scheduler runs: the sweep ends the holds), stopped when
    the block ends however it ends, by its pid only."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CAPACITY_")}
    environment.update(CAPACITY_DATABASE_URL=url, CAPACITY_SECRET_KEY=SECRET, PYTHONUNBUFFERED="1", **env)
    command = [sys.executable, "-c", "from capacity.cli import main; main()", "serve", "--port", str(port)]
    with _log_file(log) as out:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, env=environment, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with http_client(base) as client:
            await until_answering(client, "/health/ready", lambda: process.returncode, lambda: _tail(log))
        yield Instance(base, process, log)
    finally:
        await stop_process(process, within=15)


@asynccontextmanager
async def server(url: str, log: Path, **env: str) -> AsyncIterator[str]:
    """As `instance`, yielding its base URL."""
    async with instance(url, log, **env) as it:
        yield it.base


async def ids(url: str) -> tuple[dict[str, str], str]:
    db = Database(settings_for(url))
    try:
        async with db.read_sessions() as session:
            users = dict((await session.execute(select(User.username, User.id))).all())
            suite = await session.scalar(select(Unit.id).where(Unit.name.startswith(SUITE)))
        return users, suite
    finally:
        await db.dispose()


@asynccontextmanager
async def under_load(tasks: list[asyncio.Task], stop: asyncio.Event) -> AsyncIterator[None]:
    """The load's tasks run while the block does; then `stop` is set and they are waited for, and the first
    of them that failed fails the test (unless the block itself failed)."""
    try:
        yield
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def hold_body(unit_id: str, ref: str) -> dict:
    """A hold at `unit_id` for a 30-year-old man from Bristol, told from the others by `ref`."""
    person = {"ref": ref, "age": 30, "sex": "male", "home_area": BRISTOL}
    return {"unit_id": unit_id, "purpose": "s136", "person": person}


def acceptable(response: httpx.Response) -> bool:
    """A success, a refusal the domain made, or 503 with Retry-After: never a 500."""
    if response.status_code == 503:
        return bool(response.headers.get("Retry-After"))
    return response.status_code < 500


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    live = peak = 0
    for _, step in points:
        live += step
        peak = max(peak, live)
    return peak


ENDINGS = ("hold.release", "hold.expire", "hold.decline", "hold.arrive")


async def holds_and_endings(url: str, unit_id: str) -> tuple[list[Hold], Counter]:
    db = Database(settings_for(url))
    try:
        async with db.read_sessions() as session:
            holds = list((await session.scalars(select(Hold).where(Hold.unit_id == unit_id))).all())
            endings = Counter(
                (
                    await session.scalars(
                        select(AuditEntry.object_id).where(
                            AuditEntry.object_type == "hold", AuditEntry.action.in_(ENDINGS)
                        )
                    )
                ).all()
            )
        return holds, endings
    finally:
        await db.dispose()


PLACES = 3
HOLD_SECONDS = 4


async def every_hold_ended_once(url: str, unit_id: str) -> list[Hold]:
    """The unit's holds, once none is held any longer (each is due within HOLD_SECONDS); each has ended,
    and exactly once."""
    async with asyncio.timeout(HOLD_SECONDS + 15):
        while True:
            holds, endings = await holds_and_endings(url, unit_id)
            if all(h.status != "held" for h in holds):
                break
            await asyncio.sleep(0.5)
    for hold in holds:
        assert hold.ended_at is not None, hold.id
        assert endings[hold.id] == 1, (hold.id, hold.status, endings[hold.id])
    return holds


@needs_pg
async def test_postgres_stopped_and_started_under_load(cluster: Cluster, tmp_path: Path) -> None:
    users, suite = await ids(cluster.url)
    amhp = {"Authorization": f"Bearer {token_for(users['amhp'])}"}
    manager = {"Authorization": f"Bearer {token_for(users['bedmanager'])}"}
    env = {
        "CAPACITY_HOLD_SECONDS_S136_SUITE": str(HOLD_SECONDS),
        "CAPACITY_SWEEP_SECONDS": "1",
        "CAPACITY_DB_POOL_TIMEOUT": "2",
    }
    async with server(cluster.url, tmp_path / "server.log", **env) as base, http_client(base) as client:
        declared = await client.put(
            f"/api/units/{suite}/availability", headers=manager, json={"open_places": PLACES, "status": "open"}
        )
        assert declared.status_code == 200, declared.text
        responses: list[tuple[str, httpx.Response]] = []
        ready: list[tuple[float, int]] = []
        stop = asyncio.Event()
        counter = iter(range(10**6))

        async def booker(n: int) -> None:
            while not stop.is_set():
                i = next(counter)
                try:
                    created = await client.post("/api/holds", headers=amhp, json=hold_body(suite, f"FAULT-{i:05d}"))
                    responses.append(("hold", created))
                    if created.status_code == 201 and i % 2:
                        # Half are released by their AMHP; the others are left to expire in the sweep.
                        released = await client.post(f"/api/holds/{created.json()['id']}/release", headers=amhp)
                        responses.append(("release", released))
                    responses.append(("read", await client.get(f"/api/units/{suite}", headers=amhp)))
                    responses.append(("list", await client.get("/api/holds", headers=amhp)))
                except httpx.TransportError as exc:
                    raise AssertionError(f"the server dropped a request: {exc!r}") from exc
                await asyncio.sleep(0.02)

        async def probe() -> None:
            while not stop.is_set():
                ready.append((time.monotonic(), (await client.get("/health/ready")).status_code))
                await asyncio.sleep(0.2)

        tasks = [asyncio.create_task(booker(n)) for n in range(6)] + [asyncio.create_task(probe())]
        async with under_load(tasks, stop):
            await asyncio.sleep(2)
            before_stop = len(responses)
            await asyncio.to_thread(cluster.stop, "fast")  # admin shutdown: live connections are terminated
            stopped = time.monotonic()
            await asyncio.sleep(4)
            during = responses[before_stop:]
            await asyncio.to_thread(cluster.start)
            started = time.monotonic()
            async with asyncio.timeout(30):
                while True:
                    if any(at > started and status == 200 for at, status in ready):
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(2)  # load goes on after the recovery

        bad = [(kind, r.status_code, r.text[:200]) for kind, r in responses if not acceptable(r)]
        assert bad == [], bad[:5]
        assert any(r.status_code == 503 for _, r in during), "the outage was not seen"
        statuses = Counter((kind, r.status_code) for kind, r in responses)
        assert statuses[("hold", 201)] > 0 and statuses[("hold", 503)] > 0, statuses
        # Readiness: 200, then 503 while PostgreSQL was down, then 200 again, the app never restarted.
        assert any(at < stopped and s == 200 for at, s in ready)
        assert any(stopped < at < started and s == 503 for at, s in ready), ready
        assert any(at > started and s == 200 for at, s in ready)
        after = [r for kind, r in responses[-20:]]
        assert all(r.status_code < 500 for r in after), [r.status_code for r in after]

        # Every hold ends exactly once: released, or expired by the sweep once it is due.
        holds = await every_hold_ended_once(cluster.url, suite)
        assert holds, "no hold was made"
        # Never more live holds at once than the places declared open.
        assert max_overlap([(h.created_at, h.ended_at) for h in holds]) <= PLACES

        # Sockets can be opened again, and the metrics saw the 503s.
        async with connect(f"{base.replace('http', 'ws')}/ws/events?token={token_for(users['amhp'])}") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"
        exposition = (await client.get("/metrics")).text
        assert sample(exposition, "capacity_http_requests_total", status="503") > 0
        assert sample(exposition, "capacity_http_requests_total", status="500") == 0
        assert sample(exposition, "capacity_sweep_runs_total", job="sweep", outcome="ok") > 0


@needs_pg
async def test_a_socket_opened_while_postgres_is_down_is_told_to_try_again(cluster: Cluster, tmp_path: Path) -> None:
    users, _ = await ids(cluster.url)
    async with server(cluster.url, tmp_path / "server.log", CAPACITY_DB_POOL_TIMEOUT="2") as base:
        await asyncio.to_thread(cluster.stop, "fast")
        try:
            async with connect(f"{base.replace('http', 'ws')}/ws/events?token={token_for(users['amhp'])}") as ws:
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, closed.value
        finally:
            await asyncio.to_thread(cluster.start)
        async with connect(f"{base.replace('http', 'ws')}/ws/events?token={token_for(users['amhp'])}") as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "hello"


@needs_pg
@pytest.mark.parametrize("cluster", [12], indirect=True, ids=["max_connections=12"])
async def test_connections_exhausted_are_503_and_recover(cluster: Cluster, tmp_path: Path) -> None:
    """Both kinds: the app's own pool empty (a pool timeout), and the server out of connections ("too many
    clients"); each answered 503 with Retry-After, and served again once connections are free."""
    users, suite = await ids(cluster.url)
    amhp = {"Authorization": f"Bearer {token_for(users['amhp'])}"}
    hog = create_async_engine(cluster.url, poolclass=NullPool)
    env = {"CAPACITY_DB_POOL_SIZE": "2", "CAPACITY_DB_MAX_OVERFLOW": "0", "CAPACITY_DB_POOL_TIMEOUT": "1"}

    def hold(i: int) -> dict:
        return hold_body(suite, f"POOL-{i}")

    try:
        async with server(cluster.url, tmp_path / "server.log", **env) as base, http_client(base) as client:
            # 1. The app's pool: its two connections kept busy by writes waiting on a unit lock the test holds.
            async with hog.connect() as locker:
                await locker.execute(text("SELECT 1 FROM units WHERE id = :id FOR UPDATE"), {"id": suite})

                async def let_go() -> None:
                    await asyncio.sleep(3)
                    await locker.rollback()

                answers, _ = await asyncio.gather(
                    asyncio.gather(
                        *(client.post("/api/holds", headers=amhp, json=hold(i)) for i in range(6)),
                        *(client.get(f"/api/units/{suite}", headers=amhp) for _ in range(4)),
                    ),
                    let_go(),
                )
            statuses = Counter(r.status_code for r in answers)
            assert all(acceptable(r) for r in answers), [(r.status_code, r.text[:200]) for r in answers]
            assert statuses[503] > 0, statuses
            assert (await client.get(f"/api/units/{suite}", headers=amhp)).status_code == 200

            # 2. The server's connections: take every one there is, then end the app's, so it must open new ones.
            hogged = []
            try:
                while True:
                    conn = await hog.connect()
                    await conn.execute(text("SELECT 1"))
                    hogged.append(conn)
            except DBAPIError as exc:
                assert "too many clients" in str(exc)
            pids = [(await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one() for conn in hogged]
            await hogged[0].execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE backend_type = 'client backend' AND NOT pid = ANY(:pids)"
                ),
                {"pids": pids},
            )
            await hogged[0].commit()
            try:
                async with asyncio.timeout(10):  # the freed slots, taken by the test before the app can
                    while True:
                        try:
                            conn = await hog.connect()
                        except DBAPIError:
                            break
                        hogged.append(conn)
                answers = await asyncio.gather(*(client.get(f"/api/units/{suite}", headers=amhp) for _ in range(4)))
                answers.append(await client.post("/api/holds", headers=amhp, json=hold(100)))
                ready = await client.get("/health/ready")
            finally:
                for conn in hogged:
                    await conn.close()
            assert all(acceptable(r) for r in answers), [(r.status_code, r.text[:200]) for r in answers]
            assert all(r.status_code == 503 for r in answers), [r.status_code for r in answers]
            assert ready.status_code == 503 and ready.json()["failing"] == ["database", "schema"], ready.text
            async with asyncio.timeout(10):
                while True:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.2)
            assert (await client.get(f"/api/units/{suite}", headers=amhp)).status_code == 200
            assert (await client.post("/api/holds", headers=amhp, json=hold(101))).status_code in (201, 409)
    finally:
        await hog.dispose()


# --- One of two instances killed under load ------------------------------------------------------------

SWEEPER = "this process is the sweeper now"
SWEEP_SECONDS = 1


@dataclass
class Watcher:
    """A WebSocket client reading every frame as it comes, with the time it came; and how it ended."""

    ws: Any
    frames: list[tuple[float, dict]] = dataclasses.field(default_factory=list)
    closed: ConnectionClosed | None = None
    closed_at: float | None = None

    async def read(self) -> None:
        try:
            while True:
                self.frames.append((time.monotonic(), json.loads(await self.ws.recv())))
        except ConnectionClosed as exc:
            self.closed, self.closed_at = exc, time.monotonic()

    def hold_events(self, kind: str) -> set[str]:
        return {f["data"]["hold_id"] for _, f in self.frames if f["type"] == kind}


async def watch(base: str, token: str, closing: AsyncExitStack) -> Watcher:
    """A socket read in the background until it closes; closed, and its reader done, when `closing` ends."""
    ws = await connect(f"{base.replace('http', 'ws', 1)}/ws/events?token={token}", open_timeout=10, close_timeout=1)
    watcher = Watcher(ws)
    reading: asyncio.Task | None = None

    async def close() -> None:
        await ws.close()
        if reading is not None:
            await asyncio.wait_for(reading, 5)

    closing.push_async_callback(close)
    first = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert (first["seq"], first["type"]) == (1, "hello"), first
    watcher.frames.append((time.monotonic(), first))
    reading = asyncio.create_task(watcher.read())
    return watcher


async def until(predicate: Any, within: float, what: str) -> None:
    """Wait until `predicate()` holds; fail, saying `what` did not happen, after `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {within} s: {what}") from None


@needs_pg
async def test_kill_9_one_of_two_instances_under_load(cluster: Cluster, tmp_path: Path) -> None:
    """Two instances on one PostgreSQL and one Redis, the first of them the sweeper, under a load of holds
    and releases on both; the sweeper is SIGKILLed mid-load. The load goes on through the survivor, which
    takes the sweeper lock within a sweep period and expires what the dead one left held: no overbooking,
    every hold ended once, no 500, the survivor ready throughout, its sockets still hearing every event,
    and the dead one's sockets dropped, their clients resyncing on the survivor."""
    users, suite = await ids(cluster.url)
    amhp = {"Authorization": f"Bearer {token_for(users['amhp'])}"}
    manager = {"Authorization": f"Bearer {token_for(users['bedmanager'])}"}
    async with own_redis(tmp_path) as (redis_port, _):
        env = {
            "CAPACITY_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "CAPACITY_HOLD_SECONDS_S136_SUITE": str(HOLD_SECONDS),
            "CAPACITY_SWEEP_SECONDS": str(SWEEP_SECONDS),
            "CAPACITY_DB_POOL_TIMEOUT": "2",
        }
        async with instance(cluster.url, tmp_path / "a.log", **env) as a:
            # The first instance takes the free sweeper lock at its first sweep: it is the one to die.
            await until(lambda: a.says(SWEEPER), 10, "the first instance took the free sweeper lock")
            async with (
                instance(cluster.url, tmp_path / "b.log", **env) as b,
                http_client(a.base) as to_a,
                http_client(b.base) as to_b,
                AsyncExitStack() as sockets,
            ):
                declared = await to_b.put(
                    f"/api/units/{suite}/availability", headers=manager, json={"open_places": PLACES, "status": "open"}
                )
                assert declared.status_code == 200, declared.text
                on_a = await watch(a.base, token_for(users["bedmanager"]), sockets)
                on_b = await watch(b.base, token_for(users["bedmanager"]), sockets)

                responses: list[tuple[str, str, float, httpx.Response]] = []  # (instance, kind, sent at, response)
                dropped: list[float] = []  # requests the dead instance never answered
                ready: list[int] = []
                stop = asyncio.Event()
                killed = asyncio.Event()
                counter = iter(range(10**6))

                async def booker(first: str) -> None:
                    target = first
                    while not stop.is_set():
                        client = to_a if target == "a" else to_b
                        i = next(counter)
                        body = hold_body(suite, f"KILL-{i:05d}")
                        # Each response is filed under the time its request was sent: one that the first instance
                        # answered just before it died may be read after the kill, and is no request made after it.
                        try:
                            sent = time.monotonic()
                            created = await client.post("/api/holds", headers=amhp, json=body)
                            responses.append((target, "hold", sent, created))
                            if created.status_code == 201 and i % 2:
                                # Half are released by their AMHP; the others are left to the sweeper.
                                sent = time.monotonic()
                                released = await client.post(f"/api/holds/{created.json()['id']}/release", headers=amhp)
                                responses.append((target, "release", sent, released))
                            sent = time.monotonic()
                            read = await client.get(f"/api/units/{suite}", headers=amhp)
                            responses.append((target, "read", sent, read))
                        except httpx.TransportError as exc:
                            if target == "b" or not killed.is_set():
                                raise AssertionError(f"instance {target} dropped a request: {exc!r}") from exc
                            dropped.append(time.monotonic())
                            target = "b"  # what a client (or the proxy) does: on to the instance that answers
                        await asyncio.sleep(0.02)

                async def probe() -> None:
                    while not stop.is_set():
                        ready.append((await to_b.get("/health/ready")).status_code)
                        await asyncio.sleep(0.2)

                tasks = [asyncio.create_task(booker(first)) for first in "aaabbb"] + [asyncio.create_task(probe())]
                async with under_load(tasks, stop):
                    await asyncio.sleep(2)
                    assert not b.says(SWEEPER), "two sweepers at once"
                    killed.set()
                    a.process.send_signal(signal.SIGKILL)
                    killed_at, killed_wall = time.monotonic(), datetime.now(UTC)
                    await a.process.wait()
                    # The lock is the dead one's connection's: PostgreSQL ends that session, and the survivor
                    # takes the lock at its next sweep, a period later (the bound allows for a busy machine).
                    await until(lambda: b.says(SWEEPER), SWEEP_SECONDS + 4, "the survivor took the sweeper lock")
                    await asyncio.sleep(3)  # the load goes on through the survivor
                assert a.process.returncode == -signal.SIGKILL

                # No 500 from either, the survivor ready throughout, and the load really went on through it.
                bad = [(who, kind, r.status_code, r.text[:200]) for who, kind, _, r in responses if not acceptable(r)]
                assert bad == [], bad[:5]
                assert not [r for who, _, _, r in responses if who == "b" and r.status_code >= 500]
                assert ready and set(ready) == {200}, Counter(ready)
                after = [(kind, r) for who, kind, at, r in responses if at > killed_at]
                assert {who for who, _, at, _ in responses if at > killed_at} == {"b"}
                made_after = {r.json()["id"] for kind, r in after if kind == "hold" and r.status_code == 201}
                assert made_after, Counter((kind, r.status_code) for kind, r in after)
                assert any(who == "a" and r.status_code == 201 for who, _, _, r in responses), "A made no hold"

                # Every hold ends exactly once: released, or expired by the survivor's sweep once due.
                holds = await every_hold_ended_once(cluster.url, suite)
                assert max_overlap([(h.created_at, h.ended_at) for h in holds]) <= PLACES
                # What the dead sweeper left held, the survivor expired.
                expired_after = {h.id for h in holds if h.status == "expired" and h.ended_at > killed_wall}
                assert {h.id for h in holds if h.created_at < killed_wall} & expired_after, "left held"

                # The dead instance's socket saw its connection drop; the survivor's heard every event,
                # those of the holds made after the kill and of the expiries its own sweep made, with no gap.
                await until(lambda: on_a.closed is not None, 5, "the dead instance's socket dropped")
                assert on_a.closed_at is not None and on_a.closed_at >= killed_at
                assert on_a.closed.rcvd is None, "dropped (1006), not closed by a server that lives"
                await until(lambda: expired_after <= on_b.hold_events("hold.expired"), 10, "B heard the expiries")
                made_on_b = {
                    r.json()["id"] for who, kind, _, r in responses if (who, kind, r.status_code) == ("b", "hold", 201)
                }
                assert made_after <= made_on_b <= on_b.hold_events("hold.created")
                assert on_b.closed is None
                seqs = [f["seq"] for _, f in on_b.frames]
                assert seqs == list(range(1, len(seqs) + 1))

                # The dead one's client reconnects to the survivor and resyncs from the snapshot, then hears on.
                again = await watch(b.base, token_for(users["bedmanager"]), sockets)
                snapshot = await to_b.get(f"/api/units/{suite}", headers=manager)
                assert snapshot.status_code == 200 and snapshot.json()["held"] == 0, snapshot.text
                last = await to_b.post("/api/holds", headers=amhp, json=hold_body(suite, "KILL-LAST"))
                assert last.status_code == 201, last.text
                last_id = last.json()["id"]
                await until(lambda: last_id in again.hold_events("hold.created"), 5, "the reconnected socket heard")
                await until(lambda: last_id in on_b.hold_events("hold.created"), 5, "the survivor's socket heard")
                exposition = (await to_b.get("/metrics")).text
                assert sample(exposition, "capacity_http_requests_total", status="500") == 0
