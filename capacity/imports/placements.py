"""Bulk import of historical placements from CSV (API.md, "Bulk import of history").

All or nothing per file. Every row is checked first, against the same rules a placement recorded
through the API meets, and nothing is written while any row is bad: the refusal names every bad line
(1-based file lines, the header is line 1) and field. Then every row is written in one transaction
(BEGIN IMMEDIATE on SQLite, through `Database.write`) with Core executemany in chunks, plus one audit
entry for the import that holds counts and the file's name and digest, never person data.

What each imported placement gets is computed as a live one is: `out_of_area` and `distance_km` by
`placement_geography`, `daily_cost` from the unit, the s136 clock from `started_at` with its deadline
`S136_HOURS` later, and `s136_breached_at` (at the deadline, as the sweep and the discharge record it)
when the placement ended after its deadline or is still open past it.

Duplicates: a row with the same person_ref, unit_id and started_at as an earlier row of the file, or
as a placement already in the database, is refused: one person cannot start at one unit twice at the
same instant, and a file imported twice must not double the history.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import operator
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import msgspec
from sqlalchemy import Dialect, Table, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.auth.security import Actor
from capacity.booking.persons import PersonIn, looks_like_nhs_number
from capacity.booking.placements.models import Placement
from capacity.booking.placements.service import S136_HOURS, not_in_future, placement_geography
from capacity.booking.units.availability import figures
from capacity.booking.units.models import Area, AreaLocalProvider, Unit
from capacity.codes import ACUTE_KINDS, Ethnicity, LegalBasis, OapReason, Outcome, PersonSex, values
from capacity.db.base import UTCDateTime, table_of
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Invalid

COLUMNS = (
    "person_ref",
    "age",
    "sex",
    "ethnicity",
    "home_area",
    "unit_id",
    "legal_basis",
    "started_at",
    "ended_at",
    "oap_reason",
    "outcome",
)
# Rows per INSERT executemany: large enough to amortise the round trip, small enough for steady progress.
CHUNK_ROWS = 5000
# A refusal lists this many problems, then says how many more there are.
REPORT_PROBLEMS = 50
# Problems kept in memory (a file of a million bad rows is counted, not stored).
KEEP_PROBLEMS = 10_000
PROGRESS_EVERY = 10_000
# SQLite page cache for the import's connection while it writes (KiB); set back to the default after.
SQLITE_IMPORT_CACHE_KIB = 256 * 1024

# Whoever runs the command line: a system actor, not a user of the service.
IMPORT_ACTOR = Actor(id="cli-import", username="cli-import", role="system", provider_id=None, areas=())

SEXES = frozenset(values(PersonSex))
ETHNICITIES = frozenset(values(Ethnicity))
LEGAL_BASES = frozenset(values(LegalBasis))
OUTCOMES = frozenset(values(Outcome))
OAP_REASONS = frozenset(values(OapReason))


def _person_constraints() -> tuple[int, re.Pattern[str], int, int]:
    """The API's rules for a person reference and an age (PersonIn), so both ways in agree."""
    info = msgspec.inspect.type_info(PersonIn)
    assert isinstance(info, msgspec.inspect.StructType)
    fields = {f.name: f.type for f in info.fields}
    match fields["ref"], fields["age"]:
        case (
            msgspec.inspect.Metadata(type=msgspec.inspect.StrType(max_length=int(ref_max), pattern=str(pattern))),
            msgspec.inspect.IntType(ge=int(age_min), le=int(age_max)),
        ):
            return ref_max, re.compile(pattern), age_min, age_max
    raise TypeError("PersonIn no longer bounds ref (max_length, pattern) and age (ge, le)")


REF_MAX, REF_PATTERN, AGE_MIN, AGE_MAX = _person_constraints()
S136_LIMIT = timedelta(hours=S136_HOURS)

Progress = Callable[[str, int, int], None]  # phase ("check" | "write"), done, total


@dataclass(frozen=True, order=True)
class Problem:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}, {self.field}: {self.message}"


class ImportRefused(Exception):
    """The file was refused and nothing was written; `problems` names each bad line and field."""

    def __init__(self, file_name: str, problems: list[Problem], total: int) -> None:
        self.file_name = file_name
        self.problems = sorted(problems)
        self.total = total
        super().__init__(self.report())

    @property
    def bad_lines(self) -> list[int]:
        return sorted({p.line for p in self.problems})

    def report(self, limit: int = REPORT_PROBLEMS) -> str:
        shown = self.problems[:limit]
        lines = [f"{self.file_name}: {self.total} problem{'s' if self.total != 1 else ''}; nothing was imported"]
        lines += [f"  {p}" for p in shown]
        if self.total > len(shown):
            lines.append(f"  and {self.total - len(shown)} more")
        return "\n".join(lines)


@dataclass
class ImportSummary:
    file_name: str
    import_id: str | None = None
    rows: int = 0
    ended: int = 0
    out_of_area: int = 0
    inappropriate: int = 0  # out of area for want of a bed at home (reason 10)
    s136: int = 0
    s136_breached: int = 0
    first_started_at: datetime | None = None
    last_started_at: datetime | None = None
    check_seconds: float = 0.0
    write_seconds: float = 0.0

    @property
    def still_open(self) -> int:
        return self.rows - self.ended

    def audit_record(self, sha256: str) -> dict:
        """What the audit log keeps of an import: counts and the file, never a person."""
        return {
            "file": self.file_name,
            "sha256": sha256,
            "rows": self.rows,
            "ended": self.ended,
            "still_open": self.still_open,
            "out_of_area": self.out_of_area,
            "inappropriate": self.inappropriate,
            "s136": self.s136,
            "s136_breached": self.s136_breached,
            "first_started_at": self.first_started_at.isoformat() if self.first_started_at else None,
            "last_started_at": self.last_started_at.isoformat() if self.last_started_at else None,
        }

    def __str__(self) -> str:
        if not self.rows:
            return f"{self.file_name}: no rows; nothing imported"
        span = f"{self.first_started_at:%Y-%m-%d} to {self.last_started_at:%Y-%m-%d}"
        return "\n".join(
            [
                f"Imported {self.rows} placements from {self.file_name} (import {self.import_id}), started {span}",
                f"  ended: {self.ended}; still open (occupying places now): {self.still_open}",
                f"  out of area: {self.out_of_area}, of which inappropriate (reason 10): {self.inappropriate}",
                f"  s136: {self.s136}, of which past the deadline: {self.s136_breached}",
                f"  checked in {self.check_seconds:.1f} s, written in {self.write_seconds:.1f} s",
            ]
        )


class Pair(NamedTuple):
    out_of_area: bool
    distance_km: float
    kind: str
    min_age: int
    max_age: int | None
    daily_cost: float


@dataclass
class Reference:
    """Areas, their local networks and the units, read once; geography per (area, unit) pair, once."""

    areas: dict[str, Area]
    local: dict[str, set[str]]
    units: dict[str, Unit]
    _pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Reference:
        areas = {a.code: a for a in (await session.scalars(select(Area))).all()}
        local: dict[str, set[str]] = {code: set() for code in areas}
        for link in (await session.scalars(select(AreaLocalProvider))).all():
            local.setdefault(link.area_code, set()).add(link.provider_id)
        units = {u.id: u for u in (await session.scalars(select(Unit))).all()}
        return cls(areas, local, units)

    def pair(self, home_area: str, unit_id: str) -> Pair:
        """What a placement of a person from this area at this unit gets, worked out once per pair."""
        key = (home_area, unit_id)
        found = self._pairs.get(key)
        if found is None:
            unit = self.units[unit_id]
            out_of_area, distance = placement_geography(self.areas[home_area], unit, self.local[home_area])
            found = self._pairs[key] = Pair(
                out_of_area, distance, unit.kind, unit.min_age, unit.max_age, unit.daily_cost
            )
        return found


def oap_reason_problem(out_of_area: bool, kind: str, oap_reason: str | None) -> str | None:
    """The rule `start_placement` applies: an out-of-area inpatient placement needs a reason (10-14, 99);
    a placement that is not out of area takes none."""
    if out_of_area and kind in ACUTE_KINDS and oap_reason is None:
        return "an out-of-area placement in an inpatient bed needs an oap_reason (10-14, 99)"
    if oap_reason is not None and not out_of_area:
        return "oap_reason is only for out-of-area placements"
    return None


def _parse_time(raw: str) -> datetime | str:
    """An ISO 8601 time with an offset (or Z), or the reason it is not one."""
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return f"{raw[:40]!r} is not an ISO 8601 time"
    if value.tzinfo is None or value.utcoffset() is None:
        return f"{raw[:40]!r} has no UTC offset (add Z or +01:00)"
    return value.astimezone(UTC)


def _scan(path: Path) -> tuple[int, str]:
    """Lines in the file (for progress) and its SHA-256 (for the audit entry), in one read."""
    digest = hashlib.sha256()
    lines = 0
    last = b""
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            lines += chunk.count(b"\n")
            last = chunk
    if last and not last.endswith(b"\n"):
        lines += 1
    return lines, digest.hexdigest()


# A checked row, as the write phase needs it.
Row = tuple  # (ref, age, sex, ethnicity, home_area, unit_id, legal_basis, started, ended, oap, outcome,
#             out_of_area, distance_km, daily_cost, s136_deadline, s136_breached_at)


class _Checker:
    def __init__(self, reference: Reference, now: datetime) -> None:
        self.ref = reference
        self.now = now
        self.problems: list[Problem] = []
        self.total_problems = 0
        self.rows: list[Row] = []
        self.lines: list[int] = []  # the file line of each row, for duplicates found later
        self.seen: dict[int, int] = {}  # hash of (ref, unit, started) -> index in rows

    def problem(self, line: int, field_: str, message: str) -> None:
        self.total_problems += 1
        if len(self.problems) < KEEP_PROBLEMS:
            self.problems.append(Problem(line, field_, message))

    def check(self, line: int, record: list[str]) -> None:
        """Check one record, rule by rule in column order; keep it for writing if it passes every rule."""
        if len(record) != len(COLUMNS):
            self.problem(line, "row", f"has {len(record)} fields; expected {len(COLUMNS)}")
            return
        ref, age_raw, sex, ethnicity, home_area, unit_id, legal_basis, started_raw, ended_raw, oap, outcome = [
            v.strip() for v in record
        ]
        before = self.total_problems
        problem = self.problem
        now = self.now

        if not ref:
            problem(line, "person_ref", "is empty")
        elif len(ref) > REF_MAX:
            problem(line, "person_ref", f"is longer than {REF_MAX} characters")
        elif len(ref) >= 10 and looks_like_nhs_number(ref):  # ten digits at least
            problem(line, "person_ref", "looks like an NHS number; use a local pseudonymous reference")
        elif not REF_PATTERN.match(ref):
            problem(line, "person_ref", "may hold only letters, digits and / _ . - (starting with a letter or digit)")

        age: int | None = None
        try:
            age = int(age_raw)
        except ValueError:
            problem(line, "age", f"{age_raw[:20]!r} is not a whole number")
        else:
            if not AGE_MIN <= age <= AGE_MAX:
                problem(line, "age", f"{age} is not between {AGE_MIN} and {AGE_MAX}")
                age = None

        if sex not in SEXES:
            problem(line, "sex", f"{sex[:20]!r} is not one of {', '.join(sorted(SEXES))}")
        if ethnicity and ethnicity not in ETHNICITIES:
            problem(line, "ethnicity", f"{ethnicity[:20]!r} is not an NHS ethnic category code (A-H, J-N, P, R, S, Z)")
        home_ok = home_area in self.ref.areas
        if not home_ok:
            problem(line, "home_area", f"no area with code {home_area[:20]!r}")
        unit_ok = unit_id in self.ref.units
        if not unit_ok:
            problem(line, "unit_id", f"no unit with id {unit_id[:40]!r}")
        if legal_basis not in LEGAL_BASES:
            problem(line, "legal_basis", f"{legal_basis[:20]!r} is not one of {', '.join(sorted(LEGAL_BASES))}")

        parsed_start = _parse_time(started_raw) if started_raw else "is empty"
        started: datetime | None = None
        if isinstance(parsed_start, str):
            problem(line, "started_at", parsed_start)
        else:
            started = parsed_start
            try:
                not_in_future(started, now, "started_at")
            except Invalid as exc:
                problem(line, "started_at", exc.detail)
        ended: datetime | None = None
        if ended_raw:
            parsed = _parse_time(ended_raw)
            if isinstance(parsed, str):
                problem(line, "ended_at", parsed)
            else:
                ended = parsed
                try:
                    not_in_future(ended, now, "ended_at")
                except Invalid as exc:
                    problem(line, "ended_at", exc.detail)
                if started is not None and ended < started:
                    problem(line, "ended_at", "is before started_at")
        if ended_raw and not outcome:
            problem(line, "outcome", "is required when ended_at is given")
        elif outcome and not ended_raw:
            problem(line, "outcome", "is only for a placement that has ended (ended_at is empty)")
        elif outcome and outcome not in OUTCOMES:
            problem(line, "outcome", f"{outcome[:30]!r} is not one of {', '.join(sorted(OUTCOMES))}")

        oap_reason = oap or None
        if oap_reason is not None and oap_reason not in OAP_REASONS:
            problem(line, "oap_reason", f"{oap_reason[:20]!r} is not one of {', '.join(sorted(OAP_REASONS))}")
            oap_reason = "?"  # checked above; keep it from also failing the rule below as missing
        if not (home_ok and unit_ok):
            return
        pair = self.ref.pair(home_area, unit_id)
        if oap_reason != "?" and (rule := oap_reason_problem(pair.out_of_area, pair.kind, oap_reason)):
            problem(line, "oap_reason", rule)
        if age is not None and age < 18 and (age < pair.min_age or (pair.max_age is not None and age > pair.max_age)):
            upper = f"-{pair.max_age}" if pair.max_age is not None else "+"
            problem(line, "age", f"a person of {age} may not be placed at a unit for ages {pair.min_age}{upper}")

        if self.total_problems != before or started is None:
            return
        index = len(self.rows)
        key = hash((ref, unit_id, started))
        earlier = self.seen.get(key)
        if (
            earlier is not None
            and self.rows[earlier][0] == ref
            and self.rows[earlier][5] == unit_id
            and self.rows[earlier][7] == started
        ):
            problem(line, "row", f"duplicates line {self.lines[earlier]} (same person_ref, unit_id and started_at)")
            return
        self.seen.setdefault(key, index)

        deadline = breached = None
        if legal_basis == "s136":
            deadline = started + S136_LIMIT
            if (ended is not None and ended > deadline) or (ended is None and deadline <= now):
                breached = deadline
        self.rows.append(
            (
                ref,
                age,
                sex,
                ethnicity or None,
                home_area,
                unit_id,
                legal_basis,
                started,
                ended,
                oap_reason,
                outcome or None,
                pair.out_of_area,
                pair.distance_km,
                pair.daily_cost,
                deadline,
                breached,
            )
        )
        self.lines.append(line)

    async def check_database(self, session: AsyncSession) -> None:
        """Refuse rows already in the database (the same file imported twice)."""
        if not self.rows:
            return
        first = min(r[7] for r in self.rows)
        last = max(r[7] for r in self.rows)
        areas = sorted({r[4] for r in self.rows})
        existing = (
            await session.execute(
                select(Placement.person_ref, Placement.unit_id, Placement.started_at).where(
                    Placement.home_area.in_(areas), Placement.started_at >= first, Placement.started_at <= last
                )
            )
        ).all()
        for ref, unit_id, started in existing:
            index = self.seen.get(hash((ref, unit_id, started)))
            if (
                index is not None
                and self.rows[index][0] == ref
                and self.rows[index][5] == unit_id
                and self.rows[index][7] == started
            ):
                self.problem(
                    self.lines[index], "row", "is already in the database (same person_ref, unit_id and started_at)"
                )


class _Unreadable(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first file line, fields) of each non-blank CSV record after the header.

    Raises ImportRefused for a bad header, and _Unreadable where the CSV itself breaks (the reader
    cannot go on reliably after that)."""
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ImportRefused(path.name, [Problem(1, "header", f"cannot be read: {exc}")], 1) from None
        if header is None or [h.strip().lower() for h in header] != list(COLUMNS):
            found = ",".join(header or [])[:200]
            problem = Problem(1, "header", f"must be exactly {','.join(COLUMNS)} (found {found!r})")
            raise ImportRefused(path.name, [problem], 1)
        last_line = reader.line_num
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                raise _Unreadable(last_line + 1, str(exc)) from None
            line, last_line = last_line + 1, reader.line_num
            if any(record):  # a blank line, or one of empty fields only (spreadsheet exports), is skipped
                yield line, record


def ordered_ids(start: datetime) -> Iterator[str]:
    """UUIDs (version 7 layout) that increase in insertion order, so the primary key index only grows
    at its end: a millisecond timestamp, then a counter from a random start."""
    counter = secrets.randbits(40)
    prefix = (int(start.timestamp() * 1000) & ((1 << 48) - 1)) << 80 | 0x7 << 76
    variant = 0b10 << 62
    while True:
        counter += 1
        yield str(uuid.UUID(int=prefix | ((counter >> 62) & 0xFFF) << 64 | variant | (counter & ((1 << 62) - 1))))


async def check_file(
    db: Database, path: Path, *, now: datetime, progress: Progress | None = None
) -> tuple[_Checker, str]:
    """Check every row of the file; raise ImportRefused naming each bad line and field."""
    total_lines, sha256 = _scan(path)
    async with db.read_sessions() as session:
        reference = await Reference.load(session)
    checker = _Checker(reference, now)
    done = 0
    try:
        for line, record in _records(path):
            checker.check(line, record)
            done += 1
            if progress is not None and done % PROGRESS_EVERY == 0:
                progress("check", min(line, total_lines), total_lines)
    except _Unreadable as exc:
        checker.problem(exc.line, "row", f"cannot be read ({exc}); the rest of the file was not checked")
    if progress is not None:
        progress("check", total_lines, total_lines)
    async with db.read_sessions() as session:
        await checker.check_database(session)
    if checker.total_problems:
        raise ImportRefused(path.name, checker.problems, checker.total_problems)
    return checker, sha256


def _summarise(summary: ImportSummary, rows: Sequence[Row]) -> None:
    summary.rows = len(rows)
    if not rows:
        return
    summary.ended = sum(1 for r in rows if r[8] is not None)
    summary.out_of_area = sum(1 for r in rows if r[11])
    summary.inappropriate = sum(1 for r in rows if r[11] and r[9] == "10")
    summary.s136 = sum(1 for r in rows if r[6] == "s136")
    summary.s136_breached = sum(1 for r in rows if r[15] is not None)
    summary.first_started_at = min(r[7] for r in rows).astimezone(UTC)
    summary.last_started_at = max(r[7] for r in rows).astimezone(UTC)


# The columns an imported placement fills, in the order `write_rows` gives them.
INSERT_COLUMNS = (
    "id",
    "person_ref",
    "person_age",
    "person_sex",
    "person_ethnicity",
    "home_area",
    "unit_id",
    "legal_basis",
    "started_at",
    "ended_at",
    "oap_reason",
    "outcome",
    "out_of_area",
    "distance_km",
    "daily_cost",
    "created_by",
    "s136_clock_started_at",
    "s136_deadline",
    "s136_breached_at",
)


def _utc_text(value: datetime) -> str:
    """A UTC time as SQLAlchemy's SQLite DATETIME stores it; used only where `BulkInsert` has checked that
    it matches the column type's own bind processor exactly."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.isoformat(" ", "microseconds")[:26]


_SAMPLE_TIMES = (
    datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC),
    datetime(2019, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(2020, 3, 29, 1, 30, 0, 5, tzinfo=UTC),
)


class BulkInsert:
    """`insert(table)` compiled once for a dialect, for rows given as tuples in `columns` order: the SQL, and
    the parameters for an executemany, with the column types' bind processors applied here (what `execute`
    would apply per row, through generic machinery that costs more than SQLite's own work at a million rows).

    On SQLite the UTC time processor (a TypeDecorator over DATETIME's string formatting) is the largest cost;
    it is replaced by `_utc_text` only if both give the same text for sample times."""

    def __init__(self, dialect: Dialect, table: Table, columns: Sequence[str]) -> None:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        order = list(compiled.positiontup or ())
        if sorted(order) != sorted(columns):
            raise ValueError(f"the compiled insert takes {order}, not {list(columns)}")
        self.sql = str(compiled)
        self.reorder = operator.itemgetter(*(list(columns).index(name) for name in order))
        self.processors: list[tuple[int, Callable]] = []
        for position, name in enumerate(order):
            column_type = table.c[name].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is None:
                continue
            if (
                dialect.name == "sqlite"
                and isinstance(column_type, UTCDateTime)
                and all(processor(v) == _utc_text(v) for v in _SAMPLE_TIMES)
            ):
                self.processors.append((position, _utc_text))
            else:
                self.processors.append((position, processor))

    def params(self, rows: Iterable[tuple]) -> list[tuple]:
        reorder, processors = self.reorder, self.processors
        out = []
        for row in rows:
            values = list(reorder(row))
            for position, processor in processors:
                if values[position] is not None:
                    values[position] = processor(values[position])
            out.append(tuple(values))
        return out


async def _refuse_overbooking(uow: UnitOfWork, rows: Sequence[Row], lines: Sequence[int], file_name: str) -> None:
    """Lock the units that rows still open would occupy, as every capacity change does, and refuse (naming
    each line) the open placements beyond the places a unit has free now: an import never overbooks."""
    open_lines: dict[str, list[int]] = {}
    for row, line in zip(rows, lines, strict=True):
        if row[8] is None:  # ended_at: still placed, so it takes a place now
            open_lines.setdefault(row[5], []).append(line)
    if not open_lines:
        return
    units = await uow.lock_units(open_lines)
    free = await figures(uow, list(units.values()))
    problems = [
        Problem(
            line,
            "ended_at",
            f"still open, but unit {unit_id} has {free[unit_id].available} place"
            f"{'s' if free[unit_id].available != 1 else ''} free now for {len(unit_lines)} open placements",
        )
        for unit_id, unit_lines in open_lines.items()
        if len(unit_lines) > free[unit_id].available
        for line in unit_lines[free[unit_id].available :]
    ]
    if problems:
        raise ImportRefused(file_name, problems[:KEEP_PROBLEMS], len(problems))


async def write_rows(
    db: Database,
    rows: Sequence[Row],
    lines: Sequence[int],
    summary: ImportSummary,
    *,
    sha256: str,
    actor: Actor,
    now: datetime,
    progress: Progress | None = None,
) -> None:
    """Write checked rows and the import's audit entry in one transaction (all or nothing).

    The rows go in chunks of CHUNK_ROWS through one executemany each of the Core `insert(Placement.__table__)`,
    compiled once, with the bind processors of its column types applied here rather than per row by
    SQLAlchemy's generic parameter handling (which costs more than SQLite's own work at a million rows)."""
    bulk = BulkInsert(db.engine.dialect, table_of(Placement), INSERT_COLUMNS)
    total = len(rows)
    import_id = str(uuid.uuid4())

    async def work(uow: UnitOfWork) -> None:
        await _refuse_overbooking(uow, rows, lines, summary.file_name)
        connection = await uow.session.connection()
        cache_size = None
        if db.is_sqlite:
            # Keep the new pages in memory until the commit instead of spilling them to the WAL as it goes.
            cache_size = (await connection.exec_driver_sql("PRAGMA cache_size")).scalar()
            await connection.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_IMPORT_CACHE_KIB}")
        ids = ordered_ids(now)
        created_by = actor.username

        def chunk_params(start: int) -> list[tuple]:
            return bulk.params(
                (
                    next(ids),
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    r[7],
                    r[8],
                    r[9],
                    r[10],
                    r[11],
                    r[12],
                    r[13],
                    created_by,
                    r[7] if r[14] is not None else None,
                    r[14],
                    r[15],
                )
                for r in rows[start : start + CHUNK_ROWS]
            )

        # While the driver inserts one chunk (SQLite in its thread, or the server), a worker thread prepares the
        # next: the driver lets go of the GIL while it steps, so the two overlap.
        upcoming: asyncio.Future | None = None
        try:
            params = chunk_params(0)
            for start in range(0, total, CHUNK_ROWS):
                following = start + CHUNK_ROWS
                upcoming = (
                    asyncio.ensure_future(asyncio.to_thread(chunk_params, following)) if following < total else None
                )
                await connection.exec_driver_sql(bulk.sql, params)
                if progress is not None:
                    progress("write", min(following, total), total)
                params = await upcoming if upcoming is not None else []
                upcoming = None
        finally:
            if upcoming is not None:
                upcoming.cancel()
            if cache_size is not None:
                with contextlib.suppress(DBAPIError):
                    await connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")
        uow.audit(
            actor=actor,
            action="placement.import",
            object_type="import",
            object_id=import_id,
            after=summary.audit_record(sha256),
        )

    await db.write(work)
    summary.import_id = import_id


async def import_placements(
    db: Database,
    path: Path | str,
    *,
    actor: Actor = IMPORT_ACTOR,
    progress: Progress | None = None,
) -> ImportSummary:
    """Check every row of a placements CSV, then write them all in one transaction, or nothing."""
    now = db.clock.now()  # what counts as the future for the rows, and the imported placements' ids
    path = Path(path)
    summary = ImportSummary(file_name=os.path.basename(path))
    started = time.perf_counter()
    checker, sha256 = await check_file(db, path, now=now, progress=progress)
    _summarise(summary, checker.rows)
    summary.check_seconds = time.perf_counter() - started
    if checker.rows:
        started = time.perf_counter()
        await write_rows(
            db, checker.rows, checker.lines, summary, sha256=sha256, actor=actor, now=now, progress=progress
        )
        summary.write_seconds = time.perf_counter() - started
    return summary
