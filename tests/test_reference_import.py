"""`capacity import reference FILE.csv [--dry-run]`: areas, providers and units in, all or nothing, idempotent
by code, every change audited; on SQLite and PostgreSQL, each test on an empty database of its own."""

from __future__ import annotations

import asyncio
import csv
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from capacity.admin.service import load_rules
from capacity.audit import AuditEntry
from capacity.booking.units.models import Area, Provider, Unit
from capacity.cli import main, migrate_to_head
from capacity.db.engine import Database
from capacity.demo import AREAS as DEMO_AREAS
from capacity.imports.placements import ImportRefused
from capacity.imports.reference import COLUMNS, ReferenceSummary, import_reference
from support.csv_files import write_csv
from support.databases import own_database
from support.demo import ENGINES
from support.settings import settings_for

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reference-england.csv"
BANES, BRISTOL, WILTSHIRE = "E06000022", "E06000023", "E06000054"
UTLA_CODE = re.compile(r"^E(06|07|08|09|10)\d{6}$")


def area(code: str, name: str, **more: object) -> dict:
    return {"record": "area", "code": code, "name": name, "lat": 51.4, "lon": -2.5, "region": "South West", **more}


def provider(code: str, name: str, sector: str = "nhs") -> dict:
    return {"record": "provider", "code": code, "name": name, "sector": sector}


def unit(code: str, **more: object) -> dict:
    values = {
        "record": "unit",
        "code": code,
        "name": f"Unit {code}",
        "kind": "s136_suite",
        "provider": "XAA",
        "area": BRISTOL,
        "lat": 51.46,
        "lon": -2.59,
        "min_age": 16,
        "accepts_detained": "true",
        "local_to_areas": f"{BRISTOL} {BANES}",
    }
    return {**values, **more}


SMALL = [
    area(BRISTOL, "Bristol, City of"),
    area(BANES, "Bath and North East Somerset", lat=51.356, lon=-2.4753),
    provider("XAA", "Fictional Trust A"),
    unit("XAA-136"),
    unit("XAA-CH", kind="crisis_house", max_stay_days=14, daily_cost=180, refused_areas=BANES, local_to_areas=""),
]


@pytest.fixture(params=ENGINES)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated database with nothing in it, of this test's own."""
    with own_database(request.param, tmp_path, "reference") as url:
        migrate_to_head(url)
        yield url


def run(url: str, path: Path, *, dry_run: bool = False) -> ReferenceSummary:
    async def go() -> ReferenceSummary:
        db = Database(settings_for(url))
        try:
            return await import_reference(db, path, dry_run=dry_run)
        finally:
            await db.dispose()

    return asyncio.run(go())


def refused(url: str, path: Path) -> ImportRefused:
    with pytest.raises(ImportRefused) as caught:
        run(url, path)
    return caught.value


def cli(url: str, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setenv("CAPACITY_DATABASE_URL", url)
    return CliRunner().invoke(main, ["import", "reference", *args])


def state(url: str) -> dict:
    """Everything the import can write, as plain values: rows by code, and the audit log."""

    async def go() -> dict:
        db = Database(settings_for(url))
        try:
            async with db.read_sessions() as session:
                rows = await session.scalars(select(Area))
                areas = {a.code: (a.name, a.lat, a.lon, a.region, a.active) for a in rows}
                providers = {p.ods_code: (p.name, p.sector) for p in await session.scalars(select(Provider))}
                units = list(await session.scalars(select(Unit)))
                await load_rules(session, units)
                unit_rows = {
                    u.code: (
                        u.name,
                        u.kind,
                        u.area_code,
                        u.status,
                        u.open_places,
                        u.active,
                        u.max_stay_days,
                        u.daily_cost,
                        u.refuses_areas,
                        u.local_to_areas,
                    )
                    for u in units
                }
                audit = [
                    (e.action, e.username, e.object_id, e.before, e.after)
                    for e in await session.scalars(select(AuditEntry).order_by(AuditEntry.id))
                ]
                return {"areas": areas, "providers": providers, "units": unit_rows, "audit": audit}
        finally:
            await db.dispose()

    return asyncio.run(go())


# --- the example file -----------------------------------------------------------------------------------------


def example_areas() -> list[dict[str, str]]:
    with EXAMPLE.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["record"].startswith("#")]
    return [r for r in rows if r["record"] == "area"]


def test_the_example_lists_englands_upper_tier_authorities_once_each() -> None:
    """153 in 2023: 21 counties, 63 unitary authorities (Isles of Scilly among them), 36 metropolitan
    districts, 32 London boroughs and the City of London; the demo's areas among them."""
    areas = example_areas()
    codes = [a["code"] for a in areas]
    assert len(codes) == 153 and len(set(codes)) == 153
    assert len({a["name"] for a in areas}) == 153
    assert all(UTLA_CODE.match(c) for c in codes), [c for c in codes if not UTLA_CODE.match(c)]
    assert {prefix: sum(c.startswith(prefix) for c in codes) for prefix in ("E06", "E08", "E09", "E10")} == {
        "E06": 63,
        "E08": 36,
        "E09": 33,
        "E10": 21,
    }
    assert "E10000027" not in codes  # Somerset County Council, abolished 1 April 2023 for E06000066
    by_code = {a["code"]: a for a in areas}
    assert by_code["E09000001"]["name"] == "City of London" and by_code["E06000053"]["name"] == "Isles of Scilly"
    for code, _name, region, _lat, _lon in DEMO_AREAS:
        assert code in by_code, code
        assert by_code[code]["region"] == region
    assert all(-6.5 < float(a["lon"]) < 1.8 and 49.8 < float(a["lat"]) < 55.9 for a in areas)


def test_the_example_file_imports_into_an_empty_database_once(empty_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cli(empty_url, monkeypatch, str(EXAMPLE))
    assert first.exit_code == 0, first.output
    assert "created: 153 areas, 3 providers, 5 units, 2 alternatives" in first.output
    after = state(empty_url)
    assert (len(after["areas"]), len(after["providers"]), len(after["units"])) == (153, 3, 5)
    assert after["areas"][BRISTOL][:4] == ("Bristol, City of", 51.4545, -2.5879, "South West")
    # New units start closed with no places: their bed managers declare them.
    assert {(row[3], row[4], row[5]) for row in after["units"].values()} == {("closed", 0, True)}
    assert len(after["audit"]) == 163
    assert {(action, user) for action, user, *_ in after["audit"]} == {
        ("admin.area.create", "cli-import"),
        ("admin.provider.create", "cli-import"),
        ("admin.unit.create", "cli-import"),
        ("admin.alternative.create", "cli-import"),
    }

    again = cli(empty_url, monkeypatch, str(EXAMPLE))
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output
    assert "153 areas, 3 providers, 5 units, 2 alternatives unchanged" in again.output
    assert state(empty_url) == after  # not a row, not an audit entry more


# --- changes ------------------------------------------------------------------------------------------------


def test_a_changed_line_updates_its_row_and_audits_before_and_after(empty_url: str, tmp_path: Path) -> None:
    path = write_csv(tmp_path / "ref.csv", COLUMNS, SMALL)
    assert run(empty_url, path).changed == 5
    before = state(empty_url)
    changed = [
        SMALL[0],
        area(BANES, "Bath & NE Somerset", lat=51.356, lon=-2.4753),
        SMALL[2],
        unit("XAA-136", name="Bristol Place of Safety", local_to_areas=BRISTOL),
        SMALL[4],
        area(WILTSHIRE, "Wiltshire", lat=51.2971, lon=-1.9446),  # new
    ]
    summary = run(empty_url, write_csv(path, COLUMNS, changed))
    assert [(c.kind, c.code, c.action, c.fields) for c in summary.changes if c.action != "unchanged"] == [
        ("area", BANES, "update", ("name",)),
        ("unit", "XAA-136", "update", ("name", "local_to_areas")),
        ("area", WILTSHIRE, "create", ()),
    ]
    assert (summary.count("area", "unchanged"), summary.count("provider", "unchanged")) == (1, 1)
    after = state(empty_url)
    assert after["areas"][BANES][0] == "Bath & NE Somerset"
    assert after["units"]["XAA-136"][0] == "Bristol Place of Safety"
    assert after["units"]["XAA-136"][9] == [BRISTOL]
    assert after["units"]["XAA-CH"] == before["units"]["XAA-CH"]
    new_entries = after["audit"][len(before["audit"]) :]
    assert [(action, user) for action, user, *_ in new_entries] == [
        ("admin.area.update", "cli-import"),
        ("admin.area.create", "cli-import"),
        ("admin.unit.update", "cli-import"),
    ]
    _, _, _, area_before, area_after = new_entries[0]
    assert (area_before["name"], area_after["name"]) == ("Bath and North East Somerset", "Bath & NE Somerset")
    _, _, _, unit_before, unit_after = new_entries[2]
    assert (unit_before["name"], unit_after["name"]) == ("Unit XAA-136", "Bristol Place of Safety")
    assert (unit_before["local_to_areas"], unit_after["local_to_areas"]) == (sorted([BANES, BRISTOL]), [BRISTOL])
    assert after["units"]["XAA-136"][3:5] == ("closed", 0)  # an update never touches places


def test_a_dry_run_prints_the_plan_and_writes_nothing(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_csv(tmp_path / "ref.csv", COLUMNS, SMALL)
    planned = cli(empty_url, monkeypatch, str(path), "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert "Dry run of ref.csv: nothing was written" in planned.output
    assert "would be created: 2 areas, 1 provider, 2 units" in planned.output
    assert f"create area {BRISTOL} 'Bristol, City of' (line 2)" in planned.output
    assert "create unit XAA-CH 'Unit XAA-CH' (line 6)" in planned.output
    assert state(empty_url) == {"areas": {}, "providers": {}, "units": {}, "audit": []}

    assert cli(empty_url, monkeypatch, str(path)).exit_code == 0
    written = state(empty_url)
    write_csv(path, COLUMNS, [*SMALL[:3], unit("XAA-136", min_age=18), SMALL[4]])
    planned = cli(empty_url, monkeypatch, str(path), "--dry-run")
    assert planned.exit_code == 0, planned.output
    assert "would be updated: 1 unit" in planned.output
    assert "update unit XAA-136 'Unit XAA-136' (line 5): min_age" in planned.output
    assert state(empty_url) == written


# --- refusals -----------------------------------------------------------------------------------------------


def trust_c(code: str, **more: object) -> dict:
    return unit(code, provider="XCC", local_to_areas=BRISTOL, **more)


def test_a_file_with_bad_lines_names_every_line_and_field_and_writes_nothing(empty_url: str, tmp_path: Path) -> None:
    rows = [
        area(BRISTOL, "Bristol, City of"),  # line 2: good
        area("E6000023", "Not a code"),  # 3
        area(BANES, "Bath", lat=70, sector="nhs"),  # 4: latitude out of the UK; a provider's column
        {"record": "ward", "code": "W1", "name": "?"},  # 5
        provider("XAA", "Fictional Trust A", sector="council"),  # 6
        provider("XBB", ""),  # 7: no name
        unit("XCC-1", provider="XBB", local_to_areas=BRISTOL),  # 8: names the refused provider of line 7
        provider("XCC", "Fictional Trust C"),  # 9: good
        trust_c("XCC-2", min_age=30, max_age=20),  # 10: ages out of order (the API's rule)
        trust_c("XCC-3", refused_areas=BRISTOL, accepts_from_areas=BRISTOL),  # 11: both accepted and refused
        trust_c("XCC-4", kind="ward", accepts_detained="maybe", daily_cost=-1),  # 12
        area(BRISTOL, "Bristol again"),  # 13: the same area twice
        unit("XCC-5", provider="XCC", local_to_areas=f"{BRISTOL} {BANES}"),  # 14: BANES is refused on line 4
    ]
    problem = refused(empty_url, write_csv(tmp_path / "bad.csv", COLUMNS, rows))
    assert [(p.line, p.field) for p in problem.problems] == [
        (3, "code"),
        (4, "lat"),
        (4, "sector"),
        (5, "record"),
        (6, "sector"),
        (7, "name"),
        (8, "provider"),
        (10, "max_age"),
        (11, "refused_areas"),
        (12, "accepts_detained"),
        (12, "daily_cost"),
        (12, "kind"),
        (13, "code"),
        (14, "local_to_areas"),
    ]
    assert problem.bad_lines == [3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14]
    report = problem.report()
    assert report.startswith("bad.csv: 14 problems; nothing was imported")
    assert "line 10, max_age: max_age is below min_age" in report
    assert "line 8, provider: names provider XBB, whose line 7 is refused" in report
    assert "line 6, sector: 'council'" in report
    assert state(empty_url) == {"areas": {}, "providers": {}, "units": {}, "audit": []}


def test_a_unit_naming_an_unknown_provider_or_area_is_refused_by_its_line(
    empty_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [
        *SMALL[:3],
        unit("XAA-1", provider="XZZ"),  # line 5
        unit("XAA-2", area="E06000066"),  # 6: an area neither in the file nor in the database
        unit("XAA-3", local_to_areas="E06000054"),  # 7
    ]
    path = write_csv(tmp_path / "ref.csv", COLUMNS, rows)
    problem = refused(empty_url, path)
    assert [(p.line, p.field) for p in problem.problems] == [(5, "provider"), (6, "area"), (7, "local_to_areas")]
    assert "no provider with ODS code XZZ" in str(problem.problems[0])
    assert "E06000066" in str(problem.problems[1]) and "E06000054" in str(problem.problems[2])
    # Through the command: status 1, the lines named, nothing written (not even the good lines' areas).
    result = cli(empty_url, monkeypatch, str(path))
    assert result.exit_code == 1
    assert "line 5, provider:" in result.output and "line 6, area:" in result.output
    assert state(empty_url) == {"areas": {}, "providers": {}, "units": {}, "audit": []}


def test_a_bad_header_is_refused(empty_url: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("record,code,name,colour\narea,E06000023,Bristol,red\n")
    problem = refused(empty_url, path)
    assert [(p.line, p.field) for p in problem.problems] == [(1, "header")]
    assert "lacks region" in problem.problems[0].message and "unknown colour" in problem.problems[0].message
