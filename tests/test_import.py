"""`capacity import placements FILE.csv`: history in, all or nothing, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_type_hints

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from capacity.audit import AuditEntry
from capacity.auth.scope import SYSTEM
from capacity.booking.detentions.episodes import episode_fields
from capacity.booking.detentions.models import Episode
from capacity.booking.persons import HOME_AREA, PersonIn
from capacity.booking.placements.models import Placement
from capacity.booking.placements.schemas import PlacementIn
from capacity.booking.placements.service import placement_geography, start_placement
from capacity.booking.units.models import Area, Unit
from capacity.cli import main
from capacity.codes import Ethnicity, LegalBasis, OapReason, Outcome, PersonSex, values
from capacity.db.engine import Database
from capacity.db.unit_of_work import ROW_LOCKS, UnitOfWork
from capacity.errors import Invalid
from capacity.imports.placements import (
    COLUMNS,
    EPISODE_COLUMNS,
    FIELD_TYPES,
    INSERT_COLUMNS,
    PLACEMENT_FIELDS,
    CheckedRow,
    ImportRefused,
    import_placements,
    oap_reason_problem,
)
from support.api import Api
from support.csv_files import write_csv
from support.demo import START
from support.settings import settings_for

BANES, BRISTOL, SOMERSET, BIRMINGHAM = "E06000022", "E06000023", "E06000066", "E08000025"


def row(unit: Unit | str, **overrides) -> dict:
    values = {
        "person_ref": "HIST-0001",
        "age": "34",
        "sex": "female",
        "ethnicity": "A",
        "home_area": BRISTOL,
        "unit_id": unit if isinstance(unit, str) else unit.id,
        "legal_basis": "informal",
        "started_at": "2025-06-01T10:00:00Z",
        "ended_at": "2025-06-08T10:00:00Z",
        "oap_reason": "",
        "outcome": "discharged",
    }
    values.update(overrides)
    return values


async def placements_and_audit(api: Api) -> tuple[int, int]:
    async with api.db.read_sessions() as session:
        return (
            await session.scalar(select(func.count()).select_from(Placement)),
            await session.scalar(select(func.count()).select_from(AuditEntry)),
        )


async def run_import(api: Api, path: Path):
    return await import_placements(api.db, path)


async def test_a_good_file_imports_with_the_figures_a_live_placement_gets(api: Api, tmp_path: Path) -> None:
    private = await api.unit("Northfield Park Hospital Acute")
    suite = await api.unit("Bristol Place of Safety")
    ward = await api.unit("Callington Road")
    before = await placements_and_audit(api)
    path = write_csv(
        tmp_path / "history.csv",
        COLUMNS,
        [
            # Out of area (a private hospital in Birmingham) for want of a bed at home.
            row(private, person_ref="HIST-0001", legal_basis="s3", oap_reason="10", outcome="detained_s3"),
            # s136 at the Bristol suite, ended 26 hours after arrival: past the 24-hour deadline.
            row(
                suite,
                person_ref="HIST-0002",
                age="17",
                sex="male",
                legal_basis="s136",
                started_at="2026-01-10T22:00:00Z",
                ended_at="2026-01-12T00:00:00Z",
                outcome="admitted_informal",
            ),
            # Local, in British Summer Time, still open.
            row(
                ward,
                person_ref="HIST-0003",
                ethnicity="",
                started_at="2025-07-01T09:30:00+01:00",
                ended_at="",
                outcome="",
                legal_basis="s2",
            ),
            # An s136 that ended in time.
            row(
                suite,
                person_ref="HIST-0004",
                legal_basis="s136",
                started_at="2026-02-01T08:00:00Z",
                ended_at="2026-02-01T20:00:00Z",
                outcome="referred_community",
            ),
        ],
    )
    summary = await run_import(api, path)
    assert (summary.rows, summary.ended, summary.out_of_area, summary.inappropriate) == (4, 3, 1, 1)
    assert (summary.s136, summary.s136_breached) == (2, 1)

    async with api.db.read_sessions() as session:
        got = {
            p.person_ref: p
            for p in (await session.scalars(select(Placement).where(Placement.person_ref.like("HIST-%")))).all()
        }
        bristol = await session.get(Area, BRISTOL)
        expected_out, expected_km = placement_geography(bristol, private)
    assert expected_out is True and expected_km > 100
    oap = got["HIST-0001"]
    assert (oap.out_of_area, oap.distance_km, oap.oap_reason) == (True, expected_km, "10")
    assert oap.daily_cost == private.daily_cost and oap.created_by == "cli-import"
    assert oap.episode is None and oap.detention_id is None
    s136 = got["HIST-0002"]
    assert s136.out_of_area is False and s136.oap_reason is None
    # Its own episode, named by its id, with the clock from its start.
    assert s136.episode is not None and s136.detention_id == s136.id
    assert s136.episode.clock_started_at == datetime(2026, 1, 10, 22, tzinfo=UTC)
    assert s136.episode.deadline == datetime(2026, 1, 11, 22, tzinfo=UTC)
    assert s136.episode.breached_at == s136.episode.deadline
    assert got["HIST-0003"].started_at == datetime(2025, 7, 1, 8, 30, tzinfo=UTC)
    assert got["HIST-0003"].ended_at is None and got["HIST-0003"].person_ethnicity is None
    later = got["HIST-0004"].episode
    assert later is not None and later.deadline == datetime(2026, 2, 2, 8, tzinfo=UTC)
    assert later.breached_at is None

    # One audit entry for the import: counts and the file, no person data.
    after = await placements_and_audit(api)
    assert after == (before[0] + 4, before[1] + 1)
    async with api.db.read_sessions() as session:
        entry = await session.scalar(select(AuditEntry).where(AuditEntry.action == "placement.import"))
    assert (entry.username, entry.role, entry.object_id) == ("cli-import", "system", summary.import_id)
    assert entry.after["file"] == "history.csv" and entry.after["rows"] == 4 and len(entry.after["sha256"]) == 64
    assert "HIST-" not in json.dumps(entry.after)


async def test_an_import_computes_what_a_direct_admission_computes(api: Api, tmp_path: Path) -> None:
    ward = await api.unit("Callington Road")  # not local to Somerset
    someone = {"ref": "LIVE-1", "age": 40, "sex": "male", "home_area": SOMERSET}
    live = await api.admit("Callington Road", "s3", someone, oap_reason="11")
    assert live.status_code == 201, live.text
    suite = await api.unit("Bristol Place of Safety")
    live_136 = await api.admit(
        "Bristol Place of Safety", "s136", {"ref": "LIVE-2", "age": 30, "sex": "male", "home_area": BANES}
    )
    assert live_136.status_code == 201, live_136.text
    at = START.isoformat()
    await run_import(
        api,
        write_csv(
            tmp_path / "same.csv",
            COLUMNS,
            [
                row(
                    ward,
                    person_ref="HIST-1",
                    age="40",
                    sex="male",
                    home_area=SOMERSET,
                    legal_basis="s3",
                    oap_reason="11",
                    started_at=at,
                    ended_at="",
                    outcome="",
                ),
                row(
                    suite,
                    person_ref="HIST-2",
                    age="30",
                    sex="male",
                    home_area=BANES,
                    legal_basis="s136",
                    started_at=at,
                    ended_at="",
                    outcome="",
                ),
            ],
        ),
    )
    async with api.db.read_sessions() as session:
        by_ref = {p.person_ref: p for p in (await session.scalars(select(Placement))).all()}
    for live_ref, imported_ref in (("LIVE-1", "HIST-1"), ("LIVE-2", "HIST-2")):
        a, b = by_ref[live_ref], by_ref[imported_ref]
        for column in (
            "out_of_area",
            "distance_km",
            "daily_cost",
            "oap_reason",
            "started_at",
        ):
            assert getattr(a, column) == getattr(b, column), column
        clock = ("s136_clock_started_at", "s136_deadline", "s136_breached_at")
        live, imported = episode_fields(a.episode), episode_fields(b.episode)
        assert [live.get(k) for k in clock] == [imported.get(k) for k in clock]
    assert by_ref["HIST-1"].out_of_area is True
    hist_2 = by_ref["HIST-2"].episode
    assert hist_2 is not None and hist_2.deadline == START + timedelta(hours=24)


async def test_the_oap_reason_rule_is_start_placements(api: Api) -> None:
    """The import's oap_reason rule refuses exactly what start_placement refuses, for every unit and area."""
    checked = 0
    async with api.db.write_sessions() as session:
        uow = UnitOfWork(session, api.clock, api.db.settings, ROW_LOCKS)
        units = (await session.scalars(select(Unit))).all()
        areas = (await session.scalars(select(Area))).all()
        for unit in units:
            for area in areas:
                out_of_area, _ = placement_geography(area, unit)
                for reason in (None, "10"):
                    try:
                        await start_placement(
                            uow,
                            actor=SYSTEM,
                            unit=unit,
                            home=area,
                            person={
                                "person_ref": "RULE-1",
                                "person_age": 40,
                                "person_sex": "male",
                                "person_ethnicity": None,
                                "home_area": area.code,
                            },
                            legal_basis="informal",
                            started_at=START,
                            s136_clock_started_at=None,
                            detention_id=None,
                            oap_reason=reason,
                            hold_id=None,
                        )
                        refused = False
                    except Invalid as exc:
                        assert exc.field == "oap_reason"
                        refused = True
                    assert refused == (oap_reason_problem(out_of_area, unit.kind, reason) is not None), (
                        unit.name,
                        area.code,
                        reason,
                    )
                    checked += 1
        await session.rollback()
    assert checked == 2 * len(units) * len(areas) > 100


async def test_a_file_with_bad_rows_changes_nothing_and_names_each_line_and_field(api: Api, tmp_path: Path) -> None:
    ward = await api.unit("Callington Road")
    rows = [row(ward, person_ref=f"HIST-{i}") for i in range(6)]
    rows[1]["sex"] = "f"  # file line 3
    rows[5]["ended_at"] = "2025-05-01T10:00:00Z"  # file line 7: before started_at ...
    rows[5]["outcome"] = ""  # ... and no outcome
    before = await placements_and_audit(api)
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, write_csv(tmp_path / "bad.csv", COLUMNS, rows))
    assert refused.value.bad_lines == [3, 7]
    assert {(p.line, p.field) for p in refused.value.problems} == {(3, "sex"), (7, "ended_at"), (7, "outcome")}
    report = refused.value.report()
    assert "line 3, sex" in report and "line 7, ended_at" in report and "line 7, outcome" in report
    assert "nothing was imported" in report
    assert await placements_and_audit(api) == before


@pytest.mark.parametrize("ref", ["9434765919", "943 476 5919"])
async def test_an_nhs_number_is_refused_as_a_reference(api: Api, tmp_path: Path, ref: str) -> None:
    ward = await api.unit("Callington Road")
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, write_csv(tmp_path / "nhs.csv", COLUMNS, [row(ward, person_ref=ref)]))
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (2, "person_ref") and "NHS number" in problem.message


async def test_an_under_18_is_refused_at_a_unit_whose_ages_exclude_them(api: Api, tmp_path: Path) -> None:
    ward = await api.unit("Callington Road")  # 18+
    suite = await api.unit("Bristol Place of Safety")  # 16+
    before = await placements_and_audit(api)
    with pytest.raises(ImportRefused) as refused:
        await run_import(
            api,
            write_csv(
                tmp_path / "young.csv",
                COLUMNS,
                [
                    row(suite, person_ref="HIST-1", age="16", legal_basis="s136", ended_at="2025-06-01T20:00:00Z"),
                    row(ward, person_ref="HIST-2", age="16"),
                ],
            ),
        )
    assert [(p.line, p.field) for p in refused.value.problems] == [(3, "age")]
    assert "16" in refused.value.problems[0].message
    assert await placements_and_audit(api) == before


async def test_every_rule_names_its_field(api: Api, tmp_path: Path) -> None:
    ward = await api.unit("Callington Road")  # local to Bristol, acute
    private = await api.unit("Northfield Park Hospital Acute")
    cases = [
        ({"person_ref": ""}, "person_ref"),
        ({"person_ref": "X" * 41}, "person_ref"),
        ({"person_ref": "Jane Smith"}, "person_ref"),
        ({"age": "121"}, "age"),
        ({"age": "thirty"}, "age"),
        ({"ethnicity": "Q"}, "ethnicity"),
        ({"home_area": "E99999999"}, "home_area"),
        ({"unit_id": "no-such-unit"}, "unit_id"),
        ({"legal_basis": "s5"}, "legal_basis"),
        ({"started_at": "2025-06-01 10:00"}, "started_at"),  # no offset
        ({"started_at": "yesterday"}, "started_at"),
        ({"started_at": "2027-01-01T00:00:00Z", "ended_at": "", "outcome": ""}, "started_at"),  # in the future
        ({"ended_at": "", "outcome": "discharged"}, "outcome"),
        ({"outcome": "cured"}, "outcome"),
        ({"oap_reason": "10"}, "oap_reason"),  # not out of area
        ({"oap_reason": "15"}, "oap_reason"),
        ({"unit_id": private.id, "oap_reason": ""}, "oap_reason"),  # out of area at an acute unit, no reason
    ]
    rows = [
        row(ward, person_ref=f"HIST-{i}", **change) if "person_ref" not in change else row(ward, **change)
        for i, (change, _) in enumerate(cases)
    ]
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, write_csv(tmp_path / "rules.csv", COLUMNS, rows))
    found = sorted((p.line, p.field) for p in refused.value.problems)
    assert found == [(i + 2, field) for i, (_, field) in enumerate(cases)], refused.value.report()


async def test_duplicates_in_the_file_and_a_second_import_are_refused(api: Api, tmp_path: Path) -> None:
    ward = await api.unit("Callington Road")
    path = write_csv(
        tmp_path / "twice.csv",
        COLUMNS,
        [row(ward, person_ref="HIST-1"), row(ward, person_ref="HIST-2"), row(ward, person_ref="HIST-1")],
    )
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, path)
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (4, "row") and "line 2" in problem.message

    path = write_csv(tmp_path / "once.csv", COLUMNS, [row(ward, person_ref="HIST-1"), row(ward, person_ref="HIST-2")])
    assert (await run_import(api, path)).rows == 2
    before = await placements_and_audit(api)
    with pytest.raises(ImportRefused) as again:
        await run_import(api, path)
    assert again.value.bad_lines == [2, 3] and "already in the database" in again.value.problems[0].message
    assert await placements_and_audit(api) == before


async def test_a_bad_header_and_a_long_list_of_problems(api: Api, tmp_path: Path) -> None:
    bad_header = tmp_path / "header.csv"
    bad_header.write_text("ref,age\nA,1\n")
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, bad_header)
    assert [(p.line, p.field) for p in refused.value.problems] == [(1, "header")]

    ward = await api.unit("Callington Road")
    many = write_csv(tmp_path / "many.csv", COLUMNS, [row(ward, person_ref=f"HIST-{i}", sex="?") for i in range(70)])
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, many)
    report = refused.value.report()
    assert refused.value.total == 70 and report.count("\n  line ") == 50 and report.endswith("and 20 more")

    empty_lines = tmp_path / "blank.csv"
    empty_lines.write_text(",".join(COLUMNS) + "\n\n,,,,,,,,,,\n")
    assert (await run_import(api, empty_lines)).rows == 0


def test_the_command_line_exits_non_zero_on_a_bad_file(database_url: str, tmp_path: Path) -> None:
    async def ward_id() -> str:
        db = Database(settings_for(database_url))
        try:
            async with db.read_sessions() as session:
                return await session.scalar(select(Unit.id).where(Unit.name.startswith("Callington Road")))
        finally:
            await db.dispose()

    ward = asyncio.run(ward_id())
    runner = CliRunner()
    env = {"CAPACITY_DATABASE_URL": database_url}
    bad = write_csv(
        tmp_path / "bad.csv", COLUMNS, [row(ward, person_ref="HIST-1"), row(ward, person_ref="HIST-2", age="")]
    )
    result = runner.invoke(main, ["import", "placements", str(bad)], env=env)
    assert result.exit_code != 0
    assert "line 3, age" in result.output and "nothing was imported" in result.output

    good = write_csv(tmp_path / "good.csv", COLUMNS, [row(ward, person_ref="HIST-1"), row(ward, person_ref="HIST-2")])
    result = runner.invoke(main, ["import", "placements", str(good)], env=env)
    assert result.exit_code == 0, result.output
    assert "Imported 2 placements from good.csv" in result.output

    missing = runner.invoke(main, ["import", "placements", str(tmp_path / "missing.csv")], env=env)
    assert missing.exit_code != 0


def test_a_row_is_checked_by_the_booking_types() -> None:
    """The file's fields carry the API's own types: no copies of the person or code rules to drift."""
    person = get_type_hints(PersonIn, include_extras=True)
    assert tuple(FIELD_TYPES) == COLUMNS
    assert FIELD_TYPES["person_ref"] == person["ref"] and FIELD_TYPES["age"] == person["age"]
    assert FIELD_TYPES["home_area"] == HOME_AREA == person["home_area"]
    assert FIELD_TYPES["unit_id"] == get_type_hints(PlacementIn, include_extras=True)["unit_id"]
    assert FIELD_TYPES["sex"] is PersonSex and FIELD_TYPES["legal_basis"] is LegalBasis
    assert FIELD_TYPES["ethnicity"] == Ethnicity | None
    assert FIELD_TYPES["oap_reason"] == OapReason | None and FIELD_TYPES["outcome"] == Outcome | None
    # A checked row's fields are the placement columns the import writes, by name, then its episode's
    # deadline and breach (written to the episode, which the placement names as its detention_id).
    assert INSERT_COLUMNS == ("id", *PLACEMENT_FIELDS, "detention_id", "created_by")
    assert CheckedRow.__struct_fields__ == (*PLACEMENT_FIELDS, "deadline", "breached_at")
    assert set(INSERT_COLUMNS) <= set(Placement.__table__.columns.keys())
    assert set(EPISODE_COLUMNS) <= set(Episode.__table__.columns.keys())


@pytest.mark.parametrize(
    ("column", "value", "code"),
    [
        ("sex", "f", PersonSex),
        ("ethnicity", "Q", Ethnicity),
        ("legal_basis", "section 3", LegalBasis),
        ("oap_reason", "15", OapReason),
        ("outcome", "cured", Outcome),
    ],
)
async def test_an_unknown_code_names_its_field_and_the_codes(
    api: Api, tmp_path: Path, column: str, value: str, code: type
) -> None:
    ward = await api.unit("Callington Road")
    with pytest.raises(ImportRefused) as refused:
        await run_import(
            api, write_csv(tmp_path / "code.csv", COLUMNS, [row(ward, person_ref="HIST-1", **{column: value})])
        )
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (2, column)
    assert repr(value) in problem.message and ", ".join(values(code)) in problem.message


async def test_every_bad_field_of_one_row_is_named(api: Api, tmp_path: Path) -> None:
    """msgspec stops at a row's first refused field; the report still names each one, and the rules across
    fields still apply to the fields that passed."""
    ward = await api.unit("Callington Road")
    bad = row(
        ward,
        person_ref="Jane Smith",  # a name, not a reference
        age="200",
        sex="f",
        ethnicity="null",  # not an empty field
        legal_basis="s5",
        started_at="1700000000",  # a number is not a time
        ended_at="2025-06-08T10:00:00Z",
        outcome="",  # required, as ended_at is given
    )
    good = row(ward, person_ref="HIST-2")
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, write_csv(tmp_path / "bad.csv", COLUMNS, [good, bad]))
    problems = {p.field: p.message for p in refused.value.problems}
    assert {p.line for p in refused.value.problems} == {3}
    assert set(problems) == {"person_ref", "age", "sex", "ethnicity", "legal_basis", "started_at", "outcome"}
    assert "Jane" not in problems["person_ref"]  # a refusal never repeats a person's reference
    assert "120" in problems["age"] and "required" in problems["outcome"]


@pytest.mark.parametrize(
    ("value", "accepted"),
    [
        ("2025-06-01T10:00:00Z", True),
        ("2025-06-01T11:00:00.250+01:00", True),
        ("2025-06-01T10:00:00", False),  # no offset
        ("2025-06-01", False),
        ("", False),
    ],
)
async def test_started_at_is_a_time_with_its_offset(api: Api, tmp_path: Path, value: str, accepted: bool) -> None:
    ward = await api.unit("Callington Road")
    path = write_csv(tmp_path / "time.csv", COLUMNS, [row(ward, person_ref="HIST-1", started_at=value)])
    if accepted:
        assert (await run_import(api, path)).first_started_at == datetime(2025, 6, 1, 10, tzinfo=UTC).replace(
            microsecond=250_000 if "." in value else 0
        )
        return
    with pytest.raises(ImportRefused) as refused:
        await run_import(api, path)
    [problem] = refused.value.problems
    assert (problem.line, problem.field) == (2, "started_at")
    assert ("is empty" if not value else repr(value)) in problem.message
