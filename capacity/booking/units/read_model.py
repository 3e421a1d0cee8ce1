"""A live availability read model per instance: what an AMHP's search (GET /api/units) answers from,
with no SQL on the request path.

It holds every active unit's columns, area rules and local areas, its active placements and its live
holds with their expiries, and each provider's escalation level. Holds expire at read time from the
expiries it holds (rule 2), so a hold nobody has swept yet is not counted. It is loaded at start and
kept up from the committed events every instance publishes (heard through the channels plugin, as the
sockets hear them). A hold's own event says the hold's status and expiry after the change, and is applied
in place: the most frequent changes (holds made, extended, released, expired) cost no database read. Any
other event about a unit (a declaration, a placement, an administrator's change) has the model re-read
that unit through the one availability calculator off the request path, coalescing a burst of events
into one read; so does a hold's event heard while a read is under way, whose answer could predate it. It is
reconciled in full every CAPACITY_READ_MODEL_RECONCILE_SECONDS and at once after any gap in what it
heard (the bus down and back, or its own backlog overflowing), so a missed event leaves it wrong for
at most that period. While the bus is down, or before the first load, searches read the database.

A search filters and ranks from memory with the SQL search's own rank (rank_key). Each kind's units are
filed by the cell of the map they stand in, so a search near a point with a limit (an AMHP's) visits the
nearest cells first and stops once no unit left to visit could enter its answer: its cost follows the
units near the person, not the size of the country.

A hold still locks and checks in the database, so this model can only be briefly optimistic (offer a
place just taken), never overbook.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from litestar.channels import ChannelsPlugin
from sqlalchemy import select

from capacity.booking.eligibility import refuses_area, takes_age, takes_sex
from capacity.booking.escalation.service import Escalation, escalation_of, read_escalations
from capacity.booking.units.availability import (
    EARTH_RADIUS_KM,
    UnitFigures,
    UnitSearch,
    figures,
    haversine_km,
    is_out_of_area,
    live_holds,
    rank_key,
)
from capacity.booking.units.models import Area, Provider, Unit, UnitAreaRule, UnitLocalArea
from capacity.db.engine import Database
from capacity.events import Event, decode
from capacity.notify.channels import CHANNEL, BoundedSubscriber, Bus
from capacity.settings import Settings

log = logging.getLogger("capacity.read_model")

# How often, while the bus is down, to look whether it is back (then the model reconciles at once).
BUS_POLL_SECONDS = 0.5
# After a failed read (database away), how long before trying again.
RETRY_SECONDS = 1.0


# The map's cells: squares of this many degrees of latitude and longitude (about 111 x 70 km in England).
CELL_DEGREES = 1.0
Cell = tuple[int, int]
# A unit's answered distance is rounded to 0.1 km: one at least this much beyond a cell's floor is
# answered as farther than any distance a little under the floor (with room for float error).
ROUNDING_KM = 0.06


def cell_of(lat: float, lon: float) -> Cell:
    return math.floor(lat / CELL_DEGREES), math.floor(lon / CELL_DEGREES)


def cell_floor_km(lat: float, cos_lat: float, lon: float, cell: Cell) -> float:
    """No point of `cell` is nearer than this to the point (lat and lon in degrees, cos_lat its latitude's
    cosine): the haversine of the least latitude and longitude gaps to the cell, with the least cosine of
    a latitude in it; each term of the haversine is at least its term here. A cell more than 90 degrees of
    longitude away (or across the antimeridian) gets 0, which is never wrong."""
    lat_low, lon_low = cell[0] * CELL_DEGREES, cell[1] * CELL_DEGREES
    lat_high, lon_high = lat_low + CELL_DEGREES, lon_low + CELL_DEGREES
    dlat = max(lat_low - lat, 0.0, lat - lat_high)
    dlon = max(lon_low - lon, 0.0, lon - lon_high)
    if dlon > 90:
        dlon = 0.0
    least_cos = min(math.cos(math.radians(lat_low)), math.cos(math.radians(lat_high)))
    h = math.sin(math.radians(dlat) / 2) ** 2 + cos_lat * least_cos * math.sin(math.radians(dlon) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True)
class UnitEntry:
    """One active unit as the model holds it."""

    row: Any  # a plain row of the units table's columns, as the SQL search reads them
    refused: frozenset[str]
    accepted: frozenset[str]
    local_to: frozenset[str]
    occupied: int
    holds: dict[str, datetime]  # its live holds when read, or as their events have said since: id -> expiry
    expiries: tuple[datetime, ...]  # the same expiries, soonest first
    # Worked out once when read, so a search does no more than compare and add per unit:
    stale_after: datetime  # its figures are stale from this instant on (is_stale)
    lat_radians: float
    cos_lat: float
    cell: Cell

    def held(self, now: datetime) -> int:
        """Its holds still live at `now`: those expiring after it."""
        return len(self.expiries) - bisect_right(self.expiries, now)

    def with_hold(self, hold_id: str, expires_at: datetime | None) -> UnitEntry:
        """This entry after a hold's event: live until `expires_at`, or (None) no longer held."""
        holds = {k: v for k, v in self.holds.items() if k != hold_id}
        if expires_at is not None:
            holds[hold_id] = expires_at
        return replace(self, holds=holds, expiries=tuple(sorted(holds.values())))


def unit_entry(
    row: Any,
    refused: Iterable[str],
    accepted: Iterable[str],
    local_to: Iterable[str],
    occupied: int,
    holds: Mapping[str, datetime] | Iterable[tuple[str, datetime]],
    settings: Settings,
) -> UnitEntry:
    latitude = math.radians(row.lat)
    live = dict(holds)
    return UnitEntry(
        row,
        frozenset(refused),
        frozenset(accepted),
        frozenset(local_to),
        occupied,
        live,
        tuple(sorted(live.values())),
        stale_after=row.last_confirmed_at + timedelta(minutes=settings.stale_minutes[row.kind]),
        lat_radians=latitude,
        cos_lat=math.cos(latitude),
        cell=cell_of(row.lat, row.lon),
    )


class ReadModel:
    def __init__(self, db: Database, channels: ChannelsPlugin, bus: Bus) -> None:
        self.db = db
        self.channels = channels
        self.bus = bus
        self.loaded = False
        self.units: dict[str, UnitEntry] = {}
        # Each kind's units by the cell of the map they stand in, so a search near a point with a limit
        # visits the nearest cells first and stops once no further unit can enter its answer.
        self.cells: dict[str, dict[Cell, dict[str, UnitEntry]]] = {}
        self.areas: frozenset[str] = frozenset()
        self.providers: dict[str, Any] = {}
        self.heard = 0  # events received from the bus: tests wait on it
        self._dirty_units: set[str] = set()
        self._dirty_providers: set[str] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one read at a time, so a later read is never overwritten by an earlier
        self._subscriber: BoundedSubscriber | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def ready(self) -> bool:
        """Whether searches may answer from memory: loaded, and hearing every instance's events."""
        return self.loaded and not self.bus.down

    # --- lifecycle (the app's startup and shutdown hooks, after the channels plugin has started) -------

    async def start(self) -> None:
        subscriber = await self.channels.subscribe([CHANNEL])
        assert isinstance(subscriber, BoundedSubscriber)
        self._subscriber = subscriber
        # Subscribed before loading: an event committed during the load marks its unit for a re-read.
        self._tasks.append(asyncio.create_task(self._listen(subscriber)))
        try:
            await self.reconcile()
        except Exception:  # searches read the database until the next reconcile succeeds
            log.warning("could not load the availability read model", exc_info=True)
        self._tasks.append(asyncio.create_task(self._refresh_loop()))
        self._tasks.append(asyncio.create_task(self._reconcile_loop(subscriber)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._subscriber is not None:
            await self.channels.unsubscribe(self._subscriber)
            self._subscriber = None

    # --- keeping up --------------------------------------------------------------------------------------

    def note(self, event: Event) -> None:
        """What a committed event means here: a hold's own event is applied in place when it can be; for
        any other, its unit (or provider's escalation) is re-read."""
        if event.unit_id is not None and (event.rereads_unit or not self._applied(event)):
            self._dirty_units.add(event.unit_id)
        if event.type == "provider.escalation" and event.provider_id is not None:
            self._dirty_providers.add(event.provider_id)
        if self._dirty_units or self._dirty_providers:
            self._wake.set()

    def _applied(self, event: Event) -> bool:
        """Apply an event of holds alone; False when its unit must be re-read instead: a read is under way
        (what it installs could predate this event), or the unit is not one the model holds."""
        hold_id = event.data.get("hold_id")
        if hold_id is None:
            return True  # the figures that follow a hold's event: that event has said what changed
        entry = self.units.get(event.unit_id or "")
        if entry is None or self._lock.locked():
            return False
        held = event.data.get("status") == "held"
        self._replace(
            entry.row.id, entry.with_hold(hold_id, datetime.fromisoformat(event.data["expires_at"]) if held else None)
        )
        return True

    async def catch_up(self) -> None:
        """Re-read the units and providers events have named since the last read."""
        await self._reread(everything=False)

    async def reconcile(self) -> None:
        """Re-read everything from the database; what events had named is covered by this later read."""
        await self._reread(everything=True)
        self.loaded = True

    async def _reread(self, *, everything: bool) -> None:
        async with self._lock:
            units, providers = self._dirty_units, self._dirty_providers
            self._dirty_units, self._dirty_providers = set(), set()
            try:
                await (self._read(None, None) if everything else self._read(units, providers))
            except BaseException:  # what the failed read was to cover is read next time
                self._dirty_units |= units
                self._dirty_providers |= providers
                raise

    async def _read(self, unit_ids: Collection[str] | None, provider_ids: Collection[str] | None) -> None:
        """Read these units and providers (None: all of them, and the areas) and put them in place."""
        entries: dict[str, UnitEntry] = {}
        provider_rows: dict[str, Any] = {}
        area_codes: frozenset[str] | None = None
        async with self.db.read() as reading:
            session = reading.session
            if unit_ids is None or unit_ids:
                query = select(*Unit.__table__.columns).where(Unit.active.is_(True))
                rules = select(UnitAreaRule.unit_id, UnitAreaRule.rule, UnitAreaRule.area_code)
                local = select(UnitLocalArea.unit_id, UnitLocalArea.area_code)
                if unit_ids is not None:
                    wanted = sorted(unit_ids)
                    query = query.where(Unit.id.in_(wanted))
                    rules = rules.where(UnitAreaRule.unit_id.in_(wanted))
                    local = local.where(UnitLocalArea.unit_id.in_(wanted))
                rows = list((await session.execute(query)).all())
                refused: dict[str, set[str]] = {}
                accepted: dict[str, set[str]] = {}
                for unit_id, rule, code in (await session.execute(rules)).all():
                    (refused if rule == "refuses" else accepted).setdefault(unit_id, set()).add(code)
                local_to: dict[str, set[str]] = {}
                for unit_id, code in (await session.execute(local)).all():
                    local_to.setdefault(unit_id, set()).add(code)
                counted = await figures(reading, rows)
                holds = await live_holds(session, reading.now, unit_ids)
                for row in rows:
                    entries[row.id] = unit_entry(
                        row,
                        refused.get(row.id, ()),
                        accepted.get(row.id, ()),
                        local_to.get(row.id, ()),
                        counted[row.id].occupied,
                        holds.get(row.id, {}),
                        self.db.settings,
                    )
            if provider_ids is None or provider_ids:
                query = select(Provider.id, Provider.escalation_level, Provider.escalation_note, Provider.escalation_at)
                if provider_ids is not None:
                    query = query.where(Provider.id.in_(sorted(provider_ids)))
                provider_rows = {row.id: row for row in (await session.execute(query)).all()}
            if unit_ids is None:
                area_codes = frozenset((await session.scalars(select(Area.code))).all())
        # No await from here on: a search sees the model before this read or after it, never half of it.
        if unit_ids is None:
            self.units = entries
            self.cells = {}
            for entry in entries.values():
                self._file(entry)
        else:
            for unit_id in unit_ids:
                self._replace(unit_id, entries.get(unit_id))  # absent: retired, or never a unit
        if provider_ids is None:
            self.providers = provider_rows
        else:
            self.providers.update(provider_rows)
        if area_codes is not None:
            self.areas = area_codes

    def _replace(self, unit_id: str, entry: UnitEntry | None) -> None:
        old = self.units.pop(unit_id, None)
        if old is not None:
            cell = self.cells[old.row.kind][old.cell]
            del cell[unit_id]
            if not cell:
                del self.cells[old.row.kind][old.cell]
        if entry is not None:
            self.units[unit_id] = entry
            self._file(entry)

    def _file(self, entry: UnitEntry) -> None:
        self.cells.setdefault(entry.row.kind, {}).setdefault(entry.cell, {})[entry.row.id] = entry

    async def _listen(self, subscriber: BoundedSubscriber) -> None:
        async for raw in subscriber.iter_events():
            self.heard += 1
            try:
                event = decode(raw)
            except Exception:  # not an event of ours: nothing to re-read
                continue
            self.note(event)

    async def _refresh_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.catch_up()
            except Exception:
                log.warning("could not re-read units for the read model; trying again", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _reconcile_loop(self, subscriber: BoundedSubscriber) -> None:
        """Reconcile on the period, and at once after a gap in what this instance heard."""
        period = self.db.settings.read_model_reconcile_seconds
        lost = self.bus.lost
        while True:
            gaps = [asyncio.create_task(lost.wait()), asyncio.create_task(subscriber.overflowed.wait())]
            await asyncio.wait(gaps, timeout=period, return_when=asyncio.FIRST_COMPLETED)
            for task in gaps:
                task.cancel()
            if subscriber.overflowed.is_set():
                log.warning("the read model fell behind the bus and dropped events: reconciling")
                subscriber.overflowed.clear()
            # Events missed meanwhile are read back once it returns (the Bus signals loss, not return).
            while self.bus.down:  # noqa: ASYNC110
                await asyncio.sleep(BUS_POLL_SECONDS)
            lost = self.bus.lost  # taken before the read: a gap from here on is caught next time round
            try:
                await self.reconcile()
            except Exception:
                log.warning("could not reconcile the read model; trying again", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)

    # --- answering -----------------------------------------------------------------------------------------

    def search(self, search: UnitSearch, now: datetime) -> list[UnitFigures] | None:
        """search_units's answer, from memory at `now`; None when the database must answer: the model is
        not ready, or the home area is not one it knows (new since its last load, or no area at all)."""
        if not self.ready or (search.home_area and search.home_area not in self.areas):
            return None
        kinds = dict.fromkeys(search.kinds) if search.kinds else self.cells.keys()
        cells = [cell for kind in kinds for cell in self.cells.get(kind, {}).items()]
        near, limit = search.near, search.limit
        ranked: list[Ranked] = []
        if not (near and limit):
            for _, units in cells:
                self._rank(units.values(), search, now, ranked)
            return [self._figures(r, search, now) for r in sorted(ranked, key=itemgetter(0))[:limit]]
        # Nearest cells first. Once `limit` fresh units are found and the next cell's floor is beyond the
        # farthest of them, no unit yet to visit can enter the answer (stale ones rank after every fresh).
        lat, lon = near
        cos_lat = math.cos(math.radians(lat))
        by_floor = sorted(((cell_floor_km(lat, cos_lat, lon, cell), units) for cell, units in cells), key=itemgetter(0))
        nearest_fresh: list[float] = []  # the `limit` least fresh distances, negated (a max-heap)
        for floor, units in by_floor:
            if len(nearest_fresh) == limit and floor - ROUNDING_KM > -nearest_fresh[0]:
                break
            start = len(ranked)
            self._rank(units.values(), search, now, ranked)
            for (stale, distance, _), _entry in ranked[start:]:
                if not stale:
                    heapq.heappush(nearest_fresh, -distance)
                    if len(nearest_fresh) > limit:
                        heapq.heappop(nearest_fresh)
        return [self._figures(r, search, now) for r in heapq.nsmallest(limit, ranked, key=itemgetter(0))]

    @staticmethod
    def _rank(entries: Iterable[UnitEntry], search: UnitSearch, now: datetime, ranked: list[Ranked]) -> None:
        """Add the entries the search takes to `ranked`, each with its rank key (its figures are worked out
        only for the units that make the answer, by _figures)."""
        near = search.near
        if near:
            p1 = math.radians(near[0])
            cos_p1 = math.cos(p1)
        for entry in entries:
            if not _takes(entry, search):
                continue
            row = entry.row
            if search.available_only and _figures_of(entry, now).available == 0:
                continue
            distance = None
            if near:
                distance = round(haversine_km(p1, cos_p1, near[1], entry.lat_radians, entry.cos_lat, row.lon), 1)
            ranked.append((rank_key(now > entry.stale_after, distance, row.name), entry))

    @staticmethod
    def _figures(ranked: Ranked, search: UnitSearch, now: datetime) -> UnitFigures:
        """A unit of the answer with its figures at `now`, as search_units gives it."""
        (_, distance, _), entry = ranked
        found = _figures_of(entry, now)
        found.distance_km = distance if search.near else None
        if search.home_area:
            found.out_of_area = is_out_of_area(search.home_area, entry.local_to)
        return found

    async def escalations(self, provider_ids: Collection[str]) -> dict[str, Escalation]:
        """Each provider's escalation, from memory when the model has them all, else from the database."""
        if self.ready and all(p in self.providers for p in provider_ids):
            now = self.db.clock.now()
            return {p: escalation_of(self.providers[p], now, self.db.settings) for p in provider_ids}
        return await read_escalations(self.db, provider_ids)


# A unit a search takes, with its place in the answer (rank_key).
Ranked = tuple[tuple[bool, float, str], UnitEntry]


def _figures_of(entry: UnitEntry, now: datetime) -> UnitFigures:
    return UnitFigures(entry.row, entry.held(now), entry.occupied, now > entry.stale_after)


def _takes(entry: UnitEntry, search: UnitSearch) -> bool:
    """The search's eligibility filters (availability._eligibility_filters, in SQL), by the eligibility rules."""
    unit = entry.row
    if search.sex in ("female", "male") and not takes_sex(unit, search.sex):
        return False
    if search.age is not None and not takes_age(unit, search.age):
        return False
    if search.home_area and refuses_area(entry.refused, entry.accepted, search.home_area):
        return False
    return all(getattr(unit, flag) is True for flag in search.flags)
