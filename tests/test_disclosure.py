"""What a commissioner may learn: no free text about a person (every report, every format, every event the
live stream could carry), no small count worked out from the others (disclosure control), and no
spreadsheet formula in an export.

Each check has its control: the free text is shown to reach the person-level reads and events; the
recovery attack succeeds on the figures without secondary suppression; a formula-like cell is written as
a formula by a workbook that does not neutralise it.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook, load_workbook
from sqlalchemy import String, Text, delete, func, literal, update

from capacity.auth.security import Actor
from capacity.booking.detentions.models import Episode, S136Detention
from capacity.booking.holds.models import Conveyance, Hold
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Area, AvailabilityDeclaration, Provider, Unit
from capacity.db.base import Base, new_id
from capacity.events import Event
from capacity.notify.hub import visible
from capacity.reports import equality as equality_module
from capacity.reports import s136 as s136_module
from capacity.reports.common import SMALLEST_SHOWN, SUPPRESSED, Count
from capacity.reports.render import FORMULA_STARTS
from support.api import Api
from support.records import person_columns, placement_columns

BANES = "E06000022"
REPORTS = ("out-of-area", "s136", "capacity", "equality")
FORMATS = ("json", "csv", "xlsx")


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def fetch(api: Api, name: str, query: str, fmt: str, as_: str = "commissioner") -> bytes:
    response = await api.get(f"/api/reports/{name}?{query}&format={fmt}", as_)
    assert response.status_code == 200, response.text
    return response.content


def text_of(fmt: str, content: bytes) -> str:
    """Everything a file says: for a workbook, every part of the zip (cells, shared strings, sheet names)."""
    if fmt != "xlsx":
        return content.decode()
    with zipfile.ZipFile(io.BytesIO(content)) as book:
        return "\n".join(book.read(name).decode() for name in book.namelist())


# --- 1. no free text about a person ---------------------------------------------------------------------

# Every text column of the tables about people, as free text (a person-level role wrote it) or not.
FREE_TEXT = {
    "holds": {"note", "decline_note", "person_ref", "idempotency_key"},
    "conveyances": {"police_vehicle_note"},
    "placements": {"age_exception_reason", "person_ref"},
    "detention_episodes": {"extension_authorised_by", "extension_superintendent", "extension_note"},
    "s136_detentions": {"place_name", "note", "authorising_inspector", "police_vehicle_note", "person_ref"},
    "availability_declarations": {"note"},
}
NOT_FREE_TEXT = {
    "holds": {"status", "purpose", "created_by", "ended_by", "decline_reason", "request_hash", "person_sex"},
    "conveyances": {"mode", "police_vehicle_reason", "updated_by"},
    "placements": {"legal_basis", "outcome", "oap_reason", "created_by", "person_sex"},
    "detention_episodes": {"legal_basis", "extension_reason", "outcome"},
    "s136_detentions": {
        "place_type",
        "outcome",
        "conveyance_mode",
        "police_vehicle_reason",
        "created_by",
        "person_sex",
    },
    "availability_declarations": {"declared_by", "before_status", "after_status", "closed_reason"},
}
MARK = "Qz7LEAK"


def text_columns(table: str) -> set[str]:
    return {
        c.name
        for c in Base.metadata.tables[table].columns
        if isinstance(c.type, String | Text) and not c.foreign_keys and not c.primary_key
    } - {"person_ethnicity"}  # String(2): a code, checked by `coded` in every report


def test_every_text_column_about_a_person_is_classified() -> None:
    # A new text column fails here until it is named free text (and so seeded below) or not.
    for table in FREE_TEXT:
        assert text_columns(table) == FREE_TEXT[table] | NOT_FREE_TEXT[table], table


async def free_text_journey(api: Api) -> list[str]:
    """A person-level journey through the API with distinctive text in every free-text field it takes; then
    every free-text column of every row about a person overwritten with a distinctive value of its own."""
    said = [f"{MARK}{n:02d}" for n in range(12)]
    suite = await api.unit("Bristol Place of Safety")
    person = {"ref": said[0], "age": 30, "sex": "female", "ethnicity": "A", "home_area": BANES}

    async def ok(response) -> dict:
        assert response.status_code in (200, 201), response.text
        return response.json()

    api.clock.set(t("2026-03-10T02:00"))
    held = await ok(
        await api.post(
            "/api/holds", "amhp", json={"unit_id": suite.id, "purpose": "s136", "person": person, "note": said[1]}
        )
    )
    await ok(
        await api.put(
            f"/api/holds/{held['id']}/conveyance",
            "amhp",
            json={"mode": "police_vehicle", "police_vehicle_reason": "other", "police_vehicle_note": said[2]},
        )
    )
    api.clock.set(t("2026-03-10T02:30"))
    placed = await ok(await api.post(f"/api/holds/{held['id']}/arrive", "amhp", json={}))
    api.clock.set(t("2026-03-10T20:00"))
    await ok(
        await api.post(
            f"/api/placements/{placed['id']}/s136-extension",
            "amhp",
            json={"hours": 6, "authorised_by": said[3], "reason": "condition_of_person", "note": said[4]},
        )
    )
    declined = await ok(
        await api.post(
            "/api/holds",
            "amhp",
            json={"unit_id": suite.id, "purpose": "s136", "person": {**person, "ref": said[5]}, "note": said[6]},
        )
    )
    await ok(
        await api.post(
            f"/api/holds/{declined['id']}/decline", "bedmanager", json={"reason": "staffing", "note": said[7]}
        )
    )
    # A never event: a 16-year-old kept at a police station, with the note it needs.
    await ok(
        await api.post(
            "/api/s136-detentions",
            "amhp",
            json={
                "place_type": "police_station",
                "detained_at": "2026-03-10T19:00:00Z",
                "person": {**person, "ref": said[8], "age": 16},
                "never_event_acknowledged": True,
                "note": said[9],
                "place_name": said[10],
                "conveyance_mode": "police_vehicle",
                "police_vehicle_reason": "ambulance_delayed",
                "police_vehicle_note": said[11],
            },
        )
    )
    api.clock.set(t("2026-03-11T10:00"))
    await ok(await api.post(f"/api/placements/{placed['id']}/discharge", "bedmanager", json={"outcome": "other"}))

    # Then every free-text column of every row, whatever the API let through, gets a value of its own.
    models = {
        m.__tablename__: m for m in (Hold, Conveyance, Placement, Episode, S136Detention, AvailabilityDeclaration)
    }
    async with api.db.write_sessions() as session, session.begin():
        for table, columns in FREE_TEXT.items():
            model = models[table]
            # Each row its own (a key may be unique): the mark, the column's number, the row's id.
            marks = {column: f"{MARK}{table[:3]}{n}-" for n, column in enumerate(sorted(columns))}
            key = list(model.__table__.primary_key.columns)[0]
            await session.execute(
                update(model).values({column: literal(mark) + func.substr(key, 1, 8) for column, mark in marks.items()})
            )
            said += marks.values()
    return said


async def test_no_free_text_reaches_a_commissioner(api: Api) -> None:
    published: list[Event] = []
    publish = api.db.publish

    async def capture(events: list) -> None:
        published.extend(events)
        if publish is not None:
            await publish(events)

    api.db.publish = capture
    said = await free_text_journey(api)
    api.clock.set(t("2026-04-15T12:00"))

    # The control: what was said is there for the person-level roles, in their events and reads.
    admin = Actor.of(await api.user("admin"))
    heard_by_admin = b"".join(msgspec.json.encode(e.data) for e in published if visible(admin, e))
    assert MARK.encode() in heard_by_admin
    holds = await api.get("/api/holds", "amhp")
    assert MARK in holds.text

    commissioner = Actor.of(await api.user("commissioner"))
    heard = [e for e in published if visible(commissioner, e)]
    assert heard, "the commissioner hears the units' figures"
    assert MARK.encode() not in b"".join(msgspec.json.encode(e.data) for e in heard)

    for name in REPORTS:
        for fmt in FORMATS:
            for query in ("from=2026-03-01&to=2026-03-31", "from=2025-01-01&to=2026-12-31"):
                everything = text_of(fmt, await fetch(api, name, query, fmt))
                assert MARK not in everything, (name, fmt, [s for s in said if s in everything])


# --- 3. formula-like cells are text ---------------------------------------------------------------------

FORMULAS = ['=HYPERLINK("http://example.invalid","x")', "+1+1", "-2+3", "@SUM(A1:A2)", "\tTab", "\rReturn"]


async def test_exports_write_formula_like_cells_as_text(api: Api) -> None:
    # Reference data is the only text in a report: an admin names units, providers and areas.
    async with api.db.write_sessions() as session, session.begin():
        units = (await session.execute(Unit.__table__.select().where(Unit.area_code == BANES))).all()
        for formula, unit in zip(FORMULAS, units, strict=False):
            await session.execute(update(Unit).where(Unit.id == unit.id).values(name=formula))
        await session.execute(update(Provider).values(name=Provider.id + FORMULAS[0]))
        await session.execute(update(Area).where(Area.code == BANES).values(name=FORMULAS[3]))
    named = FORMULAS[: len(units)]
    assert len(named) >= 3
    query = "from=2026-03-01&to=2026-03-31"

    rows = list(csv.reader(io.StringIO((await fetch(api, "capacity", query, "csv")).decode())))
    cells = [cell for row in rows for cell in row]
    for formula in named:
        assert f"'{formula}" in cells and formula not in cells
    assert not any(cell.startswith(FORMULA_STARTS) for cell in cells)

    book = load_workbook(io.BytesIO(await fetch(api, "capacity", query, "xlsx")))
    typed = {c.value: c.data_type for sheet in book for row in sheet.iter_rows() for c in row}
    for formula in named:
        assert typed.get(formula) == "s", formula  # a string cell, not a formula ("f")
    assert "f" not in typed.values()
    assert "<f>" not in text_of("xlsx", await fetch(api, "capacity", query, "xlsx"))

    # The out-of-area report names receiving providers (and areas): the same, in both formats.
    for name in ("out-of-area",):
        text = (await fetch(api, name, "from=2025-01-01&to=2026-12-31", "csv", "admin")).decode()
        assert not any(cell.startswith(FORMULA_STARTS) for row in csv.reader(io.StringIO(text)) for cell in row)


def test_the_formula_control() -> None:
    # Without neutralising, a workbook makes such text a live formula: what the test above rules out.
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append([FORMULAS[0]])
    out = io.BytesIO()
    book.save(out)
    assert load_workbook(io.BytesIO(out.getvalue())).active["A1"].data_type == "f"  # type: ignore[index]


# --- 2. no suppressed count can be worked out -----------------------------------------------------------
#
# The intruder reads the s136 and equality reports of one period, every "*" as 1 to 7 and every rounded n
# as n-2..n+2, and knows how their counts add up (below, from what the reports say they count). For each
# count it works out every value the published figures allow (sets of integers, by sums over the tree);
# a count of 1 to 7 with only one possible value is disclosed.

CAP = 200  # more people than any example has: a bound the intruder does not even need


@dataclass
class Node:
    shown: object
    true: int
    breakdowns: list[list[Node]] = field(default_factory=list)
    subsets: list[Node] = field(default_factory=list)

    def could_be(self) -> set[int]:
        if self.shown == SUPPRESSED:
            return set(range(1, SMALLEST_SHOWN))
        assert isinstance(self.shown, int), self.shown
        return {0} if self.shown == 0 else set(range(self.shown - 2, self.shown + 3))

    def nodes(self):
        yield self
        for cells in self.breakdowns:
            for cell in cells:
                yield from cell.nodes()
        for subset in self.subsets:
            yield from subset.nodes()


def _sums(sets: list[set[int]]) -> set[int]:
    total = {0}
    for values in sets:
        total = {a + b for a in total for b in values if a + b <= CAP}
    return total


def possible_values(root: Node) -> dict[int, set[int]] | None:
    """Every value each count can take, given all the published figures (None: they allow no data)."""
    up: dict[int, set[int]] = {}

    def bottom(node: Node) -> set[int]:
        values = node.could_be()
        for cells in node.breakdowns:
            values &= _sums([bottom(cell) for cell in cells])
        for subset in node.subsets:
            least = min(bottom(subset), default=CAP + 1)
            values = {v for v in values if v >= least}
        up[id(node)] = values
        return values

    found: dict[int, set[int]] = {}

    def top(node: Node, values: set[int]) -> None:
        found[id(node)] = values
        for cells in node.breakdowns:
            for i, cell in enumerate(cells):
                others = _sums([up[id(c)] for j, c in enumerate(cells) if j != i])
                top(cell, {v for v in up[id(cell)] if any(total - v in others for total in values)})
        for subset in node.subsets:
            top(subset, {v for v in up[id(subset)] if v <= max(values)})

    if not bottom(root):
        return None
    top(root, up[id(root)])
    return found


def disclosed_counts(root: Node) -> list[int]:
    values = possible_values(root)
    if values is None:
        return []
    return [n.true for n in root.nodes() if 0 < n.true < SMALLEST_SHOWN and len(values[id(n)]) == 1]


def _cells(shown: dict, true: dict) -> list[Node]:
    return [Node(shown[key], true[key]) for key in shown]


def detention_tree(s136: dict, equality: dict, s136_true: dict, equality_true: dict) -> Node:
    """How the published counts of the period's detentions add up, from what the two reports say."""
    shown, true = s136["totals"], s136_true["totals"]
    people, people_true = equality["detentions"], equality_true["detentions"]
    # The same counts in both reports are the same figures.
    assert shown["detentions"] == people["total"]
    assert shown["under_18"] == people["by_age_band"]["0-17"]
    assert s136["duration_hours"]["ended"] == shown["ended"]
    assert shown["no_further_action"] == s136["outcomes"]["discharged"]
    total = Node(people["total"], people_true["total"])
    for breakdown in ("by_ethnicity", "by_sex", "by_age_band"):
        total.breakdowns.append(_cells(people[breakdown], people_true[breakdown]))
    ages = total.breakdowns[-1]
    ages[0].subsets.append(Node(shown["under_18_in_police_station"], true["under_18_in_police_station"]))
    total.breakdowns.append(_cells(s136["by_place_of_safety"], s136_true["by_place_of_safety"]))
    modes = _cells(s136["conveyance"], s136_true["conveyance"])
    police = next(n for n, key in zip(modes, s136["conveyance"], strict=True) if key == "police_vehicle")
    police.breakdowns.append(
        [
            Node(r["count"], rt["count"])
            for r, rt in zip(s136["police_vehicle_reasons"], s136_true["police_vehicle_reasons"], strict=True)
        ]
    )
    total.breakdowns.append(modes)
    outcomes, outcomes_true = s136["outcomes"], s136_true["outcomes"]
    ended = Node(shown["ended"], true["ended"])
    ended.breakdowns.append([Node(outcomes[k], outcomes_true[k]) for k in outcomes if k != "ongoing"])
    total.breakdowns.append([Node(outcomes["ongoing"], outcomes_true["ongoing"]), ended])
    for name in ("breaches", "extensions", "out_of_hours", "repeat_detentions", "transferred"):
        total.subsets.append(Node(shown[name], true[name]))
    ambulance, ambulance_true = s136["ambulance_response"], s136_true["ambulance_response"]
    measured = Node(ambulance["measured"], ambulance_true["measured"])
    measured.subsets.append(Node(ambulance["within_standard"], ambulance_true["within_standard"]))
    total.subsets.append(measured)
    for section in ("to_health_based_place_of_safety", "emergency_department_hours"):
        total.subsets.append(Node(s136[section]["measured"], s136_true[section]["measured"]))
    return total


def placement_tree(equality: dict, equality_true: dict) -> Node:
    placed, placed_true = equality["placements"], equality_true["placements"]
    total = Node(placed["total"], placed_true["total"])
    for breakdown in ("by_ethnicity", "by_sex", "by_age_band"):
        total.breakdowns.append(_cells(placed[breakdown], placed_true[breakdown]))
    return total


def shares_come_from_the_published_counts(s136: dict) -> None:
    """A share computed from the counts before rounding could give the total away: they are not."""
    totals = s136["totals"]
    for part, whole, name in (
        ("out_of_hours", "detentions", "out_of_hours_share"),
        ("repeat_detentions", "detentions", "repeat_share"),
        ("no_further_action", "ended", "no_further_action_share"),
    ):
        p, w = totals[part], totals[whole]
        expected = None if SUPPRESSED in (p, w) or w == 0 else round(p / w, 4)
        assert totals[name] == expected, name


PERIOD = "from=2030-05-01&to=2030-05-31"
PLACES = ("emergency_department", "police_station", "other")
MODES = (None, "ambulance", "police_vehicle", "secure_transport", "other")
REASONS = (None, "no_ambulance_available", "ambulance_delayed", "risk_of_violence", "other")
OUTCOMES = ("admitted_informal", "detained_s2", "detained_s3", "discharged", "referred_community", "other", None)

people = st.fixed_dictionaries(
    {
        "age": st.sampled_from([15, 17, 19, 30, 40, 50, 70]),
        "sex": st.sampled_from(["female", "male", "female", "other"]),
        "ethnicity": st.sampled_from(["A", "A", "A", "B", "C", "J", "R", None]),
    }
)
detentions = st.lists(
    st.fixed_dictionaries(
        {
            "person": people,
            "place": st.sampled_from(PLACES),
            "day": st.integers(1, 30),
            "hour": st.sampled_from([3, 10, 14, 20]),
            "hours": st.sampled_from([None, 5, 20, 30]),
            "outcome": st.sampled_from(OUTCOMES),
            "mode": st.sampled_from(MODES),
            "reason": st.sampled_from(REASONS),
            "ambulance_minutes": st.sampled_from([None, 20, 45]),
            "extended": st.booleans(),
            "same_person_as": st.none() | st.integers(0, 30),
        }
    ),
    max_size=26,
)
placements = st.lists(st.fixed_dictionaries({"person": people, "day": st.integers(1, 31)}), max_size=26)


async def seed(api: Api, detained: list[dict], placed: list[dict]) -> None:
    unit = await api.unit("Bath Crisis House")
    async with api.db.write_sessions() as session, session.begin():
        since = t("2030-01-01T00:00")
        await session.execute(delete(Placement).where(Placement.started_at >= since))
        await session.execute(delete(S136Detention).where(S136Detention.detained_at >= since))
        await session.execute(delete(Episode).where(Episode.clock_started_at >= since))
        rows: list[object] = []
        for i, d in enumerate(detained):
            p = d["person"]
            clock = datetime(2030, 5, d["day"], d["hour"], tzinfo=UTC)
            ended = None if d["hours"] is None else clock + timedelta(hours=d["hours"])
            police = d["place"] == "police_station"
            age = max(p["age"], 18) if police else p["age"]
            ref = f"P{d['same_person_as'] if d['same_person_as'] is not None else 100 + i}"
            leg = new_id()
            rows.append(
                Episode(
                    id=leg,
                    legal_basis="s136",
                    clock_started_at=clock,
                    deadline=clock + timedelta(hours=30 if d["extended"] else 24),
                    legs=1,
                    extension_hours=6 if d["extended"] else None,
                    extension_reason="condition_of_person" if d["extended"] else None,
                    breached_at=clock + timedelta(hours=24) if (d["hours"] or 0) > 24 and not d["extended"] else None,
                    ended_at=ended,
                    outcome=d["outcome"] if ended else None,
                )
            )
            mode = d["mode"]
            rows.append(
                S136Detention(
                    id=leg,
                    detention_id=leg,
                    place_type=d["place"],
                    detained_at=clock,
                    ended_at=ended,
                    outcome=d["outcome"] if ended else None,
                    police_station_criteria=["imminent_risk_of_serious_injury_or_death"] if police else [],
                    authorising_inspector="Insp" if police else None,
                    conveyance_mode=mode,
                    police_vehicle_reason=d["reason"] if mode == "police_vehicle" else None,
                    ambulance_requested_at=clock - timedelta(hours=1) if d["ambulance_minutes"] else None,
                    ambulance_at_scene_at=(
                        clock - timedelta(hours=1) + timedelta(minutes=d["ambulance_minutes"])
                        if d["ambulance_minutes"]
                        else None
                    ),
                    created_by="test",
                    created_at=clock,
                    **person_columns(ref, age, p["sex"], p["ethnicity"], BANES),
                )
            )
        for i, pl in enumerate(placed):
            p = pl["person"]
            started = datetime(2030, 5, pl["day"], 12, tzinfo=UTC)
            someone = person_columns(f"Q{i}", p["age"], p["sex"], p["ethnicity"], BANES)
            rows.append(
                Placement(**placement_columns(unit, started, someone, legal_basis="informal", out_of_area=False))
            )
        # Episodes first (the legs refer to them).
        session.add_all([r for r in rows if isinstance(r, Episode)])
        await session.flush()
        session.add_all([r for r in rows if not isinstance(r, Episode)])


async def published_and_true(api: Api, monkeypatch: pytest.MonkeyPatch) -> tuple[dict, dict, dict, dict]:
    async def both() -> tuple[dict, dict]:
        s136 = await api.get(f"/api/reports/s136?{PERIOD}&area={BANES}", "commissioner")
        equality = await api.get(f"/api/reports/equality?{PERIOD}&area={BANES}", "commissioner")
        assert s136.status_code == 200 and equality.status_code == 200, (s136.text, equality.text)
        return s136.json(), equality.json()

    s136, equality = await both()
    with monkeypatch.context() as m:
        m.setattr(Count, "shown", property(lambda count: count.value))
        s136_true, equality_true = await both()
    return s136, equality, s136_true, equality_true


async def check_nothing_disclosed(api: Api, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    s136, equality, s136_true, equality_true = await published_and_true(api, monkeypatch)
    shares_come_from_the_published_counts(s136)
    return disclosed_counts(detention_tree(s136, equality, s136_true, equality_true)) + disclosed_counts(
        placement_tree(equality, equality_true)
    )


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(detained=detentions, placed=placements)
async def test_no_suppressed_count_can_be_worked_out(
    api: Api, monkeypatch: pytest.MonkeyPatch, detained: list[dict], placed: list[dict]
) -> None:
    await seed(api, detained, placed)
    api.clock.set(t("2030-06-15T12:00"))
    assert await check_nothing_disclosed(api, monkeypatch) == []


async def test_the_recovery_control(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounding and "*" alone are not enough: 12 placements (shown 10), 8 of ethnicity A (shown 10) and one
    each of B, C, J, R: at least 8 + 4 = 12, at most 12, so each "*" is 1. Secondary suppression hides A."""
    person = {"age": 30, "sex": "female"}
    placed = [{"person": {**person, "ethnicity": e}, "day": 3} for e in ["A"] * 8 + ["B", "C", "J", "R"]]
    await seed(api, [], placed)
    api.clock.set(t("2030-06-15T12:00"))
    assert await check_nothing_disclosed(api, monkeypatch) == []
    s136, equality, *_ = await published_and_true(api, monkeypatch)
    assert equality["placements"]["total"] == 10 and equality["placements"]["by_ethnicity"]["A"] == SUPPRESSED

    # The control: without secondary suppression the four 1s are worked out.
    unprotected = lambda root: root  # noqa: E731
    monkeypatch.setattr(equality_module, "protect", unprotected)
    monkeypatch.setattr(s136_module, "protect", unprotected)
    assert await check_nothing_disclosed(api, monkeypatch) == [1, 1, 1, 1]
