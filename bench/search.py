"""Units search under load: a synthetic national data set, typical AMHP queries, open-loop HTTP load.

For each size (20 units, then --units, default 2,000) the script
  1. builds a database (SQLite file in a temp dir, or the PostgreSQL database given) migrated to head
     and filled with synthetic areas, providers, units, a year of declaration history, holds and
     placements, using SQLAlchemy Core bulk inserts (COPY for the declaration history on PostgreSQL);
  2. times the same searches without HTTP (the baselines): `search_units` through a `Database`
     session, and the bare SQL statement it runs (Core rows, no ORM objects);
  3. starts the real server (uvicorn, capacity.app:create_app, settings from env) on 127.0.0.1,
     logs in as an AMHP, and drives GET /api/units open loop at a steady 200/s, then steps the rate
     up to find the highest one whose p99 stays under 50 ms; GET /health and GET /api/me at 200/s
     are the HTTP baselines (framework and auth cost);
then prints one table with the figures, the ratios and whether each aim was met.

Open loop: request i is due at start + i/rate whatever happened to earlier ones, and its latency is
measured from that due time, so a slow server cannot slow the client down and hide its own queueing
(coordinated omission).

The server, the database and this client share the machine's cores, and so may other people's jobs:
each run waits (a bounded time) for the machine to be quiet, and reports the CPU the server (and the
PostgreSQL backends serving it), the client and everything else used, plus the service's CPU per
request, which other load disturbs far less than latency.

    .venv/bin/python bench/search.py
    .venv/bin/python bench/search.py --db postgres \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/capacity_h2

On PostgreSQL the script DROPS AND RECREATES the public schema of the database given (once per
size), so give it a database of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from _harness import (
    ROOT,
    Cores,
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
    read_response,
    run_main,
    scratch,
    server,
    settings,
    user_row,
)

sys.path.insert(0, str(ROOT))  # run from anywhere: `python bench/search.py`

from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from capacity.auth.models import User, UserArea  # noqa: E402
from capacity.booking.holds.models import Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units import availability  # noqa: E402
from capacity.booking.units.availability import UnitSearch, search_units  # noqa: E402
from capacity.booking.units.models import Area, AvailabilityDeclaration, Provider, Unit, UnitAreaRule, UnitLocalArea
from capacity.codes import KINDS  # noqa: E402
from capacity.db.engine import Database  # noqa: E402

AMHP_USER, AMHP_PASSWORD = "amhp", "bench-password"
SLO_MS = 50.0  # the step search keeps p99 under this
AIM_P99_MS = 25.0  # at 200/s with the large data set
AIM_P50_RATIO = 1.5  # large p50 / small p50 (issue 15: within 1.5x)
FIXED_RATE = 200


# --------------------------------------------------------------------------------------------------
# Synthetic national data set
# --------------------------------------------------------------------------------------------------

# (region, centre lat, centre lon, spread in degrees, share of areas): rough, but keeps areas on land
# and clustered the way social services authorities are.
REGIONS = [
    ("North East", 54.85, -1.65, 0.30, 0.06),
    ("North West", 53.65, -2.60, 0.45, 0.14),
    ("Yorkshire and The Humber", 53.80, -1.30, 0.40, 0.10),
    ("East Midlands", 52.90, -0.95, 0.45, 0.06),
    ("West Midlands", 52.50, -2.10, 0.40, 0.10),
    ("East of England", 52.20, 0.40, 0.45, 0.08),
    ("London", 51.50, -0.12, 0.12, 0.22),
    ("South East", 51.20, -0.60, 0.45, 0.14),
    ("South West", 50.90, -3.00, 0.55, 0.10),
]
ENGLAND_BOX = (49.95, 55.80, -5.70, 1.75)  # lat min, lat max, lon min, lon max

# Share of units of each kind, and the range of places a unit of that kind has.
KIND_MIX = {
    "s136_suite": (0.12, (1, 3)),
    "crisis_house": (0.14, (3, 8)),
    "community_bed": (0.12, (2, 6)),
    "respite": (0.08, (2, 5)),
    "acute_adult": (0.30, (10, 24)),
    "acute_older_adult": (0.14, (10, 20)),
    "picu": (0.10, (6, 12)),
}
assert set(KIND_MIX) == set(KINDS)

# A typical AMHP search: which kinds, the person's age range (weights).
QUERY_MIX = [
    (("s136_suite",), (16, 70), 0.35),
    (("acute_adult",), (18, 64), 0.20),
    (("crisis_house",), (18, 70), 0.10),
    (("crisis_house", "community_bed"), (18, 70), 0.10),
    (("picu",), (18, 64), 0.10),
    (("acute_older_adult",), (65, 90), 0.08),
    (("respite",), (18, 70), 0.07),
]

PROVIDER_SECTORS = ["nhs"] * 24 + ["private"] * 10 + ["voluntary"] * 6  # 40 providers


@dataclass
class World:
    """What the generator made, kept for building queries."""

    areas: list[tuple[str, float, float]] = field(default_factory=list)  # code, lat, lon
    counts: dict[str, int] = field(default_factory=dict)


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def clamp_to_england(lat: float, lon: float) -> tuple[float, float]:
    lat_min, lat_max, lon_min, lon_max = ENGLAND_BOX
    return min(max(lat, lat_min), lat_max), min(max(lon, lon_min), lon_max)


def make_areas(rng: random.Random, count: int = 150) -> list[dict]:
    """ONS-like codes: unitary (E06), metropolitan (E08), London (E09), county (E10)."""
    prefixes = ["E06"] * 60 + ["E08"] * 36 + ["E09"] * 32 + ["E10"] * 22
    serial = {p: 0 for p in set(prefixes)}
    weights = [r[4] for r in REGIONS]
    areas = []
    for i in range(count):
        prefix = prefixes[i % len(prefixes)]
        serial[prefix] += 1
        region, lat, lon, spread, _ = rng.choices(REGIONS, weights)[0]
        lat, lon = clamp_to_england(rng.gauss(lat, spread), rng.gauss(lon, spread * 1.4))
        areas.append(
            dict(
                code=f"{prefix}{serial[prefix]:06d}",
                name=f"Bench Area {i + 1:03d}",
                region=region,
                lat=round(lat, 4),
                lon=round(lon, 4),
            )
        )
    return areas


def make_providers(rng: random.Random) -> list[dict]:
    """NHS trusts and voluntary providers are regional; private hospitals work nationally."""
    providers = []
    for i, sector in enumerate(PROVIDER_SECTORS):
        region = REGIONS[i % len(REGIONS)][0] if sector != "private" else None
        providers.append(
            dict(id=new_id(rng), name=f"Bench {sector.title()} Provider {i + 1:02d}", sector=sector, region=region)
        )
    return providers


def make_local_networks(areas: list[dict], providers: list[dict], units: list[dict]) -> list[dict]:
    """Each unit's local areas (what decides out of area): those of its provider's region, for the NHS and
    voluntary providers; a national private provider's units are local to none."""
    region = {p["id"]: p["region"] for p in providers}
    by_region: dict[str, list[str]] = {}
    for a in areas:
        by_region.setdefault(a["region"], []).append(a["code"])
    return [
        dict(unit_id=u["id"], area_code=code) for u in units for code in by_region.get(region[u["provider_id"]], [])
    ]


def unit_eligibility(rng: random.Random, kind: str) -> dict:
    sex = "any" if kind == "s136_suite" else rng.choices(["any", "female", "male"], [0.7, 0.15, 0.15])[0]
    min_age, max_age = 18, None
    if kind == "s136_suite":
        min_age = rng.choice([16, 18])
    elif kind == "acute_older_adult":
        min_age = 65
    elif kind == "acute_adult" and rng.random() < 0.3:
        max_age = 64
    elif kind == "crisis_house" and rng.random() < 0.1:
        min_age, max_age = 16, 25  # young people's crisis houses
    return dict(sex=sex, min_age=min_age, max_age=max_age)


def make_units(rng: random.Random, count: int, areas: list[dict], providers: list[dict], now: datetime) -> list[dict]:
    kinds = list(KIND_MIX)
    kind_weights = [KIND_MIX[k][0] for k in kinds]
    by_region: dict[str, list[dict]] = {}
    for a in areas:
        by_region.setdefault(a["region"], []).append(a)
    units = []
    for i in range(count):
        provider = providers[i % len(providers)]
        area = rng.choice(by_region.get(provider["region"]) or areas)
        kind = rng.choices(kinds, kind_weights)[0]
        lat, lon = clamp_to_england(area["lat"] + rng.uniform(-0.08, 0.08), area["lon"] + rng.uniform(-0.12, 0.12))
        low, high = KIND_MIX[kind][1]
        # Most units confirmed within the last few hours; some are stale.
        confirmed = now - timedelta(minutes=rng.uniform(0, 10 * 60))
        units.append(
            dict(
                id=new_id(rng),
                provider_id=provider["id"],
                area_code=area["code"],
                name=f"Bench {kind.replace('_', ' ')} {i + 1:04d}",
                kind=kind,
                lat=round(lat, 5),
                lon=round(lon, 5),
                postcode=None,
                mother_and_baby=False,
                accepts_intoxicated=kind == "s136_suite",
                accepts_detained=True,
                max_stay_days=14 if kind in ("crisis_house", "community_bed", "respite") else None,
                daily_cost=float(rng.randint(150, 1100)),
                status="closed" if rng.random() < 0.05 else "open",
                open_places=rng.randint(low, high),
                closed_reason=None,
                last_confirmed_at=confirmed,
                last_confirmed_by="bench",
                **unit_eligibility(rng, kind),
            )
        )
        if units[-1]["status"] == "closed":
            units[-1]["closed_reason"] = "staffing"
    return units


def make_area_rules(rng: random.Random, units: list[dict], areas: list[dict]) -> list[dict]:
    """About 10% of units refuse a few areas; about 3% take people only from a short list."""
    rules = []
    codes = [a["code"] for a in areas]
    for u in units:
        roll = rng.random()
        if roll < 0.10:
            rules += [dict(unit_id=u["id"], area_code=c, rule="refuses") for c in rng.sample(codes, rng.randint(1, 3))]
        elif roll < 0.13:
            accepted = {u["area_code"], *rng.sample(codes, rng.randint(2, 5))}
            rules += [dict(unit_id=u["id"], area_code=c, rule="accepts") for c in accepted]
    return rules


def person(rng: random.Random, areas: list[dict], n: int) -> dict:
    return dict(
        person_ref=f"BENCH-{n:07d}",
        person_age=rng.randint(16, 90),
        person_sex=rng.choice(["female", "male"]),
        person_ethnicity=rng.choice("ABCDHJMNPRS"),
        home_area=rng.choice(areas)["code"],
    )


def make_placements(rng: random.Random, units: list[dict], areas: list[dict], now: datetime) -> list[dict]:
    """A year of ended placements (~20 a unit) and active ones filling 50-100% of each unit."""
    rows = []
    for u in units:
        occupied = round(u["open_places"] * rng.uniform(0.5, 1.0)) if u["kind"] != "s136_suite" else rng.randint(0, 1)
        history = [(now - timedelta(days=rng.uniform(2, 365)), False) for _ in range(20)]
        # Active s136 detentions began within the day (24-hour limit); bed stays within three weeks.
        active_hours = 20 if u["kind"] == "s136_suite" else 24 * 20
        active = [(now - timedelta(hours=rng.uniform(1, active_hours)), True) for _ in range(occupied)]
        for started, is_active in history + active:
            ended = None if is_active else started + timedelta(hours=rng.uniform(6, 24 * 30))
            s136 = u["kind"] == "s136_suite"
            rows.append(
                dict(
                    id=new_id(rng),
                    unit_id=u["id"],
                    hold_id=None,
                    legal_basis="s136" if s136 else "s2",
                    started_at=started,
                    ended_at=ended,
                    outcome=None if is_active else "discharged",
                    out_of_area=False,
                    oap_reason=None,
                    distance_km=None,
                    daily_cost=u["daily_cost"],
                    created_by="bench",
                    s136_clock_started_at=started if s136 else None,
                    s136_deadline=started + timedelta(hours=24) if s136 else None,
                    s136_extension_hours=None,
                    s136_extension_authorised_by=None,
                    s136_extension_reason=None,
                    s136_extension_recorded_at=None,
                    s136_breached_at=None,
                    **person(rng, areas, len(rows)),
                )
            )
    return rows


def make_holds(rng: random.Random, units: list[dict], areas: list[dict], now: datetime) -> list[dict]:
    """~25 finished holds a unit, live holds on ~15% of units, and a few `held` ones past expiry
    that the sweep has not marked yet (availability must ignore them)."""
    rows = []
    for u in units:
        specs = [
            (rng.choice(["arrived", "released", "expired", "declined"]), now - timedelta(days=rng.uniform(1, 365)))
            for _ in range(25)
        ]
        if rng.random() < 0.15:
            specs.append(("held", now - timedelta(minutes=rng.uniform(1, 30))))  # live
        if rng.random() < 0.05:
            specs.append(("held", now - timedelta(hours=rng.uniform(6, 12))))  # expired, unswept
        for status, created in specs:
            live = status == "held"
            expires = created + timedelta(hours=4)
            rows.append(
                dict(
                    id=new_id(rng),
                    unit_id=u["id"],
                    status=status,
                    purpose="s136" if u["kind"] == "s136_suite" else "crisis",
                    created_by="bench",
                    created_at=created,
                    expires_at=expires,
                    ended_at=None if live else created + timedelta(hours=1),
                    ended_by=None if live else "bench",
                    risk_flags=[],
                    note=None,
                    extensions=0,
                    extended_minutes=0,
                    decline_reason="staffing" if status == "declined" else None,
                    decline_note=None,
                    idempotency_key=None,
                    request_hash=None,
                    **person(rng, areas, len(rows)),
                )
            )
    return rows


def declaration_rows(rng: random.Random, units: list[dict], per_day: float) -> Iterator[dict]:
    """A year of each unit's declarations, oldest first, ending at its current figures.

    Most are confirmations of unchanged figures; some move the places by one or two. Rows are yielded
    unit by unit so that millions of them never sit in memory at once."""
    days = 365
    for u in units:
        n = max(1, round(days * per_day * rng.uniform(0.7, 1.3)))
        step = timedelta(days=days) / n
        # Walk back from today's figures, so that the newest declaration matches the unit row.
        places, status = u["open_places"], u["status"]
        history = []
        for k in range(n):
            at = u["last_confirmed_at"] - k * step - (timedelta(minutes=rng.uniform(0, 30)) if k else timedelta())
            change = 0 if rng.random() < 0.7 else rng.choice([-2, -1, 1, 2])
            before = max(0, places - change)
            history.append(
                dict(
                    id=new_id(rng),
                    unit_id=u["id"],
                    declared_at=at,
                    declared_by="bench",
                    before_open_places=before,
                    after_open_places=places,
                    before_status=status,
                    after_status=status,
                    closed_reason=u["closed_reason"] if status == "closed" else None,
                    note=None,
                    confirmation=change == 0,
                )
            )
            places = before
        yield from reversed(history)


def make_user(rng: random.Random, areas: list[dict], now: datetime) -> tuple[dict, list[dict]]:
    user = user_row(new_id(rng), AMHP_USER, AMHP_PASSWORD, "amhp", now)
    links = [dict(user_id=user["id"], area_code=a["code"]) for a in rng.sample(areas, 2)]
    return user, links


def chunks(rows: Iterable[dict], size: int) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def bulk_insert(conn, table, rows: Iterable[dict], copy: bool = False) -> int:
    """Core executemany in chunks of 20,000 rows: no ORM objects.

    `copy` (PostgreSQL only) streams the rows with COPY through asyncpg instead: the declaration
    history is millions of rows of plain values, and executemany would take minutes there."""
    count = 0
    if copy:
        raw = (await conn.get_raw_connection()).driver_connection
        columns = [c.name for c in table.columns]
        for batch in chunks(rows, 50_000):
            await raw.copy_records_to_table(
                table.name, records=[tuple(r[c] for c in columns) for r in batch], columns=columns
            )
            count += len(batch)
        return count
    for batch in chunks(rows, 20_000):
        await conn.execute(insert(table), batch)
        count += len(batch)
    return count


async def fill_database(url: str, n_units: int, seed: int, per_day: float) -> World:
    rng = random.Random(seed)
    now = datetime.now(UTC)  # the server runs on the real clock: holds and staleness are relative to now
    areas = make_areas(rng)
    providers = make_providers(rng)
    units = make_units(rng, n_units, areas, providers, now)
    user, user_areas = make_user(rng, areas, now)
    plan = [
        (Area, areas),
        (Provider, [{k: v for k, v in p.items() if k != "region"} for p in providers]),
        (Unit, units),
        (UnitLocalArea, make_local_networks(areas, providers, units)),
        (UnitAreaRule, make_area_rules(rng, units, areas)),
        (User, [user]),
        (UserArea, user_areas),
        (Hold, make_holds(rng, units, areas, now)),
        (Placement, make_placements(rng, units, areas, now)),
        (AvailabilityDeclaration, declaration_rows(rng, units, per_day)),
    ]
    world = World(areas=[(a["code"], a["lat"], a["lon"]) for a in areas])
    async with database(url) as db:
        async with db.engine.begin() as conn:
            for model, rows in plan:
                started = time.perf_counter()
                copy = model is AvailabilityDeclaration and not db.is_sqlite
                world.counts[model.__tablename__] = await bulk_insert(conn, model.__table__, rows, copy)
                log(
                    f"  {model.__tablename__}: {world.counts[model.__tablename__]:,} rows "
                    f"in {time.perf_counter() - started:.1f} s"
                )
        async with db.engine.begin() as conn:
            # Fresh planner statistics, as a long-running database would have.
            await conn.execute(text("ANALYZE"))
    return world


# --------------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------------


async def prepare_database(args, n_units: int, workdir: Path) -> tuple[str, World]:
    url = f"sqlite+aiosqlite:///{workdir / f'bench-{n_units}.db'}" if args.db == "sqlite" else args.database_url
    started = time.perf_counter()
    await fresh_database(url)
    world = await fill_database(url, n_units, args.seed, args.declarations_per_day)
    log(f"built the {n_units}-unit database in {time.perf_counter() - started:.1f} s")
    return url, world


# --------------------------------------------------------------------------------------------------
# Queries
# --------------------------------------------------------------------------------------------------


def make_queries(world: World, count: int, seed: int) -> list[UnitSearch]:
    """AMHP searches: kind(s), the person's age and sex, home area, near a point in it, limit 20."""
    rng = random.Random(seed + 1)
    weights = [w for _, _, w in QUERY_MIX]
    queries = []
    for _ in range(count):
        kinds, (age_low, age_high), _ = rng.choices(QUERY_MIX, weights)[0]
        code, lat, lon = rng.choice(world.areas)
        queries.append(
            UnitSearch(
                kinds=kinds,
                sex=rng.choice(["female", "male"]),
                age=rng.randint(age_low, age_high),
                home_area=code,
                near=(round(lat + rng.uniform(-0.05, 0.05), 4), round(lon + rng.uniform(-0.05, 0.05), 4)),
                available_only=rng.random() < 0.3,
                limit=20,
            )
        )
    return queries


def query_path(q: UnitSearch) -> str:
    params = [("kind", k) for k in q.kinds] + [
        ("age", q.age),
        ("sex", q.sex),
        ("home_area", q.home_area),
        ("near", f"{q.near[0]},{q.near[1]}"),
        ("limit", q.limit),
    ]
    if q.available_only:
        params.append(("available_only", "true"))
    return "/api/units?" + urlencode(params)


# --------------------------------------------------------------------------------------------------
# Baselines without HTTP
# --------------------------------------------------------------------------------------------------


def bare_statement(q: UnitSearch, now: datetime):
    """The SELECT of candidate units search_units runs first (built by its own helper, so it stays the same)."""
    return availability.search_statement(q)


@dataclass
class Direct:
    service: list[float]  # seconds per search_units call
    sql: list[float]  # seconds per bare statement
    empty: int  # searches that found no unit with a free place


async def time_direct(url: str, queries: list[UnitSearch]) -> Direct:
    """One at a time, through a Database made as the server makes it:
    `service`: search_units (SQL, ORM objects, distances, sort, limit);
    `sql`: the same SELECT executed as Core rows (the database and driver, no ORM objects)."""
    service_settings = settings(url)
    db = Database(service_settings)
    direct = Direct([], [], 0)
    try:
        for warm in (True, False):  # the first pass fills caches and the pool
            for q in queries:
                now = datetime.now(UTC)
                t0 = time.perf_counter()
                async with db.read() as reading:
                    found = await search_units(reading, q)
                t1 = time.perf_counter()
                async with db.engine.connect() as conn:
                    (await conn.execute(bare_statement(q, now))).all()
                t2 = time.perf_counter()
                if not warm:
                    direct.service.append(t1 - t0)
                    direct.sql.append(t2 - t1)
                    direct.empty += not any(f.available > 0 for f in found)
    finally:
        await db.dispose()
    return direct


# --------------------------------------------------------------------------------------------------
# The server under test, and where the machine's CPU goes
# --------------------------------------------------------------------------------------------------


@dataclass
class Target:
    """The server under test: where to send requests and whose CPU is the service's."""

    port: int
    pid: int
    url: str
    token: str | None = None

    async def database_pids(self) -> list[int]:
        """PostgreSQL backends connected to the bench database (they work for the server); none for SQLite,
        whose work happens in the server process itself."""
        if self.url.startswith("sqlite"):
            return []
        import asyncpg

        conn = await asyncpg.connect(make_url(self.url).set(drivername="postgresql").render_as_string(False))
        try:
            rows = await conn.fetch(
                "select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()"
            )
            return [r["pid"] for r in rows]
        finally:
            await conn.close()


async def wait_for_quiet(target: Target, limit: float, threshold: float = 0.3) -> float:
    """Wait (at most `limit` seconds) until other processes use less than `threshold` of a core over a
    second, so that their load does not pass for the server's latency. Returns what they last used."""
    deadline = time.monotonic() + limit
    while True:
        pids = await target.database_pids()
        meter = CpuMeter(target.pid).start(pids)
        await asyncio.sleep(1)
        others = meter.stop(pids).not_ours
        if others < threshold or time.monotonic() >= deadline:
            return others
        log(f"  other processes are using {others:.1f} cores; waiting for the machine to quieten")


# --------------------------------------------------------------------------------------------------
# A small HTTP/1.1 keep-alive client: far less CPU per request than a general client, which matters
# because the client shares the machine's cores with the server it measures.
# --------------------------------------------------------------------------------------------------


class HttpPool:
    # uvicorn closes a keep-alive connection after 5 s idle; one idle longer is not reused, since a
    # request written as the server closes it would fail through no fault of the server's.
    MAX_IDLE = 4.0

    def __init__(self, port: int, headers: dict[str, str], max_connections: int = 512) -> None:
        self.port = port
        self.header_bytes = "".join(f"{k}: {v}\r\n" for k, v in {"Host": "127.0.0.1", **headers}.items()).encode()
        self.slots = asyncio.Semaphore(max_connections)
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []

    async def connection(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        while self.idle:
            reader, writer, since = self.idle.pop()
            if time.monotonic() - since < self.MAX_IDLE:
                return reader, writer
            writer.close()
        return await asyncio.open_connection("127.0.0.1", self.port)

    async def get(self, path: str) -> tuple[int, bytes]:
        async with self.slots:
            reader, writer = await self.connection()
            try:
                writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\n" + self.header_bytes + b"\r\n")
                status, body, keep = await read_response(reader)
            except BaseException:
                writer.close()
                raise
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()
            return status, body

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def check_search(target: Target, path: str) -> None:
    """One answer read and checked, so that the load runs measure real searches, not 4xx."""
    pool = HttpPool(target.port, {"Authorization": f"Bearer {target.token}"})
    status, body = await pool.get(path)
    pool.close()
    if status != 200:
        raise SystemExit(f"search failed: {status} {body[:300]!r}")
    units = json.loads(body)
    if not 0 < len(units) <= 20 or "distance_km" not in units[0]:
        raise SystemExit(f"unexpected search answer: {body[:300]!r}")


# --------------------------------------------------------------------------------------------------
# Open-loop load
# --------------------------------------------------------------------------------------------------


@dataclass
class Run(LatencyPercentiles):
    rate: float
    latencies: list[float]  # seconds, successful requests only
    sent: int
    answered: int  # requests that got a response, whatever its status
    failures: Counter[str]  # non-200 statuses, client-side exceptions, and "unanswered" at the end
    late_ms: float  # how far behind schedule the client fired its worst request
    wall: float
    cpu: Cores

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    @property
    def expected(self) -> int:
        """Every request sent: in the percentiles a failed one counts as slower than any answer."""
        return self.sent

    @property
    def service_cpu_ms(self) -> float:
        """Server plus database CPU per answered request: unlike latency, little moved by other load."""
        return (self.cpu.server + self.cpu.postgres) * self.wall / max(1, self.answered) * 1000

    def passes(self) -> bool:
        return self.errors == 0 and self.p99 < SLO_MS


async def open_loop(
    pool: HttpPool, target: Target, paths: list[str], rate: float, duration: float, drain: float = 10.0
) -> Run:
    """Fire request i at start + i/rate, each in its own task, and time it from that instant."""
    n = max(1, int(rate * duration))
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    answered = 0
    late = 0.0

    async def one(path: str, due: float) -> None:
        nonlocal answered
        try:
            status, _ = await pool.get(path)
        except Exception as exc:
            failures[type(exc).__name__] += 1
            return
        answered += 1
        if status == 200:
            latencies.append(time.perf_counter() - due)
        else:
            failures[str(status)] += 1

    meter = CpuMeter(target.pid).start(await target.database_pids())
    start = time.perf_counter() + 0.02
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        late = max(late, time.perf_counter() - due)
        tasks.append(asyncio.create_task(one(paths[i % len(paths)], due)))
    _, pending = await asyncio.wait(tasks, timeout=drain)  # bounded: a stuck server cannot hang the bench
    for task in pending:
        task.cancel()
    if pending:
        failures["unanswered"] += len(pending)
    wall = time.perf_counter() - meter.started
    run = Run(rate, latencies, n, answered, failures, late * 1000, wall, meter.stop(await target.database_pids()))
    if pending:
        await asyncio.wait(pending)
    return run


async def measure(target: Target, paths: list[str], rate: float, duration: float, args, auth: bool = True) -> Run:
    """One run on fresh keep-alive connections (so idle timeouts between runs do not matter), begun
    when the machine is quiet."""
    await wait_for_quiet(target, args.quiet_wait)
    headers = {"Authorization": f"Bearer {target.token}"} if auth and target.token else {}
    pool = HttpPool(target.port, headers)
    try:
        run = await open_loop(pool, target, paths, rate, duration)
    finally:
        pool.close()
    db = f", database {run.cpu.postgres:.2f}" if not target.url.startswith("sqlite") else ""
    errors = f"{run.errors} {dict(run.failures)}" if run.failures else "0"
    log(
        f"  {paths[0].split('?')[0]} at {rate:g}/s for {duration:g} s: p50 {run.p50:.2f} ms, p99 {run.p99:.2f} ms, "
        f"errors {errors}; cores used: server {run.cpu.server:.2f}{db}, client {run.cpu.client:.2f}, "
        f"others {run.cpu.not_ours:.2f}; service CPU {run.service_cpu_ms:.2f} ms/request; "
        f"worst send lag {run.late_ms:.1f} ms"
    )
    return run


# Rates tried above 200/s (and below it when 200/s already fails), then refined by bisection.
RATES_UP = [250, 300, 400, 500, 600, 800, 1000, 1250, 1500, 2000, 2500, 3000]
RATES_DOWN = [150, 100, 50, 25, 10]


async def max_sustained(target: Target, paths: list[str], at_200: Run, args) -> tuple[float, bool]:
    """The highest rate whose p99 stays under SLO_MS with no errors (to within ~10%), and whether
    the ladder ran out before the server did."""

    async def passes(rate: float) -> bool:
        return (await measure(target, paths, rate, args.step_duration, args)).passes()

    first_fail: float | None
    if at_200.passes():
        best, first_fail = FIXED_RATE, None
        for rate in (r for r in RATES_UP if r <= args.max_rate):
            if not await passes(rate):
                first_fail = rate
                break
            best = rate
    else:
        best, first_fail = 0, FIXED_RATE
        for rate in RATES_DOWN:
            if await passes(rate):
                best = rate
                break
            first_fail = rate
    for _ in range(2):  # refine between the last pass and the first failure
        if first_fail is None or first_fail - best <= max(10, best * 0.1):
            break
        rate = round((best + first_fail) / 2, -1)
        best, first_fail = (rate, first_fail) if await passes(rate) else (best, rate)
    return best, first_fail is None


# --------------------------------------------------------------------------------------------------
# One size, end to end
# --------------------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    units: int
    counts: dict[str, int]
    engine: str
    direct: Direct
    health: Run
    me: Run
    search: Run
    max_rate: float
    max_rate_capped: bool


def median_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] * 1000


async def bench_size(args, n_units: int, workdir: Path) -> SizeResult:
    url, world = await prepare_database(args, n_units, workdir)
    queries = make_queries(world, 2000, args.seed)
    log(f"timing {args.direct_queries} searches directly (no HTTP)")
    direct = await time_direct(url, queries[: args.direct_queries])
    version = await engine_version(url)
    paths = [query_path(q) for q in queries]
    with server(workdir / f"server-{n_units}.log", capacity_env(url)) as (port, pid):
        target = Target(port, pid, url)
        target.token = login(port, AMHP_USER, AMHP_PASSWORD)
        await check_search(target, paths[0])
        log(f"server up on 127.0.0.1:{port} (pid {pid}); warming up")
        await measure(target, paths, 100, 2, args)
        health = await measure(target, ["/health"], FIXED_RATE, args.duration, args, auth=False)
        me = await measure(target, ["/api/me"], FIXED_RATE, args.duration, args)
        search = await measure(target, paths, FIXED_RATE, args.duration, args)
        log("stepping the rate up while p99 < 50 ms")
        best, capped = await max_sustained(target, paths, search, args)
    return SizeResult(n_units, world.counts, version, direct, health, me, search, best, capped)


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def fmt(value: float) -> str:
    return "timeout" if math.isinf(value) else f"{value:.2f} ms"


def times(numerator: float, denominator: float) -> str:
    """A ratio, or why there is none (a percentile that timed out)."""
    return "n/a (timeouts)" if math.isinf(numerator) or math.isinf(denominator) else f"{numerator / denominator:.2f}x"


def max_rate_text(r: SizeResult) -> str:
    if r.max_rate == 0:
        return f"< {RATES_DOWN[-1]}/s"
    return f"{'>= ' if r.max_rate_capped else ''}{r.max_rate:g}/s"


def report(args, small: SizeResult, large: SizeResult) -> None:
    ratio = large.search.p50 / small.search.p50  # inf when the large p50 timed out
    aim_p99 = large.search.p99 <= AIM_P99_MS and large.search.errors == 0
    aim_ratio = ratio <= AIM_P50_RATIO
    pg = not large.engine.startswith("SQLite")
    print()
    print(
        f"units search benchmark: {large.engine}; {os.cpu_count()} CPU cores shared by the server (one "
        f"uvicorn process{', the PostgreSQL server' if pg else ''}) and this load generator"
    )
    print(
        f"open loop: {FIXED_RATE}/s for {args.duration:g} s per figure, {args.step_duration:g} s per rate in the "
        f"step search; latency from each request's scheduled send time; AMHP queries: kind(s), age, sex, "
        f"home_area, near, limit=20, 30% available_only"
    )
    for r in (small, large):
        print(f"  {r.units}-unit data set: " + ", ".join(f"{k} {v:,}" for k, v in r.counts.items()))
    print()
    service = "server + database" if pg else "server"
    rows = [
        ("GET /api/units p50 at 200/s", lambda r: fmt(r.search.p50)),
        ("GET /api/units p99 at 200/s", lambda r: fmt(r.search.p99)),
        ("errors at 200/s", lambda r: f"{r.search.errors} of {r.search.sent}"),
        ("max sustained rate with p99 < 50 ms", max_rate_text),
        (f"{service} CPU per search request", lambda r: f"{r.search.service_cpu_ms:.2f} ms"),
        ("cores used by other processes at 200/s", lambda r: f"{r.search.cpu.not_ours:.2f}"),
        ("baseline: search_units p50 (no HTTP)", lambda r: fmt(median_ms(r.direct.service))),
        ("baseline: its bare SQL p50 (Core rows)", lambda r: fmt(median_ms(r.direct.sql))),
        ("baseline: GET /health p50 at 200/s", lambda r: fmt(r.health.p50)),
        ("baseline: GET /api/me p50 at 200/s (auth)", lambda r: fmt(r.me.p50)),
        ("ratio HTTP p50 / search_units p50", lambda r: times(r.search.p50, median_ms(r.direct.service))),
        ("ratio HTTP p50 / bare SQL p50", lambda r: times(r.search.p50, median_ms(r.direct.sql))),
        ("ratio HTTP p50 / GET /health p50", lambda r: times(r.search.p50, r.health.p50)),
        ("searches finding no free place", lambda r: f"{r.direct.empty / len(r.direct.service):.0%}"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    print(f"{'':<{width}}{small.units:>14} units{large.units:>14} units")
    for label, get in rows:
        print(f"{label:<{width}}{get(small):>20}{get(large):>20}")
    print()
    print(f"p50 ratio, {large.units} units / {small.units} units: {times(large.search.p50, small.search.p50)}")
    print(
        f"aim: p99 <= {AIM_P99_MS:g} ms at 200/s with {large.units} units: "
        f"{'MET' if aim_p99 else 'NOT MET'} ({fmt(large.search.p99)})"
    )
    print(
        f"aim: {large.units}-unit p50 <= {AIM_P50_RATIO:g}x the {small.units}-unit p50: "
        f"{'MET' if aim_ratio else 'NOT MET'} ({times(large.search.p50, small.search.p50)})"
    )
    busy = max(small.search.cpu.not_ours, large.search.cpu.not_ours)
    if busy > 0.3:
        print(
            f"note: other processes used up to {busy:.2f} cores during the 200/s runs; latencies are "
            f"inflated by that, the CPU per request much less so"
        )


async def main(args) -> None:
    with scratch("capacity-bench-", args.keep, "kept the SQLite files and server logs in {}") as workdir:
        small = await bench_size(args, 20, workdir)
        large = await bench_size(args, args.units, workdir)
        report(args, small, large)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_database_options(parser)
    parser.add_argument("--units", type=int, default=2000, help="units in the large data set")
    parser.add_argument("--duration", type=float, default=10, help="seconds of each 200/s run")
    parser.add_argument("--step-duration", type=float, default=5, help="seconds of each rate in the step search")
    parser.add_argument("--max-rate", type=float, default=3000, help="highest rate the step search tries")
    parser.add_argument("--declarations-per-day", type=float, default=3, help="per unit, for a year")
    parser.add_argument("--direct-queries", type=int, default=300, help="searches timed without HTTP")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=20,
        help="longest wait before each run for other processes to leave the CPU alone",
    )
    parser.add_argument("--seed", type=int, default=136)
    parser.add_argument("--keep", action="store_true", help="keep the SQLite files and server logs")
    args = parser.parse_args(argv)
    check_database_options(parser, args)
    if not (
        0 < args.duration <= 120
        and 0 < args.step_duration <= 60
        and 0 < args.units <= 20_000
        and 0 <= args.quiet_wait <= 600
        and 0 < args.direct_queries <= 2000
    ):
        parser.error(
            "--duration 0-120 s, --step-duration 0-60 s, --units 1-20000, --quiet-wait 0-600 s, --direct-queries 1-2000"
        )
    return args


if __name__ == "__main__":
    run_main(main(parse_args()))
