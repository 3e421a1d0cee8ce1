"""Holds under contention: POST /api/holds bursts against the real server, and the raw-SQL ceiling.

For the engine given (--db sqlite, or --db postgres with --database-url) the script
  1. builds a database migrated to head (a SQLite file in a temp dir, or the PostgreSQL database
     given, whose public schema it drops and rebuilds), with one area, one provider, an AMHP whose
     areas include the people's home area, and a fresh set of units for every run below, so each run
     starts with no holds: `spread` runs get 100 units with places to spare (almost every hold
     succeeds), `one` runs get a single unit with 50 places (the rest are 409s, and overbooking would
     show);
  2. times the raw transaction with no HTTP and no ORM, straight on the driver: BEGIN (IMMEDIATE on
     SQLite), SELECT the unit (FOR UPDATE on PostgreSQL), count its live holds, INSERT the hold (or,
     when full, the unmet-demand row the API writes), COMMIT; for 8, 32 and 128 workers over 100
     units, 10 units (the reference figure) and 1 unit. PostgreSQL: asyncpg, the workers sharing at
     most 40 connections (the server's pool: 20 + 20 overflow). SQLite: one process, a thread and a
     sqlite3 connection per worker, queued on a mutex for the single write transaction SQLite allows;
  3. as a diagnostic, calls the service (capacity.booking.holds.create_hold) directly with the same
     workers, so that HTTP and framework cost can be told apart from service and ORM cost;
  4. starts the real server (uvicorn, capacity.app:create_app, settings from the environment) on
     127.0.0.1, logs in as the AMHP, and for 8, 32 and 128 concurrent clients (closed loop, one
     keep-alive connection each) posts holds for a fixed time, spread over 100 units and all on one;
  5. after every run counts live holds per unit in the database: overbookings (live holds plus
     active placements beyond open places) must be 0, and the holds in the database must equal the
     201 answers;
then prints a table per engine with holds/s, requests/s, p50/p99, status counts, overbookings, the
raw rate and the ratio API / raw, where the machine's CPU went during each run (the server,
PostgreSQL, this process, everything else, hypervisor steal; and CPU ms per answer), and whether the
aims were met. The `other` CPU column says how much a run was disturbed by other work on the machine.

    .venv/bin/python bench/holds.py --db sqlite
    .venv/bin/python bench/holds.py --db postgres \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/capacity_h4

Every loop is bounded in time (--duration, --raw-duration) and in count (--max-requests per client).
With the defaults a run takes about 1.5 minutes per engine. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import random
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _harness import (
    ROOT,
    Connection,
    CpuMeter,
    LatencyPercentiles,
    add_database_options,
    capacity_env,
    check_database_options,
    database,
    engine_version,
    fresh_database,
    log,
    login,
    postgres_database,
    run_main,
    scratch,
    server,
    user_row,
)

sys.path.insert(0, str(ROOT))  # run from anywhere: `python bench/holds.py`

from sqlalchemy import bindparam, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from capacity.auth.models import User, UserArea  # noqa: E402
from capacity.auth.security import Actor  # noqa: E402
from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement  # noqa: E402
from capacity.booking.units.models import Area, Provider, Unit, UnitLocalArea
from capacity.db.engine import Database  # noqa: E402
from capacity.settings import Settings  # noqa: E402

AMHP_USER, AMHP_PASSWORD = "bench-amhp", "bench-password"
HOME_AREA = "E06000022"
UNIT_KIND = "crisis_house"  # 4-hour holds: nothing expires during the run
SPREAD_PLACES = 1_000_000  # never full
AIM_RATIO = 0.40  # API holds/s at least this share of the raw rate (PostgreSQL, 32 clients)
AIM_P99_MS = 100.0
AIM_CLIENTS = 32
# SQLAlchemy's pool in the server: 20 + 20 overflow on PostgreSQL. The raw baseline uses no more
# connections than that, so it is the ceiling of the same shape, not of a wider one.
PG_MAX_CONNECTIONS = 40


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


@dataclass
class Run(LatencyPercentiles):
    """One timed run: answers by status, latencies (seconds) of every answer, wall time."""

    label: str
    clients: int
    placement: str  # spread | one | ten
    units: list[str]
    elapsed: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    overbooked: int | None = None
    rows_match: bool | None = None  # holds in the database == 201 answers
    cpu: dict[str, float] = field(default_factory=dict)  # CpuMeter shares of one core during the run

    @property
    def created(self) -> int:
        return self.statuses[201]

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def holds_per_s(self) -> float:
        return self.created / self.elapsed if self.elapsed else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0

    def answered(self, status: int, t0: float) -> None:
        """Count one answer, and its latency from `t0` (perf_counter)."""
        self.statuses[status] += 1
        self.latencies.append(time.perf_counter() - t0)

    def cpu_ms(self, who: str) -> float:
        """CPU milliseconds `who` spent per answer during the run."""
        return self.cpu[who] * self.elapsed / self.requests * 1000 if self.requests else math.nan

    def other(self) -> int:
        return sum(v for k, v in self.statuses.items() if k not in (201, 409, 503))

    def summary(self) -> str:
        cpu = ", ".join(f"{k} {v:.0%}" for k, v in self.cpu.items())
        return (
            f"{self.label} {self.placement} x{self.clients}: {self.holds_per_s:,.0f} holds/s, "
            f"{self.requests_per_s:,.0f} req/s, p50 {self.p50:.1f} ms, p99 {self.p99:.1f} ms, "
            f"{dict(self.statuses)}, overbooked {self.overbooked}; CPU (1 core = 100%): {cpu}"
        )


def cpu_shares(meter: CpuMeter) -> dict[str, float]:
    """A run's CPU columns, in the table's order: the server (if the run had one), this process (the load
    generator, or the raw workers), PostgreSQL (the backends of this database, if it is one), everything
    else, and time stolen by the hypervisor. On a shared machine `other` says how clean a run was."""
    c = meter.cores
    shares = {"server": c.server, "client": c.client, "postgres": c.postgres, "other": c.other, "steal": c.steal}
    if not meter.server_pid:
        del shares["server"]
    if not meter.database:
        del shares["postgres"]
    return shares


async def timed(
    run: Run,
    url: str,
    duration: float,
    worker: Callable[[int, float], Awaitable[None]],
    server_pid: int | None = None,
    grace: float = 30,
) -> None:
    """`worker(k, deadline)` for k in range(run.clients), all told to stop at `duration` seconds from now
    (and cancelled `grace` seconds later, if need be); records the wall time and where the CPU went."""
    meter = CpuMeter(server_pid, postgres_database(url))
    with meter:
        t0 = time.perf_counter()
        await asyncio.wait_for(
            asyncio.gather(*(worker(k, t0 + duration) for k in range(run.clients))), duration + grace
        )
        run.elapsed = time.perf_counter() - t0
    run.cpu = cpu_shares(meter)


# --------------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------------


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass
class World:
    provider_id: str
    user_id: str
    unit_sets: dict[str, list[str]] = field(default_factory=dict)
    places: dict[str, int] = field(default_factory=dict)


def unit_row(provider_id: str, name: str, places: int, now: datetime) -> dict:
    return dict(
        id=new_id(),
        provider_id=provider_id,
        area_code=HOME_AREA,
        name=name,
        kind=UNIT_KIND,
        lat=51.38,
        lon=-2.36,
        postcode=None,
        sex="any",
        min_age=18,
        max_age=None,
        mother_and_baby=False,
        accepts_intoxicated=False,
        accepts_detained=True,
        max_stay_days=14,
        daily_cost=180.0,
        status="open",
        open_places=places,
        closed_reason=None,
        last_confirmed_at=now,
        last_confirmed_by="bench",
    )


def plan_unit_sets(clients: list[int]) -> dict[str, tuple[int, int]]:
    """Name -> (units, places each): a fresh set for every run, so every run starts with no holds."""
    sets: dict[str, tuple[int, int]] = {
        "warm-raw": (10, SPREAD_PLACES),
        "warm-api": (100, SPREAD_PLACES),
        "warm-svc": (100, SPREAD_PLACES),
    }
    for n in clients:
        sets[f"raw-spread-{n}"] = (100, SPREAD_PLACES)
        sets[f"raw-ten-{n}"] = (10, SPREAD_PLACES)
        sets[f"raw-one-{n}"] = (1, 50)
        sets[f"svc-spread-{n}"] = (100, SPREAD_PLACES)
        sets[f"api-spread-{n}"] = (100, SPREAD_PLACES)
        sets[f"api-one-{n}"] = (1, 50)
    return sets


async def build_database(args, url: str) -> World:
    await fresh_database(url)
    now = datetime.now(UTC)
    world = World(provider_id=new_id(), user_id=new_id())
    units: list[dict] = []
    for name, (count, places) in plan_unit_sets(args.clients).items():
        rows = [unit_row(world.provider_id, f"Bench {name} {i:03d}", places, now) for i in range(count)]
        world.unit_sets[name] = [r["id"] for r in rows]
        world.places.update({r["id"]: places for r in rows})
        units += rows
    async with database(url) as db:
        async with db.engine.begin() as conn:
            await conn.execute(
                insert(Area.__table__),
                [dict(code=HOME_AREA, name="Bench Area", region="South West", lat=51.38, lon=-2.36)],
            )
            await conn.execute(
                insert(Provider.__table__), [dict(id=world.provider_id, name="Bench Provider", sector="voluntary")]
            )
            await conn.execute(insert(Unit.__table__), units)
            # Every unit is local to the bench's one home area: its placements are never out of area.
            await conn.execute(
                insert(UnitLocalArea.__table__), [dict(unit_id=u["id"], area_code=HOME_AREA) for u in units]
            )
            amhp = user_row(world.user_id, AMHP_USER, AMHP_PASSWORD, "amhp", now)
            await conn.execute(insert(User.__table__), [amhp])
            await conn.execute(insert(UserArea.__table__), [dict(user_id=world.user_id, area_code=HOME_AREA)])
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    log(f"database ready: {len(units)} units in {len(world.unit_sets)} sets")
    return world


async def check_run(url: str, run: Run, places: dict[str, int]) -> None:
    """Overbookings (live holds + active placements beyond open places) and 201s == rows, from the DB."""
    now = datetime.now(UTC)
    async with database(url) as db, db.engine.connect() as conn:
        live = dict(
            (
                await conn.execute(
                    select(Hold.unit_id, func.count())
                    .where(
                        Hold.unit_id.in_(bindparam("ids", expanding=True)), Hold.status == "held", Hold.expires_at > now
                    )
                    .group_by(Hold.unit_id),
                    {"ids": run.units},
                )
            ).all()
        )
        occupied = dict(
            (
                await conn.execute(
                    select(Placement.unit_id, func.count())
                    .where(Placement.unit_id.in_(bindparam("ids", expanding=True)), Placement.ended_at.is_(None))
                    .group_by(Placement.unit_id),
                    {"ids": run.units},
                )
            ).all()
        )
    run.overbooked = sum(max(0, live.get(u, 0) + occupied.get(u, 0) - places[u]) for u in run.units)
    run.rows_match = sum(live.values()) == run.created


# --------------------------------------------------------------------------------------------------
# The raw transaction, straight on the driver
# --------------------------------------------------------------------------------------------------

HOLD_COLUMNS = (
    "id",
    "unit_id",
    "status",
    "purpose",
    "created_by",
    "created_at",
    "expires_at",
    "risk_flags",
    "extensions",
    "extended_minutes",
    "person_ref",
    "person_age",
    "person_sex",
    "home_area",
)
HOLD_SECONDS = Settings().hold_seconds[UNIT_KIND]


def hold_values(unit_id: str, created: object, expires: object, ref: str) -> tuple:
    """The HOLD_COLUMNS of one hold, as the API writes it (times in the driver's form)."""
    return (new_id(), unit_id, "held", "crisis", AMHP_USER, created, expires, "[]", 0, 0, ref, 30, "female", HOME_AREA)


def _sqlite_time(t: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite (naive, ISO with a space), so comparisons agree."""
    return t.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def raw_sqlite(path: str, run: Run, workers: int, duration: float, max_requests: int, serialise: bool = True) -> None:
    """Worker threads, a sqlite3 connection each, WAL and busy_timeout as the server sets them.

    SQLite runs one write transaction at a time. With `serialise` the threads queue for it on a mutex
    in this process, as one process's writers best do; without, they meet at BEGIN IMMEDIATE and wait
    in SQLite's busy handler, which sleeps 1 to 100 ms between tries."""
    writer = threading.Lock() if serialise else contextlib.nullcontext()
    insert_hold = f"INSERT INTO holds ({', '.join(HOLD_COLUMNS)}) VALUES ({', '.join('?' for _ in HOLD_COLUMNS)})"
    lock = threading.Lock()
    start_gate = threading.Barrier(workers + 1)
    deadline = [0.0]

    def transaction(conn: sqlite3.Connection, unit_id: str, ref: str) -> int:
        conn.execute("BEGIN IMMEDIATE")
        now = datetime.now(UTC)
        places, status = conn.execute("SELECT open_places, status FROM units WHERE id = ?", (unit_id,)).fetchone()
        held = conn.execute(
            "SELECT count(*) FROM holds WHERE unit_id = ? AND status = 'held' AND expires_at > ?",
            (unit_id, _sqlite_time(now)),
        ).fetchone()[0]
        if status == "open" and held < places:
            expires = now + timedelta(seconds=HOLD_SECONDS)
            conn.execute(insert_hold, hold_values(unit_id, _sqlite_time(now), _sqlite_time(expires), ref))
            code = 201
        else:
            conn.execute(
                "INSERT INTO unmet_demand (id, at, source, kind, home_area, unit_id) VALUES (?, ?, 'hold', ?, ?, ?)",
                (new_id(), _sqlite_time(now), UNIT_KIND, HOME_AREA, unit_id),
            )
            code = 409
        conn.execute("COMMIT")
        return code

    def worker(k: int) -> None:
        rng = random.Random(k)
        conn = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        statuses: Counter = Counter()
        latencies: list[float] = []
        start_gate.wait()
        try:
            for i in range(max_requests):
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                try:
                    with writer:
                        code = transaction(conn, rng.choice(run.units), f"R{k}-{i}")
                except sqlite3.OperationalError:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    code = 503
                statuses[code] += 1
                latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()
            with lock:
                run.statuses.update(statuses)
                run.latencies.extend(latencies)

    threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(workers)]
    for t in threads:
        t.start()
    with CpuMeter() as meter:
        t0 = time.perf_counter()
        deadline[0] = t0 + duration
        start_gate.wait()
        for t in threads:
            t.join(timeout=duration + 30)
        run.elapsed = time.perf_counter() - t0
    run.cpu = cpu_shares(meter)


async def raw_postgres(url: str, run: Run, workers: int, duration: float, max_requests: int) -> None:
    """asyncpg, `workers` tasks over a pool of at most PG_MAX_CONNECTIONS connections (the server's cap)."""
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    size = min(workers, PG_MAX_CONNECTIONS)
    pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size)
    insert_hold = (
        f"INSERT INTO holds ({', '.join(HOLD_COLUMNS)}) "
        f"VALUES ({', '.join(f'${i + 1}' for i in range(len(HOLD_COLUMNS)))})"
    )

    async def worker(k: int, deadline: float) -> None:
        rng = random.Random(k)
        for i in range(max_requests):
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            unit_id = rng.choice(run.units)
            async with pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await conn.execute("SET LOCAL lock_timeout = 2000")
                        now = datetime.now(UTC)
                        places, status = await conn.fetchrow(
                            "SELECT open_places, status FROM units WHERE id = $1 FOR UPDATE", unit_id
                        )
                        held = await conn.fetchval(
                            "SELECT count(*) FROM holds WHERE unit_id = $1 AND status = 'held' AND expires_at > $2",
                            unit_id,
                            now,
                        )
                        if status == "open" and held < places:
                            expires = now + timedelta(seconds=HOLD_SECONDS)
                            await conn.execute(insert_hold, *hold_values(unit_id, now, expires, f"R{k}-{i}"))
                            code = 201
                        else:
                            await conn.execute(
                                "INSERT INTO unmet_demand (id, at, source, kind, home_area, unit_id) "
                                "VALUES ($1, $2, 'hold', $3, $4, $5)",
                                new_id(),
                                now,
                                UNIT_KIND,
                                HOME_AREA,
                                unit_id,
                            )
                            code = 409
                except (asyncpg.exceptions.LockNotAvailableError, asyncpg.exceptions.DeadlockDetectedError):
                    code = 503
            run.answered(code, t0)

    async with pool:  # closed however the run ends
        await timed(run, url, duration, worker)


async def raw_run(args, url: str, world: World, set_name: str, placement: str, workers: int, duration: float) -> Run:
    run = Run("raw", workers, placement, world.unit_sets[set_name])
    if url.startswith("sqlite"):
        path = make_url(url).database
        await asyncio.to_thread(raw_sqlite, path, run, workers, duration, args.max_requests)
    else:
        await raw_postgres(url, run, workers, duration, args.max_requests)
    await check_run(url, run, world.places)
    log("  " + run.summary())
    return run


# --------------------------------------------------------------------------------------------------
# The service without HTTP (diagnostic): create_hold as the controller calls it
# --------------------------------------------------------------------------------------------------


async def service_run(args, url: str, world: World, set_name: str, workers: int, duration: float) -> Run:
    from capacity.booking.holds.schemas import HoldIn
    from capacity.booking.holds.service import create_hold
    from capacity.booking.persons import PersonIn
    from capacity.errors import Conflict, ServiceBusy

    run = Run("service", workers, "spread", world.unit_sets[set_name])
    db = Database(Settings.from_env(capacity_env(url)))
    actor = Actor(world.user_id, AMHP_USER, "amhp", None, (HOME_AREA,))

    async def worker(k: int, deadline: float) -> None:
        rng = random.Random(k)
        for i in range(args.max_requests):
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            body = HoldIn(
                unit_id=rng.choice(run.units),
                purpose="crisis",
                person=PersonIn(ref=f"S{workers}-{k}-{i}", age=30, sex="female", home_area=HOME_AREA),
            )
            try:
                await create_hold(db, actor, body)
                code = 201
            except Conflict:
                code = 409
            except ServiceBusy:
                code = 503
            run.answered(code, t0)

    try:
        await timed(run, url, duration, worker)
    finally:
        await db.dispose()
    await check_run(url, run, world.places)
    log("  " + run.summary())
    return run


# --------------------------------------------------------------------------------------------------
# The API under load
# --------------------------------------------------------------------------------------------------


def hold_body(unit_id: str, ref: str) -> bytes:
    return (
        b'{"unit_id":"'
        + unit_id.encode()
        + b'","purpose":"crisis","person":{"ref":"'
        + ref.encode()
        + b'","age":30,"sex":"female","home_area":"'
        + HOME_AREA.encode()
        + b'"}}'
    )


async def api_run(
    args,
    url: str,
    world: World,
    port: int,
    pid: int,
    token: str,
    set_name: str,
    placement: str,
    clients: int,
    duration: float,
) -> Run:
    """`clients` closed-loop clients, one keep-alive connection each, for `duration` seconds."""
    run = Run("api", clients, placement, world.unit_sets[set_name])
    conns = [Connection(port, token) for _ in range(clients)]
    # Open every connection before the clock starts, so the run measures holds, not handshakes.
    await asyncio.gather(*(c.get("/health") for c in conns))
    bad: list[bytes] = []

    async def client(k: int, deadline: float) -> None:
        rng = random.Random(k)
        conn = conns[k]
        for i in range(args.max_requests):
            t0 = time.perf_counter()
            if t0 >= deadline:
                return
            try:
                status, data = await conn.post("/api/holds", hold_body(rng.choice(run.units), f"{set_name}-{k}-{i}"))
            except (OSError, asyncio.IncompleteReadError):
                status, data = 599, b"connection failed"
            run.answered(status, t0)
            if status not in (201, 409) and len(bad) < 3:
                bad.append(f"{status} ".encode() + data[:300])

    try:
        await timed(run, url, duration, client, server_pid=pid, grace=60)
    finally:
        for c in conns:
            c.close()
    for b in bad:
        log(f"  unexpected answer: {b!r}")
    await check_run(url, run, world.places)
    log("  " + run.summary())
    return run


# --------------------------------------------------------------------------------------------------
# The whole run, and the report
# --------------------------------------------------------------------------------------------------


@dataclass
class Results:
    engine: str
    raw: dict[tuple[str, int], Run] = field(default_factory=dict)  # (placement, clients)
    service: dict[int, Run] = field(default_factory=dict)
    api: dict[tuple[str, int], Run] = field(default_factory=dict)


async def run_all(args, url: str, workdir: Path) -> Results:
    world = await build_database(args, url)
    results = Results(await engine_version(url))

    log("raw transaction, no HTTP (warm-up, then timed)")
    await raw_run(args, url, world, "warm-raw", "ten", 8, 1.0)
    for n in args.clients:
        for placement in ("spread", "ten", "one"):
            results.raw[(placement, n)] = await raw_run(
                args, url, world, f"raw-{placement}-{n}", placement, n, args.raw_duration
            )

    if not args.skip_service:
        log("service create_hold, no HTTP (diagnostic)")
        await service_run(args, url, world, "warm-svc", 8, 1.0)
        for n in args.clients:
            results.service[n] = await service_run(args, url, world, f"svc-spread-{n}", n, args.raw_duration)

    workers = ["--workers", str(args.workers)] if args.workers > 1 else []
    with server(workdir / "server.log", capacity_env(url), extra_args=workers) as (port, pid):
        token = login(port, AMHP_USER, AMHP_PASSWORD)
        log(f"server up on 127.0.0.1:{port} (pid {pid}); warming up")
        await api_run(args, url, world, port, pid, token, "warm-api", "spread", 8, 2.0)
        for n in args.clients:
            for placement in ("spread", "one"):
                await asyncio.sleep(0.5)
                results.api[(placement, n)] = await api_run(
                    args, url, world, port, pid, token, f"api-{placement}-{n}", placement, n, args.duration
                )
    return results


def report(args, results: Results) -> bool:
    is_pg = results.engine.startswith("PostgreSQL")
    print()
    workers = "one uvicorn process" if args.workers == 1 else f"uvicorn with {args.workers} workers"
    print(
        f"holds benchmark: {results.engine}; {os.cpu_count()} CPU cores shared by the server ({workers}), "
        f"the database and this load generator; load average at the end {open('/proc/loadavg').read()[:14]}"
    )
    print(
        f"API: closed loop, each client one keep-alive connection, POST /api/holds for {args.duration:g} s per "
        f"run; raw: the same transaction on the driver ({'asyncpg' if is_pg else 'sqlite3 in threads'}), "
        f"{args.raw_duration:g} s per run"
    )
    print(
        "spread: 100 units, places to spare; ten: 10 units (the reference figure); one: 1 unit with 50 places "
        "(the rest are 409s)"
    )
    print(
        "API/raw: holds/s against the raw holds/s at the same clients and placement (one unit: answers/s, "
        "mostly 409s); CPU: shares of one core during the run (srv the server, pg the backends of this database, "
        "bench this process, other everything else on the machine, steal taken by the hypervisor); srv ms, pg ms: "
        "CPU milliseconds per answer of the server and of PostgreSQL"
    )
    print()
    header = (
        f"{'run':<8}{'place':<7}{'clients':>7}{'holds/s':>9}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'201':>7}{'409':>7}{'503':>5}{'other':>6}{'overbooked':>11}{'raw/s':>7}{'API/raw':>8}"
        f"  {'CPU: srv':>8}{'pg':>5}{'bench':>6}{'other':>6}{'steal':>6}{'srv ms':>7}{'pg ms':>6}"
    )
    print(header)
    print("-" * len(header))

    def row(r: Run, raw: Run | None) -> None:
        ratio = ""
        raw_rate = ""
        if raw is not None:
            # Spread: holds per second against holds per second. One unit: both are mostly 409s, so
            # compare answered transactions per second.
            mine, theirs = (
                (r.holds_per_s, raw.holds_per_s) if r.placement == "spread" else (r.requests_per_s, raw.requests_per_s)
            )
            raw_rate = f"{raw.requests_per_s:,.0f}"
            ratio = f"{mine / theirs:.0%}" if theirs else "n/a"
        over = f"{r.overbooked}" + ("" if r.rows_match else " (!rows)")
        cpu = "".join(
            f"{f'{r.cpu[k]:.0%}' if k in r.cpu else '':>{w}}"
            for k, w in (("server", 8), ("postgres", 5), ("client", 6), ("other", 6), ("steal", 6))
        )
        per = "".join(f"{r.cpu_ms(k):>{w}.2f}" if k in r.cpu else " " * w for k, w in (("server", 7), ("postgres", 6)))
        print(
            f"{r.label:<8}{r.placement:<7}{r.clients:>7}{r.holds_per_s:>9,.0f}{r.requests_per_s:>8,.0f}"
            f"{r.p50:>8.1f}{r.p99:>8.1f}{r.statuses[201]:>7}{r.statuses[409]:>7}{r.statuses[503]:>5}"
            f"{r.other():>6}{over:>11}{raw_rate:>7}{ratio:>8}  {cpu}{per}"
        )

    for n in args.clients:
        for placement in ("spread", "ten", "one"):
            row(results.raw[(placement, n)], None)
        if n in results.service:
            row(results.service[n], results.raw[("spread", n)])
        for placement in ("spread", "one"):
            row(results.api[(placement, n)], results.raw[(placement, n)])
        print()

    all_runs = [*results.raw.values(), *results.service.values(), *results.api.values()]
    overbooked = sum(r.overbooked or 0 for r in all_runs)
    mismatched = [r for r in all_runs if not r.rows_match]
    ok = overbooked == 0 and not mismatched
    print(
        f"overbookings across all runs: {overbooked} (must be 0); runs whose 201s != holds in the database: "
        f"{len(mismatched)}"
    )
    if AIM_CLIENTS in args.clients:
        api = results.api[("spread", AIM_CLIENTS)]
        raw = results.raw[("spread", AIM_CLIENTS)]
        ten = results.raw[("ten", AIM_CLIENTS)]
        ratio = api.holds_per_s / raw.holds_per_s if raw.holds_per_s else 0.0
        met_ratio, met_p99 = ratio >= AIM_RATIO, api.p99 <= AIM_P99_MS
        scope = "" if is_pg else " (the aim is set for PostgreSQL; shown for comparison)"
        print(
            f"aim{scope}: at {AIM_CLIENTS} clients over 100 units, API >= {AIM_RATIO:.0%} of the raw rate: "
            f"{'MET' if met_ratio else 'NOT MET'} ({api.holds_per_s:,.0f} / {raw.holds_per_s:,.0f} holds/s = "
            f"{ratio:.0%}; against the raw rate over 10 units, {ten.holds_per_s:,.0f}/s: "
            f"{api.holds_per_s / ten.holds_per_s if ten.holds_per_s else 0:.0%})"
        )
        print(
            f"aim{scope}: p99 <= {AIM_P99_MS:g} ms at {AIM_CLIENTS} clients: {'MET' if met_p99 else 'NOT MET'} "
            f"(spread {api.p99:.1f} ms, one unit {results.api[('one', AIM_CLIENTS)].p99:.1f} ms)"
        )
    return ok


async def main(args) -> int:
    with scratch("capacity-bench-holds-", args.keep) as workdir:
        url = args.database_url if args.db == "postgres" else f"sqlite+aiosqlite:///{workdir / 'holds.db'}"
        started = time.perf_counter()
        results = await run_all(args, url, workdir)
        ok = report(args, results)
        log(f"done in {time.perf_counter() - started:.0f} s")
        return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_options(parser)
    parser.add_argument("--clients", default="8,32,128", help="comma-separated concurrent clients per burst")
    parser.add_argument("--duration", type=float, default=5, help="seconds of each API burst")
    parser.add_argument("--raw-duration", type=float, default=3, help="seconds of each raw/service run")
    parser.add_argument("--max-requests", type=int, default=50_000, help="per client per run, a bound on the loop")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default one)")
    parser.add_argument("--skip-service", action="store_true", help="skip the service-without-HTTP diagnostic")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (SQLite file, server log)")
    args = parser.parse_args(argv)
    args.clients = [int(c) for c in args.clients.split(",")]
    check_database_options(parser, args)
    if not 0 < args.duration <= 60 or not 0 < args.raw_duration <= 60:
        parser.error("--duration and --raw-duration: 0-60 s")
    if not 1 <= args.workers <= 8:
        parser.error("--workers 1-8")
    if not all(0 < c <= 256 for c in args.clients) or not 0 < args.max_requests <= 1_000_000:
        parser.error("--clients 1-256 each, --max-requests 1-1000000")
    return args


if __name__ == "__main__":
    sys.exit(run_main(main(parse_args())))
