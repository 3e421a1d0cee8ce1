"""Reference data from one CSV: areas, providers, units and crisis alternatives (README, "Reference data";
API.md "Administration", "Beyond beds").

All or nothing, idempotent by code. Each record is matched by its code: an area by its ONS code, a provider by
its ODS code, a unit by its own `code`. A record the database does not have is created, one that differs is
updated (only the fields that differ), one that is the same is left alone: importing a file twice changes
nothing the second time.

The rules are the administration API's own, not a copy of them: each record's fields are converted by msgspec
to the type the API's body (`AreaIn`, `ProviderIn`, `UnitIn`) gives that field, so a value the API refuses is
refused here and named by its column; then every record is applied, in one write transaction, through the
functions the API's handlers run (`add_area`, `change_unit`, ...), which check it against the reference data
(a unit's provider and areas exist, ages are in order, no area both accepted and refused, codes and names
unique) and audit it with before and after, as actor `cli-import`. Each record is applied inside a SAVEPOINT:
a record those rules refuse is rolled back to it and named with its line and column, and the next record is
checked on. If any line is bad, or on a dry run, the whole transaction is rolled back: nothing is written.

Areas are applied first, then providers, then units, whatever their order in the file, so a unit may name a
provider or area that a later line of the same file defines. A unit names its provider by ODS code and its
areas by ONS code; a new unit starts closed with no places (its bed managers declare them), and an update never
touches its places or status.

Crisis alternatives (`alternative` records) are applied last, matched by their own `code`, through the
alternatives' own functions (`add_alternative`, `change_alternative`); their areas are ONS codes and their hours
words (capacity.alternatives.hours.parse): "mon-fri 09:00-17:00; sat 18:00-02:00; bank_holidays closed". Their
four columns may be left out of a file's header that has no alternatives (a file from before them still loads).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_type_hints

import msgspec
from msgspec import NODEFAULT
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from capacity.admin import service
from capacity.admin.schemas import AreaIn, ProviderIn, UnitIn
from capacity.alternatives import hours
from capacity.alternatives import service as alternatives
from capacity.alternatives.models import Alternative
from capacity.alternatives.schemas import AlternativeIn
from capacity.auth.security import Actor
from capacity.booking.units.models import Area, Provider, Unit
from capacity.codes import Code, values
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import DomainError
from capacity.imports.placements import (
    IMPORT_ACTOR,
    KEEP_PROBLEMS,
    UNREADABLE,
    ImportRefused,
    Problem,
    Unreadable,
    csv_records,
)

# The file's columns (any order in the header, each once). `record` says which kind of record a line is; each
# kind uses some of the other columns and leaves the rest empty.
COLUMNS = (
    "record",
    "code",
    "name",
    "region",
    "lat",
    "lon",
    "sector",
    "provider",
    "area",
    "kind",
    "postcode",
    "sex",
    "min_age",
    "max_age",
    "mother_and_baby",
    "accepts_intoxicated",
    "accepts_detained",
    "max_stay_days",
    "daily_cost",
    "accepts_from_areas",
    "refused_areas",
    "local_to_areas",
    "active",
    "areas",
    "opening_hours",
    "how_to_refer",
    "phone",
)
OPTIONAL_COLUMNS = ("areas", "opening_hours", "how_to_refer", "phone")  # only alternatives use them
AREA, PROVIDER, UNIT, ALTERNATIVE = "area", "provider", "unit", "alternative"
RECORDS = (AREA, PROVIDER, UNIT, ALTERNATIVE)  # also the order they are applied in
# The columns each record uses, and the field of the API's body each one is (None: handled here).
FIELDS: dict[str, dict[str, str | None]] = {
    AREA: {"code": "code", "name": "name", "region": "region", "lat": "lat", "lon": "lon", "active": None},
    PROVIDER: {"code": "ods_code", "name": "name", "sector": "sector"},
    UNIT: {
        "code": "code",
        "name": "name",
        "kind": "kind",
        "provider": None,  # an ODS code, turned into the provider's id
        "area": "area_code",
        "lat": "lat",
        "lon": "lon",
        "postcode": "postcode",
        "sex": "sex",
        "min_age": "min_age",
        "max_age": "max_age",
        "mother_and_baby": "mother_and_baby",
        "accepts_intoxicated": "accepts_intoxicated",
        "accepts_detained": "accepts_detained",
        "max_stay_days": "max_stay_days",
        "daily_cost": "daily_cost",
        "accepts_from_areas": "accepts_from_areas",
        "refused_areas": "refused_areas",
        "local_to_areas": "local_to_areas",
        "active": None,
    },
    ALTERNATIVE: {
        "code": "code",
        "name": "name",
        "kind": "kind",
        "areas": "areas",
        "min_age": "min_age",
        "max_age": "max_age",
        "opening_hours": "opening_hours",
        "how_to_refer": "how_to_refer",
        "phone": "phone",
        "lat": "lat",
        "lon": "lon",
        "active": None,
    },
}
BODIES: dict[str, type[msgspec.Struct]] = {AREA: AreaIn, PROVIDER: ProviderIn, UNIT: UnitIn, ALTERNATIVE: AlternativeIn}
# The API's functions that make a record's row from its body, and change one: (uow, actor, body | row, ...).
_WRITERS: dict[str, tuple[Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]]] = {
    AREA: (service.add_area, service.change_area),
    PROVIDER: (service.add_provider, service.change_provider),
    UNIT: (service.add_unit, service.change_unit),
    ALTERNATIVE: (alternatives.add_alternative, alternatives.change_alternative),
}
LIST_COLUMNS = ("accepts_from_areas", "refused_areas", "local_to_areas", "areas")  # space-separated ONS codes
WORDS = {"opening_hours": hours.parse}  # columns written in words, read into the API's shape
# The types of the columns that are not a body's field.
_OWN_TYPES: dict[str, Any] = {
    "provider": get_type_hints(ProviderIn, include_extras=True)["ods_code"],
    "active": bool,
}
# What the API's rules call a field, as the file's column (the rest are named alike).
_COLUMN_OF = {
    AREA: {},
    PROVIDER: {"ods_code": "code"},
    UNIT: {"provider_id": "provider", "area_code": "area"},
    ALTERNATIVE: {},
}
COMMENT = "#"  # a line whose first field starts with it is a comment (after the header)


@dataclass
class Record:
    line: int
    kind: str  # area | provider | unit | alternative
    code: str
    values: dict[str, Any]  # the body's fields that the file gave (a column left empty takes the API's default)
    active: bool = True
    provider_code: str | None = None  # a unit's provider, by ODS code


@dataclass(frozen=True)
class Change:
    line: int
    kind: str
    code: str
    name: str
    action: str  # create | update | unchanged
    fields: tuple[str, ...] = ()  # what an update changes (columns)

    def __str__(self) -> str:
        what = f"{self.kind} {self.code} {self.name!r}"
        changed = f": {', '.join(self.fields)}" if self.fields else ""
        return f"{self.action} {what} (line {self.line}){changed}"


@dataclass
class ReferenceSummary:
    file_name: str
    dry_run: bool = False
    changes: list[Change] = field(default_factory=list)

    def count(self, kind: str, action: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind and c.action == action)

    @property
    def changed(self) -> int:
        return sum(1 for c in self.changes if c.action != "unchanged")

    def _counts(self, action: str) -> str:
        parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind in RECORDS if (n := self.count(kind, action))]
        return ", ".join(parts) or "none"

    def __str__(self) -> str:
        if not self.changes:
            return f"{self.file_name}: no records; nothing to import"
        if not self.changed:
            return (
                f"{self.file_name}: nothing changed; every record is as the database has it "
                f"({self._counts('unchanged')} unchanged)"
            )
        head = (
            f"Dry run of {self.file_name}: nothing was written. It would make these changes:"
            if self.dry_run
            else f"Imported {self.file_name}:"
        )
        verb = ("would be " if self.dry_run else "") + "{}"
        lines = [
            head,
            f"  {verb.format('created')}: {self._counts('create')}",
            f"  {verb.format('updated')}: {self._counts('update')}",
            f"  unchanged: {self._counts('unchanged')}",
        ]
        lines += [f"  {c}" for c in self.changes if c.action != "unchanged"]
        return "\n".join(lines)


class _DryRun(Exception):
    """Rolls a dry run's transaction back once every record has been applied."""


class _Problems:
    def __init__(self) -> None:
        self.kept: list[Problem] = []
        self.total = 0

    def add(self, line: int, column: str, message: str) -> None:
        self.total += 1
        if len(self.kept) < KEEP_PROBLEMS:
            self.kept.append(Problem(line, column, message))


# --- reading and typing the file ---------------------------------------------------------------------------


def _rows(path: Path, problems: _Problems) -> Iterator[tuple[int, dict[str, str]]]:
    """(file line, {column: text}) for each record after the header, skipping blank and comment lines.
    Raises ImportRefused for a bad header; stops at the first line the CSV reader cannot read (naming it)."""
    records = csv_records(path)
    header = [h.strip().lower() for h in next(records, (1, []))[1]]
    missing = [c for c in COLUMNS if c not in header and c not in OPTIONAL_COLUMNS]
    unknown = [h for h in header if h not in COLUMNS]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if missing or unknown or repeated:
        said = [f"lacks {', '.join(missing)}"] if missing else []
        said += [f"has unknown {', '.join(unknown)}"] if unknown else []
        said += [f"repeats {', '.join(repeated)}"] if repeated else []
        message = f"{'; '.join(said)} (the columns are {','.join(COLUMNS)})"
        raise ImportRefused(path.name, [Problem(1, "header", message)], 1)
    try:
        for line, fields in records:
            if not any(f.strip() for f in fields) or fields[0].lstrip().startswith(COMMENT):
                continue
            if len(fields) != len(header):
                problems.add(line, "row", f"has {len(fields)} fields; the header has {len(header)}")
                continue
            row = {name: "" for name in OPTIONAL_COLUMNS}
            yield line, row | {name: text.strip() for name, text in zip(header, fields, strict=True)}
    except Unreadable as exc:
        problems.add(exc.line, "row", UNREADABLE.format(exc))


def _types(body: type[msgspec.Struct]) -> dict[str, Any]:
    return get_type_hints(body, include_extras=True)


_FIELD_TYPES = {kind: _types(body) for kind, body in BODIES.items()}
_REQUIRED = {
    kind: {f.name for f in msgspec.structs.fields(body) if f.default is NODEFAULT and f.default_factory is NODEFAULT}
    for kind, body in BODIES.items()
}


def _codes(wanted: Any) -> tuple[str, ...] | None:
    """The values of the code set (a StrEnum of capacity.codes) a field's type takes, if it is one."""
    for member in (wanted, *get_args(wanted)):
        if isinstance(member, type) and issubclass(member, Code):
            return values(member)
    return None


def _describe(raw: Any, wanted: Any, error: msgspec.ValidationError) -> str:
    """A refused value's problem, as the report says it: the codes it may be, or msgspec's reason."""
    if isinstance(raw, list):  # name the codes of the list that are bad, not the whole list
        item_type = get_args(get_args(wanted)[0])[0] if get_args(wanted) else str
        bad = []
        for item in raw:
            try:
                msgspec.convert(item, item_type)
            except msgspec.ValidationError as exc:
                bad.append(_describe(item, item_type, exc))
        if bad:
            return "; ".join(bad)
    if wanted is bool:
        return f"{str(raw)[:20]!r} is not true or false"
    if (codes := _codes(wanted)) is not None:
        return f"{str(raw)[:20]!r} is not one of {', '.join(codes)}"
    reason = str(error).split(" - at `", 1)[0]
    return f"{str(raw)[:40]!r}: {reason}"


def _parse(line: int, row: dict[str, str], problems: _Problems) -> Record | None:
    """One line as a record, each column converted to the type the API gives its field (lax: CSV is text);
    every bad column is named. None if the line is bad."""
    before = problems.total
    kind = row["record"].lower()
    if kind not in FIELDS:
        problems.add(line, "record", f"{row['record'][:20]!r} is not one of {', '.join(RECORDS)}")
        return None
    used = FIELDS[kind]
    for column in COLUMNS:
        if column != "record" and column not in used and row[column]:
            problems.add(line, column, f"is not a column of a {kind} record; leave it empty")
    code = row["code"]
    if not code:
        problems.add(line, "code", f"is empty: a {kind} is matched by its code")
    values: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for column, name in used.items():
        text = row[column]
        if not text:
            if name in _REQUIRED[kind]:
                problems.add(line, column, f"is empty; a {kind} needs it")
            continue
        raw: Any = text.split() if column in LIST_COLUMNS else text
        if column in WORDS:
            try:
                raw = WORDS[column](text)
            except ValueError as exc:
                problems.add(line, column, str(exc))
                continue
        wanted = _FIELD_TYPES[kind][name] if name is not None else _OWN_TYPES[column]
        if wanted is bool:
            raw = raw.lower()
        try:
            value = msgspec.convert(raw, wanted, strict=False)
        except msgspec.ValidationError as exc:
            problems.add(line, column, _describe(raw, wanted, exc))
            continue
        if name is None:
            own[column] = value
        else:
            values[name] = value
    if problems.total > before:
        return None
    return Record(line, kind, code, values, active=own.get("active", True), provider_code=own.get("provider"))


# --- applying the records ----------------------------------------------------------------------------------


def _same(old: object, new: object, name: str) -> bool:
    if isinstance(old, list) or isinstance(new, list):
        return sorted(set(old or [])) == sorted(set(new or []))  # type: ignore[call-overload]
    if name == "daily_cost" and old is not None and new is not None:
        return round(float(old), 2) == round(float(new), 2)  # type: ignore[arg-type]
    return old == new


def _differences(row: Any, values: dict[str, Any], kind: str, active: bool) -> dict[str, Any]:
    """The fields (and `active`, for the kinds that have it) whose values differ from the row's: the changes
    to make. Never its code: the row was matched by it."""
    code = FIELDS[kind]["code"]
    attribute = service.UNIT_ATTRIBUTE if kind == UNIT else {}
    changes = {
        name: value
        for name, value in values.items()
        if name != code and not _same(getattr(row, attribute.get(name, name)), value, name)
    }
    if "active" in FIELDS[kind] and row.active != active:
        changes["active"] = active
    return changes


def _columns(kind: str, names: Iterable[str]) -> tuple[str, ...]:
    of = _COLUMN_OF[kind]
    return tuple(of.get(n, n) for n in names)


class _Applier:
    """Applies the records in one transaction, each in its own SAVEPOINT, through the API's functions."""

    def __init__(self, uow: UnitOfWork, actor: Actor, problems: _Problems, refused: dict[tuple[str, str], int]) -> None:
        self.uow = uow
        self.actor = actor
        self.problems = problems
        self.changes: list[Change] = []
        # The rows the file's records match, by kind and code (a provider's: its ODS code).
        self.known: dict[str, dict[str, Any]] = {kind: {} for kind in RECORDS}
        self.refused = refused  # (kind, code) -> the line that was refused

    async def load(self, records: list[Record]) -> None:
        """The rows the file's codes match. The units are locked first, before anything reads the clock
        (UnitOfWork's rule), as every change to a unit locks it."""
        session = self.uow.session
        codes = {kind: sorted({r.code for r in records if r.kind == kind}) for kind in RECORDS}
        unit_ids = (await session.scalars(select(Unit.id).where(Unit.code.in_(codes[UNIT])))).all()
        locked = await self.uow.lock_units(unit_ids)
        await service.load_rules(session, list(locked.values()))
        self.known[UNIT] = {u.code: u for u in locked.values() if u.code is not None}
        areas = await session.scalars(select(Area).where(Area.code.in_(codes[AREA])))
        self.known[AREA] = {a.code: a for a in areas}
        wanted = sorted(set(codes[PROVIDER]) | {r.provider_code for r in records if r.provider_code})
        providers = await session.scalars(select(Provider).where(Provider.ods_code.in_(wanted)))
        self.known[PROVIDER] = {p.ods_code: p for p in providers if p.ods_code is not None}
        found = await session.scalars(select(Alternative).where(Alternative.code.in_(codes[ALTERNATIVE])))
        self.known[ALTERNATIVE] = {a.code: a for a in found if a.code is not None}

    async def apply(self, record: Record, work: Callable[[], Any]) -> None:
        """Run one record's change in a SAVEPOINT; a refusal by the API's rules is named and rolled back."""
        uow = self.uow
        audits, events = len(uow.audit_entries), len(uow.events)
        try:
            async with uow.session.begin_nested():
                await work()
        except DomainError as exc:
            field_name = (exc.field or "row").split(".", 1)[0]  # opening_hours.mon[0].opens: its column
            column = _COLUMN_OF[record.kind].get(field_name, field_name)
            self._refuse(record, column, exc.detail)
        except IntegrityError as exc:
            self._refuse(record, "row", f"the database refused it ({str(exc.orig).splitlines()[0][:200]})")
        else:
            return
        del uow.audit_entries[audits:], uow.events[events:]

    def _refuse(self, record: Record, column: str, message: str) -> None:
        self.problems.add(record.line, column, message)
        self.refused[(record.kind, record.code)] = record.line

    def _note(self, record: Record, action: str, names: list[str] | tuple[str, ...] = ()) -> None:
        name = str(record.values.get("name", ""))
        self.changes.append(Change(record.line, record.kind, record.code, name, action, _columns(record.kind, names)))

    async def write(self, record: Record) -> None:
        """Make the record's row (retired at once if the file says so), or change the fields of it that differ
        from the file's, through the API's functions for its kind."""
        if not self._references_ok(record):
            return
        values = record.values
        if record.kind == UNIT:
            provider = self.known[PROVIDER].get(record.provider_code or "")
            if provider is None:
                message = f"no provider with ODS code {record.provider_code} in the file or database"
                self._refuse(record, "provider", message)
                return
            values = {**values, "provider_id": provider.id}
        body = msgspec.convert(values, BODIES[record.kind])
        # The body's fields as the row keeps them (an alternative's hours as plain JSON).
        wanted = alternatives.body_values(body) if isinstance(body, AlternativeIn) else msgspec.structs.asdict(body)
        add, change = _WRITERS[record.kind]
        known = self.known[record.kind]
        existing = known.get(record.code)

        async def work() -> None:
            if existing is None:
                known[record.code] = made = await add(self.uow, self.actor, body)
                if not record.active:
                    await change(self.uow, self.actor, made, {"active": False})
                self._note(record, "create")
                return
            changes = _differences(existing, wanted, record.kind, record.active)
            if changes:
                await change(self.uow, self.actor, existing, changes)
            self._note(record, "update" if changes else "unchanged", list(changes))

        await self.apply(record, work)

    def _references_ok(self, record: Record) -> bool:
        """A unit or alternative naming a provider or area whose own line was refused is refused too, saying
        which line."""
        named = [("provider", PROVIDER, record.provider_code)]
        named += [("area", AREA, record.values.get("area_code"))]
        named += [(column, AREA, code) for column in LIST_COLUMNS for code in record.values.get(column, [])]
        ok = True
        for column, kind, code in named:
            if code is not None and (line := self.refused.get((kind, code))) is not None:
                self.problems.add(record.line, column, f"names {kind} {code}, whose line {line} is refused")
                ok = False
        return ok


def _duplicates(records: list[Record], problems: _Problems) -> list[Record]:
    """Refuse a second line for the same record (kind and code); keep the first."""
    first: dict[tuple[str, str], int] = {}
    kept = []
    for record in records:
        key = (record.kind, record.code)
        if key in first:
            problems.add(record.line, "code", f"{record.kind} {record.code} is already on line {first[key]}")
        else:
            first[key] = record.line
            kept.append(record)
    return kept


async def import_reference(
    db: Database, path: Path | str, *, dry_run: bool = False, actor: Actor = IMPORT_ACTOR
) -> ReferenceSummary:
    """Check and apply every record of a reference CSV in one transaction: all of it, or (any line bad, or a
    dry run) nothing. Raises ImportRefused naming every bad line and column."""
    path = Path(path)
    summary = ReferenceSummary(file_name=os.path.basename(path), dry_run=dry_run)
    problems = _Problems()
    parsed: list[Record] = []
    refused: dict[tuple[str, str], int] = {}  # the lines refused by their types, for the units that name them
    for line, row in _rows(path, problems):
        record = _parse(line, row, problems)
        if record is not None:
            parsed.append(record)
        elif row["code"]:
            refused.setdefault((row["record"].lower(), row["code"]), line)
    records = _duplicates(parsed, problems)
    if not records and not problems.total:
        return summary

    async def work(uow: UnitOfWork) -> list[Change]:
        applier = _Applier(uow, actor, problems, refused)
        await applier.load(records)
        for kind in RECORDS:
            for record in records:
                if record.kind == kind:
                    await applier.write(record)
        if problems.total:
            raise ImportRefused(path.name, problems.kept, problems.total)
        if dry_run:
            summary.changes = sorted(applier.changes, key=lambda c: c.line)
            raise _DryRun()
        return applier.changes

    try:
        changes = await db.write(work)
    except _DryRun:
        return summary
    summary.changes = sorted(changes, key=lambda c: c.line)
    return summary
