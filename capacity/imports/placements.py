"""Bulk import of historical placements from CSV (API.md, "Bulk import of history").

All or nothing per file. Every row is checked first, against the same rules a placement recorded
through the API meets, and nothing is written while any row is bad: the refusal names every bad line
(1-based file lines, the header is line 1) and field. Each record is converted by msgspec into a `CsvRow`,
whose field types are the booking API's own (the person's as `PersonIn` constrains them, the codes as the
StrEnums of `capacity.codes`), so a refused value is named by its field; the rules across fields, the
reference data and the file follow, through the booking code's functions (`looks_like_nhs_number`,
`not_in_future`, `placement_geography`). Then every row is written in one transaction
(BEGIN IMMEDIATE on SQLite, through `Database.write`) with Core executemany in chunks, plus one audit
entry for the import that holds counts and the file's name and digest, never person data.

What each imported placement gets is computed as a live one is: `out_of_area` and `distance_km` by
`placement_geography`, `daily_cost` from the unit, and for legal basis s136 or s135 an episode of its
own (the placement is its only leg: the file cannot link legs, so outcome `transferred` is refused),
whose clock starts at `started_at` with its deadline `S136_HOURS` later, and its breach (at the deadline,
as the sweep and the discharge record it) when the placement ended after its deadline or is still open
past it.

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
import secrets
import time
import uuid
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple, TypeAlias, get_type_hints

import msgspec
from msgspec import Meta
from msgspec.structs import astuple
from sqlalchemy import Dialect, Table, insert, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.auth.security import Actor
from capacity.booking.detentions.episodes import DETENTION_BASES, S136_HOURS, TRANSFERRED
from capacity.booking.detentions.models import Episode
from capacity.booking.persons import HOME_AREA, PersonIn, looks_like_nhs_number
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import PlacementIn
from capacity.booking.placements.service import not_in_future, oap_reason_problem, placement_geography
from capacity.booking.units.availability import figures
from capacity.booking.units.models import Area, Unit
from capacity.codes import (
    INAPPROPRIATE_OAP_REASON,
    Ethnicity,
    LegalBasis,
    OapReason,
    Outcome,
    PersonSex,
    values,
)
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

# The booking types a CSV row is checked by, so that the API and the import refuse the same values: the
# person's reference and age as `PersonIn` constrains them, the unit id as `PlacementIn` does.
_PERSON_TYPES = get_type_hints(PersonIn, include_extras=True)
_PLACEMENT_TYPES = get_type_hints(PlacementIn, include_extras=True)
if TYPE_CHECKING:
    PersonRef: TypeAlias = str
    PersonAge: TypeAlias = int
    UnitId: TypeAlias = str
else:
    PersonRef = _PERSON_TYPES["ref"]
    PersonAge = _PERSON_TYPES["age"]
    UnitId = _PLACEMENT_TYPES["unit_id"]
# A time with its offset (or Z), RFC 3339 as the API reads times; a time without one is refused.
OffsetTime = Annotated[datetime, Meta(tz=True)]


class CsvRow(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=True):
    """One record of the file, its fields named and typed as COLUMNS are: converted by msgspec from the
    record's text (empty fields as None), so a value its type refuses is named by its field."""

    person_ref: PersonRef
    age: PersonAge
    sex: PersonSex
    ethnicity: Ethnicity | None
    home_area: HOME_AREA
    unit_id: UnitId
    legal_basis: LegalBasis
    started_at: OffsetTime
    ended_at: OffsetTime | None
    oap_reason: OapReason | None
    outcome: Outcome | None


FIELD_TYPES: dict[str, Any] = get_type_hints(CsvRow, include_extras=True)
if tuple(FIELD_TYPES) != COLUMNS:
    raise TypeError(f"CsvRow's fields {tuple(FIELD_TYPES)} are not the file's columns {COLUMNS}")
# The fields whose values are codes: a refusal lists the codes.
CODE_FIELDS: dict[str, tuple[str, ...]] = {
    "sex": values(PersonSex),
    "ethnicity": values(Ethnicity),
    "legal_basis": values(LegalBasis),
    "oap_reason": values(OapReason),
    "outcome": values(Outcome),
}
NHS_NUMBER_PROBLEM = "looks like an NHS number; use a local pseudonymous reference"
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
    """Areas and the units (each with its local areas), read once; geography per (area, unit) pair, once."""

    areas: dict[str, Area]
    units: dict[str, Unit]
    _pairs: dict[tuple[str, str], Pair] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession) -> Reference:
        areas = {a.code: a for a in (await session.scalars(select(Area))).all()}
        units = {u.id: u for u in (await session.scalars(select(Unit))).all()}
        return cls(areas, units)

    def pair(self, home_area: str, unit_id: str) -> Pair:
        """What a placement of a person from this area at this unit gets, worked out once per pair."""
        key = (home_area, unit_id)
        found = self._pairs.get(key)
        if found is None:
            unit = self.units[unit_id]
            out_of_area, distance = placement_geography(self.areas[home_area], unit)
            found = self._pairs[key] = Pair(
                out_of_area, distance, unit.kind, unit.min_age, unit.max_age, unit.daily_cost
            )
        return found


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


class CheckedRow(msgspec.Struct, frozen=True, gc=False):
    """A checked row as the write phase needs it: its fields up to `daily_cost` are the placement's
    columns, in the order INSERT_COLUMNS gives them (between the id and the detention_id); the last two
    are its episode's, under s135/s136 (None otherwise)."""

    person_ref: str
    person_age: int
    person_sex: str
    person_ethnicity: str | None
    home_area: str
    unit_id: str
    legal_basis: str
    started_at: datetime
    ended_at: datetime | None
    oap_reason: str | None
    outcome: str | None
    out_of_area: bool
    distance_km: float
    daily_cost: float
    deadline: datetime | None
    breached_at: datetime | None


def _by_field(values: dict[str, object], error: msgspec.ValidationError) -> tuple[dict[str, object], dict[str, str]]:
    """A record msgspec refused, field by field: the values that pass their types, and msgspec's reason for
    each field refused: the field its error names (msgspec stops at the first), then any other field
    converted to its own type."""
    message, _, where = str(error).rpartition(" - at `$.")
    named = where.removesuffix("`")
    refused = {named: message} if message and named in FIELD_TYPES else {}
    passed: dict[str, object] = {}
    for name, value in values.items():
        if name not in refused:
            try:
                passed[name] = msgspec.convert(value, FIELD_TYPES[name])
            except msgspec.ValidationError as exc:
                refused[name] = str(exc)
    return passed, refused


def _describe(name: str, value: object, reason: str) -> str:
    """A refused value's problem as the report says it (a person's reference is never repeated)."""
    if value is None:
        return "is empty"
    if name in CODE_FIELDS:
        return f"{str(value)[:20]!r} is not one of {', '.join(CODE_FIELDS[name])}"
    if name == "person_ref":
        return reason
    return f"{str(value)[:40]!r}: {reason}"


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is UTC else value.astimezone(UTC)


def _text(code: str | None) -> str | None:
    """A code's value as a plain str, for the driver (sqlite3 binds a str subclass at three times the cost)."""
    return None if code is None else str(code)


class _Checker:
    def __init__(self, reference: Reference, now: datetime) -> None:
        self.ref = reference
        self.now = now
        self.problems: list[Problem] = []
        self.total_problems = 0
        self.rows: list[CheckedRow] = []
        self.lines: list[int] = []  # the file line of each row, for duplicates found later
        self.seen: dict[int, int] = {}  # hash of (ref, unit, started) -> index in rows

    def problem(self, line: int, field_: str, message: str) -> None:
        self.total_problems += 1
        if len(self.problems) < KEEP_PROBLEMS:
            self.problems.append(Problem(line, field_, message))

    def check(self, line: int, record: list[str]) -> None:
        """Check one record: each field by its type (CsvRow), then the rules across fields, the reference
        data and the file; keep it for writing if it passes every rule."""
        if len(record) != len(COLUMNS):
            self.problem(line, "row", f"has {len(record)} fields; expected {len(COLUMNS)}")
            return
        values: dict[str, object] = {name: raw.strip() or None for name, raw in zip(COLUMNS, record, strict=True)}
        if isinstance(age_text := values["age"], str):  # CSV is text: a whole number becomes an int for its type
            with contextlib.suppress(ValueError):
                values["age"] = int(age_text)
        problem = self.problem
        before = self.total_problems
        ref = values["person_ref"]
        # Ten digits at least, and one cannot start with a letter (the rule only drops spaces and dashes).
        nhs_number = isinstance(ref, str) and len(ref) >= 10 and not ref[0].isalpha() and looks_like_nhs_number(ref)
        if nhs_number:
            problem(line, "person_ref", NHS_NUMBER_PROBLEM)
        unknown: Container[str] = ()  # fields whose values their types refused
        try:
            row = msgspec.convert(values, CsvRow)
        except msgspec.ValidationError as exc:
            passed, refused = _by_field(values, exc)
            for name, reason in refused.items():
                if not (name == "person_ref" and nhs_number):
                    problem(line, name, _describe(name, values[name], reason))
            unknown = refused.keys()
            # The values that passed, for the rules below; those refused are None here and not looked at.
            row = CsvRow(**{name: passed.get(name) for name in COLUMNS})  # type: ignore[arg-type]
        pair = self._rules(line, row, unknown)
        if self.total_problems == before and pair is not None:
            self._keep(line, row, pair)

    def _rules(self, line: int, row: CsvRow, unknown: Container[str]) -> Pair | None:
        """The rules across fields and with the reference data, on the fields whose types passed; the
        geography of the row's area and unit when both exist."""
        problem, now = self.problem, self.now
        home_ok = "home_area" not in unknown and row.home_area in self.ref.areas
        if not home_ok and "home_area" not in unknown:
            problem(line, "home_area", f"no area with code {row.home_area[:20]!r}")
        unit_ok = "unit_id" not in unknown and row.unit_id in self.ref.units
        if not unit_ok and "unit_id" not in unknown:
            problem(line, "unit_id", f"no unit with id {row.unit_id[:40]!r}")
        started_ok = "started_at" not in unknown
        for name, value in (("started_at", row.started_at), ("ended_at", row.ended_at)):
            if name not in unknown and value is not None:
                try:
                    not_in_future(value, now, name)
                except Invalid as exc:
                    problem(line, exc.field or name, exc.detail)
        if row.ended_at is not None and started_ok and row.ended_at < row.started_at:
            problem(line, "ended_at", "is before started_at")
        if "outcome" not in unknown:
            ended = row.ended_at is not None or "ended_at" in unknown  # given, if refused
            if ended and row.outcome is None:
                problem(line, "outcome", "is required when ended_at is given")
            elif row.outcome is not None and not ended:
                problem(line, "outcome", "is only for a placement that has ended (ended_at is empty)")
            elif row.outcome == TRANSFERRED:
                problem(line, "outcome", "transferred continues a detention elsewhere, which a file cannot link")
        if not (home_ok and unit_ok):
            return None
        pair = self.ref.pair(row.home_area, row.unit_id)
        if "oap_reason" not in unknown and (rule := oap_reason_problem(pair.out_of_area, pair.kind, row.oap_reason)):
            problem(line, "oap_reason", rule)
        age = row.age
        if (
            "age" not in unknown
            and age < 18
            and (age < pair.min_age or (pair.max_age is not None and age > pair.max_age))
        ):
            upper = f"-{pair.max_age}" if pair.max_age is not None else "+"
            problem(line, "age", f"a person of {age} may not be placed at a unit for ages {pair.min_age}{upper}")
        return pair

    def _keep(self, line: int, row: CsvRow, pair: Pair) -> None:
        """Keep a row that passed every rule, unless it duplicates an earlier row of the file."""
        ref, unit_id = row.person_ref, row.unit_id
        started = _utc(row.started_at)
        ended = _utc(row.ended_at) if row.ended_at is not None else None
        index = len(self.rows)
        key = hash((ref, unit_id, started))
        earlier = self.seen.get(key)
        if earlier is not None and self._same(self.rows[earlier], ref, unit_id, started):
            self.problem(
                line, "row", f"duplicates line {self.lines[earlier]} (same person_ref, unit_id and started_at)"
            )
            return
        self.seen.setdefault(key, index)
        deadline = breached = None
        if row.legal_basis in DETENTION_BASES:
            deadline = started + S136_LIMIT
            if (ended is not None and ended > deadline) or (ended is None and deadline <= self.now):
                breached = deadline
        self.rows.append(
            CheckedRow(
                person_ref=ref,
                person_age=row.age,
                person_sex=str(row.sex),
                person_ethnicity=_text(row.ethnicity),
                home_area=row.home_area,
                unit_id=unit_id,
                legal_basis=str(row.legal_basis),
                started_at=started,
                ended_at=ended,
                oap_reason=_text(row.oap_reason),
                outcome=_text(row.outcome),
                out_of_area=pair.out_of_area,
                distance_km=pair.distance_km,
                daily_cost=pair.daily_cost,
                deadline=deadline,
                breached_at=breached,
            )
        )
        self.lines.append(line)

    @staticmethod
    def _same(row: CheckedRow, ref: str, unit_id: str, started: datetime) -> bool:
        return row.person_ref == ref and row.unit_id == unit_id and row.started_at == started

    async def check_database(self, session: AsyncSession) -> None:
        """Refuse rows already in the database (the same file imported twice)."""
        if not self.rows:
            return
        first = min(r.started_at for r in self.rows)
        last = max(r.started_at for r in self.rows)
        areas = sorted({r.home_area for r in self.rows})
        existing = (
            await session.execute(
                select(Placement.person_ref, Placement.unit_id, Placement.started_at).where(
                    Placement.home_area.in_(areas), Placement.started_at >= first, Placement.started_at <= last
                )
            )
        ).all()
        for ref, unit_id, started in existing:
            index = self.seen.get(hash((ref, unit_id, started)))
            if index is not None and self._same(self.rows[index], ref, unit_id, started):
                self.problem(
                    self.lines[index], "row", "is already in the database (same person_ref, unit_id and started_at)"
                )


class Unreadable(Exception):
    """Where a CSV file itself breaks: the reader cannot go on reliably after that."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line


UNREADABLE = "cannot be read ({}); the rest of the file was not checked"  # what a report says of Unreadable


def csv_records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first file line, fields) of each CSV record, the header first (line 1), blank ones too.

    Raises ImportRefused when the header cannot be read, and Unreadable where the CSV breaks later."""
    with path.open("r", encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, strict=True)
        last_line = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as exc:
                if last_line == 0:
                    raise ImportRefused(path.name, [Problem(1, "header", f"cannot be read: {exc}")], 1) from None
                raise Unreadable(last_line + 1, str(exc)) from None
            line, last_line = last_line + 1, reader.line_num
            yield line, record


def _records(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(first file line, fields) of each non-blank CSV record after the header.

    Raises ImportRefused for a bad header, and Unreadable where the CSV itself breaks."""
    records = csv_records(path)
    _, header = next(records, (1, []))
    if [h.strip().lower() for h in header] != list(COLUMNS):
        found = ",".join(header)[:200]
        problem = Problem(1, "header", f"must be exactly {','.join(COLUMNS)} (found {found!r})")
        raise ImportRefused(path.name, [problem], 1)
    for line, record in records:
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
    except Unreadable as exc:
        checker.problem(exc.line, "row", UNREADABLE.format(exc))
    if progress is not None:
        progress("check", total_lines, total_lines)
    async with db.read_sessions() as session:
        await checker.check_database(session)
    if checker.total_problems:
        raise ImportRefused(path.name, checker.problems, checker.total_problems)
    return checker, sha256


def _summarise(summary: ImportSummary, rows: Sequence[CheckedRow]) -> None:
    summary.rows = len(rows)
    if not rows:
        return
    summary.ended = sum(1 for r in rows if r.ended_at is not None)
    summary.out_of_area = sum(1 for r in rows if r.out_of_area)
    summary.inappropriate = sum(1 for r in rows if r.out_of_area and r.oap_reason == INAPPROPRIATE_OAP_REASON)
    summary.s136 = sum(1 for r in rows if r.legal_basis in DETENTION_BASES)
    summary.s136_breached = sum(1 for r in rows if r.breached_at is not None)
    summary.first_started_at = min(r.started_at for r in rows).astimezone(UTC)
    summary.last_started_at = max(r.started_at for r in rows).astimezone(UTC)


# The columns an imported placement fills, in the order `write_rows` gives them: the id, a checked row's
# placement fields (named as the columns), its episode's id (its own) and who created it.
PLACEMENT_FIELDS = CheckedRow.__struct_fields__[:-2]
INSERT_COLUMNS = ("id", *PLACEMENT_FIELDS, "detention_id", "created_by")
# An imported episode's columns: the placement's id, legal basis, clock start, deadline, breach and end.
EPISODE_COLUMNS = ("id", "legal_basis", "clock_started_at", "deadline", "breached_at", "ended_at", "outcome", "legs")


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


async def _refuse_overbooking(
    uow: UnitOfWork, rows: Sequence[CheckedRow], lines: Sequence[int], file_name: str
) -> None:
    """Lock the units that rows still open would occupy, as every capacity change does, and refuse (naming
    each line) the open placements beyond the places a unit has free now: an import never overbooks."""
    open_lines: dict[str, list[int]] = {}
    for row, line in zip(rows, lines, strict=True):
        if row.ended_at is None:  # still placed, so it takes a place now
            open_lines.setdefault(row.unit_id, []).append(line)
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
    rows: Sequence[CheckedRow],
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
    bulk_episodes = BulkInsert(db.engine.dialect, table_of(Episode), EPISODE_COLUMNS)
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

        def chunk_params(start: int) -> tuple[list[tuple], list[tuple]]:
            placements, episodes = [], []
            for r in rows[start : start + CHUNK_ROWS]:
                placement_id = next(ids)
                fields = astuple(r)
                detention_id = None
                if r.deadline is not None:
                    detention_id = placement_id
                    episodes.append(
                        (placement_id, r.legal_basis, r.started_at, r.deadline, r.breached_at, r.ended_at, r.outcome, 1)
                    )
                placements.append((placement_id, *fields[:-2], detention_id, created_by))
            return bulk.params(placements), bulk_episodes.params(episodes)

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
                placement_params, episode_params = params
                if episode_params:  # first: the placements name their episodes
                    await connection.exec_driver_sql(bulk_episodes.sql, episode_params)
                await connection.exec_driver_sql(bulk.sql, placement_params)
                if progress is not None:
                    progress("write", min(following, total), total)
                params = await upcoming if upcoming is not None else ([], [])
                upcoming = None
        finally:
            if upcoming is not None:
                upcoming.cancel()
            if cache_size is not None:
                with contextlib.suppress(DBAPIError):
                    await connection.exec_driver_sql(f"PRAGMA cache_size = {int(cache_size)}")
        uow.audit(actor, "placement.import", "import", import_id, after=summary.audit_record(sha256))

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
