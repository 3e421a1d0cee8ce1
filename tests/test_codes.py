"""One code registry (capacity.codes): the API serves it, the database enforces it, requests are checked
against it, and the browser pages read it from `GET /api/codes` instead of keeping copies."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from sqlalchemy import CheckConstraint, insert, select
from sqlalchemy.exc import IntegrityError

import capacity
import capacity.booking.persons
import capacity.booking.units.controllers
from capacity.app import create_app
from capacity.booking.units.models import Area, Provider, Unit
from capacity.codes import ACUTE_KINDS, CODE_SETS, KIND_PURPOSE, Code, values
from capacity.models import Base
from support.api import Api, assert_problem
from support.demo import DEMO_USERS, START
from support.settings import settings_for

BRISTOL = "E06000023"
JS = Path(capacity.__file__).parent / "web" / "static" / "js"
# Short enough for the narrowest coded column (8 characters), so that only its CHECK can refuse it.
UNKNOWN = "nocode"
PERSON = {"ref": "CODES-0001", "age": 30, "sex": "female", "home_area": BRISTOL}


# --- GET /api/codes -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_codes_lists_exactly_the_registry_to_every_user(api: Api) -> None:
    bodies = []
    for username in DEMO_USERS:
        response = await api.get("/api/codes", username)
        assert response.status_code == 200, response.text
        bodies.append(response.json())
    assert all(body == bodies[0] for body in bodies)
    body = bodies[0]
    assert set(body) == set(CODE_SETS)
    for key, code in CODE_SETS.items():
        assert [entry["code"] for entry in body[key]] == list(values(code)), key
        assert [entry["label"] for entry in body[key]] == [member.label for member in code], key
    kinds = {entry["code"]: entry for entry in body["kinds"]}
    assert kinds["s136_suite"]["label"] == "136 suite"
    assert kinds["s136_suite"]["purpose"] == "s136"
    assert {k for k, entry in kinds.items() if entry["acute"]} == ACUTE_KINDS
    assert {k: entry["purpose"] for k, entry in kinds.items()} == KIND_PURPOSE
    assert [entry["code"] for entry in body["ethnicities"]] == list("ABCDEFGHJKLMNPRSZ")
    assert [entry["code"] for entry in body["oap_reasons"]] == ["10", "11", "12", "13", "14", "99"]


@pytest.mark.integration
async def test_codes_need_a_login(api: Api) -> None:
    assert_problem(await api.get("/api/codes"), 401)


@pytest.mark.integration
async def test_the_openapi_document_lists_each_code_set_as_an_enum(tmp_path: Path) -> None:
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        doc = (await client.get("/schema/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    for code in CODE_SETS.values():
        if code.__name__ in schemas:  # only the sets some request or response is typed with
            assert schemas[code.__name__]["enum"] == list(values(code)), code.__name__
    assert schemas["HoldIn"]["properties"]["purpose"] == {"$ref": "#/components/schemas/HoldPurpose"}
    assert schemas["UnitOut"]["properties"]["kind"] == {"$ref": "#/components/schemas/UnitKind"}
    assert {"$ref": "#/components/schemas/OapReason"} in schemas["ArriveIn"]["properties"]["oap_reason"]["oneOf"]


@pytest.mark.unit
def test_the_copies_outside_the_registry_agree_with_it() -> None:
    """capacity/booking/persons.py and the unit search still spell these as Literals: they must not drift."""
    persons = capacity.booking.persons
    assert get_args(persons.Ethnicity) == values(CODE_SETS["ethnicities"])
    assert get_args(persons.PersonSex) == values(CODE_SETS["person_sexes"])
    assert get_args(persons.RiskFlag) == values(CODE_SETS["risk_flags"])


# --- The database refuses an unknown code ---------------------------------------------------------

_IN_LIST = re.compile(r"^(\w+) in \(('[^']*'(?:, '[^']*')*)\)$")


def coded_columns() -> list[tuple[str, str, type[Code]]]:
    """(table, column, code set) of every `column in (...)` CHECK in the models, each matched to its set."""
    by_values = {values(code): code for code in CODE_SETS.values()}
    found = []
    for table in Base.metadata.sorted_tables:
        for constraint in table.constraints:
            if not isinstance(constraint, CheckConstraint):
                continue
            match = _IN_LIST.match(str(constraint.sqltext))
            if match is None:
                continue
            listed = tuple(v.strip("'") for v in match.group(2).split(", "))
            assert listed in by_values, f"{table.name}.{match.group(1)}: {listed} is no code set of capacity.codes"
            found.append((table.name, match.group(1), by_values[listed]))
    return found


async def valid_row(api: Api, conn, table: str) -> dict[str, Any]:
    """A row of `table` that the database accepts (with a fresh id), to put one unknown code in."""
    provider_id = await conn.scalar(select(Provider.id).limit(1))
    unit_id = await conn.scalar(select(Unit.id).limit(1))
    area_code = await conn.scalar(select(Area.code).where(Area.code != BRISTOL).limit(1))
    fresh = uuid.uuid4().hex[:12]
    person = {"person_ref": "CODES-1", "person_age": 30, "person_sex": "female", "home_area": BRISTOL}
    unit = {
        "provider_id": provider_id,
        "area_code": BRISTOL,
        "name": f"Codes test unit {fresh}",
        "kind": "respite",
        "lat": 51.45,
        "lon": -2.59,
        "last_confirmed_at": START,
        "last_confirmed_by": "test",
    }
    rows: dict[str, dict[str, Any]] = {
        "providers": {"name": f"Codes test provider {fresh}", "sector": "nhs"},
        "units": unit,
        "users": {
            "username": f"codes-{fresh}",
            "password_hash": "x",
            "role": "admin",
            "provider_id": provider_id,
            "created_at": START,
        },
        "holds": {
            **person,
            "unit_id": unit_id,
            "status": "held",
            "purpose": "crisis",
            "created_by": "test",
            "created_at": START,
            "expires_at": START + timedelta(hours=1),
        },
        "crisis_alternatives": {"name": f"Codes test alternative {fresh}", "opening_hours": {}, "how_to_refer": "x"},
        "detention_episodes": {
            "legal_basis": "s136",
            "clock_started_at": START,
            "deadline": START + timedelta(hours=24),
            "legs": 1,
        },
    }
    if table == "s136_detentions":  # a leg of an episode of its own
        episode = {"id": str(uuid.uuid4()), **rows["detention_episodes"]}
        await conn.execute(insert(Base.metadata.tables["detention_episodes"]).values(**episode))
        return {
            **person,
            "detention_id": episode["id"],
            "place_type": "emergency_department",
            "detained_at": START,
            "never_event_acknowledged": False,
            "created_by": "test",
            "created_at": START,
        }
    if table == "conveyances":  # one conveyance per hold: a hold of its own
        hold = {"id": str(uuid.uuid4()), **rows["holds"]}
        await conn.execute(insert(Base.metadata.tables["holds"]).values(**hold))
        return {"hold_id": hold["id"], "mode": "police_vehicle", "updated_at": START, "updated_by": "test"}
    if table == "unit_area_rules":  # a unit of its own, so that no rule of the demo is in the way
        new_unit = (await conn.execute(insert(Unit.__table__).values(**unit).returning(Unit.id))).scalar_one()
        return {"unit_id": new_unit, "area_code": area_code, "rule": "refuses"}
    return rows[table]


@pytest.mark.integration
async def test_every_coded_column_refuses_an_unknown_code_in_sql(api: Api) -> None:
    checked = coded_columns()
    assert {(t, c) for t, c, _ in checked} == {
        ("providers", "sector"),
        ("units", "kind"),
        ("units", "sex"),
        ("units", "status"),
        ("unit_area_rules", "rule"),
        ("users", "role"),
        ("holds", "status"),
        ("detention_episodes", "legal_basis"),
        ("detention_episodes", "extension_reason"),
        ("s136_detentions", "place_type"),
        ("s136_detentions", "police_vehicle_reason"),
        ("conveyances", "police_vehicle_reason"),
        ("crisis_alternatives", "kind"),
    }
    assert all(UNKNOWN not in values(code) for code in CODE_SETS.values())
    tables = Base.metadata.tables
    for table, column, code in checked:
        async with api.db.engine.begin() as conn:
            row = await valid_row(api, conn, table)
        with pytest.raises(IntegrityError) as refused:
            async with api.db.engine.begin() as conn:
                await conn.execute(insert(tables[table]).values({**row, column: UNKNOWN}))
        assert f"ck_{table}_{column}" in str(refused.value), (table, column, str(refused.value))
        # The same row with each real code goes in: it was the code that was refused, nothing else.
        for value in values(code):
            async with api.db.engine.begin() as conn:
                await conn.execute(insert(tables[table]).values({**row, column: value}))
                row = await valid_row(api, conn, table)


# --- A request with an unknown code is 422 naming the field ---------------------------------------


@pytest.mark.integration
async def test_an_unknown_code_in_a_request_is_422_naming_the_field(api: Api) -> None:
    suite = (await api.unit("Bristol Place of Safety")).id
    some_id = str(uuid.uuid4())
    cases = [
        ("post", "/api/holds", "amhp", {"unit_id": suite, "purpose": "castle", "person": PERSON}, "purpose"),
        (
            "post",
            "/api/holds",
            "amhp",
            {"unit_id": suite, "purpose": "s136", "person": PERSON, "risk_flags": ["castle"]},
            "risk_flags[0]",
        ),
        ("put", f"/api/units/{suite}/availability", "bedmanager", {"open_places": 1, "status": "ajar"}, "status"),
        (
            "put",
            f"/api/units/{suite}/availability",
            "bedmanager",
            {"open_places": 0, "status": "closed", "closed_reason": "bored"},
            "closed_reason",
        ),
        ("post", f"/api/holds/{some_id}/decline", "bedmanager", {"reason": "bored"}, "reason"),
        ("post", f"/api/holds/{some_id}/arrive", "amhp", {"oap_reason": "42"}, "oap_reason"),
        ("put", f"/api/holds/{some_id}/conveyance", "amhp", {"mode": "teleport"}, "mode"),
        (
            "post",
            "/api/placements",
            "bedmanager",
            {"unit_id": suite, "person": PERSON, "legal_basis": "s99"},
            "legal_basis",
        ),
        ("post", f"/api/placements/{some_id}/discharge", "bedmanager", {"outcome": "vanished"}, "outcome"),
        (
            "post",
            "/api/s136-detentions",
            "amhp",
            {"place_type": "castle", "person": PERSON, "detained_at": START.isoformat()},
            "place_type",
        ),
    ]
    for method, path, username, body, field in cases:
        response = await api.request(method.upper(), path, username, json=body)
        problem = assert_problem(response, 422, field)
        assert re.split(r"[.[]", field)[0] in problem["detail"], problem
    for query, field in (("/api/units?kind=castle", "kind"), ("/api/holds?status=castle", "status")):
        assert_problem(await api.get(query, "amhp"), 422, field)


# --- The browser pages keep no copies -------------------------------------------------------------

# A page may compare a value with one code of a set (`hold.purpose === "s136"`, `me.role === "admin"`), and
# generic words that are codes too ("search", "expired") may appear as text; what it may not do is list
# codes. These are exempt: the bed manager's board has one button for each of a unit's two statuses, and
# a detention at a police station needs more than one elsewhere (its criteria, inspector, superintendent).
PIVOTS = {"open", "closed", "police_station"}
_STRINGS = [re.compile(q + r"((?:\\.|[^\\" + q + r"\n])*)" + q) for q in ('"', "'", "`")]
_COMMENT = re.compile(r"^\s*//.*$|\s//\s.*$", re.M)


def distinctive(value: str) -> bool:
    """A code that is nothing else when it appears in a page: `s136_suite`, `picu`, `10`."""
    return "_" in value or value.isdigit() or value in values(CODE_SETS["kinds"])


def js_strings(source: str) -> set[str]:
    return {m.group(1) for pattern in _STRINGS for m in pattern.finditer(source)}


def copies(name: str, source: str) -> list[str]:
    """What a page's source copies of the code sets: two or more codes of one set, or one distinctive code."""
    source = _COMMENT.sub("", source)
    literals = js_strings(source)
    found = []
    for key, code in CODE_SETS.items():
        named = sorted(v for v in values(code) if v in literals and v not in PIVOTS)
        if len(named) > 1 or any(distinctive(v) for v in named):
            found.append(f"{name}: {', '.join(map(repr, named))} (codes of {key})")
        # Codes written as bare object keys: those with an underscore are never anything else.
        for value in values(code):
            if "_" in value and re.search(rf"(?<![\w.]){re.escape(value)}\s*:", source):
                found.append(f"{name}: {value} as a key (a code of {key})")
    return found


@pytest.mark.unit
def test_the_pages_copy_no_code_lists() -> None:
    files = sorted(JS.glob("*.js"))
    assert {f.name for f in files} >= {"common.js", "amhp.js", "bed_manager.js", "commissioner.js"}
    found = [copy for path in files for copy in copies(path.name, path.read_text())]
    assert found == [], "read these from GET /api/codes (common.js loadCodes):\n" + "\n".join(found)


@pytest.mark.unit
def test_the_copy_check_sees_a_copy() -> None:
    assert copies("a.js", 'const KINDS = ["s136_suite", "crisis_house"];')
    assert copies("a.js", "if (unit.kind === 's136_suite') purpose.value = 's136';")
    assert copies("a.js", 'const OAP = { "10": "unavailable bed" };')
    assert copies("a.js", "const CLOSED = { infection_control: 'infection control' };")
    assert copies("a.js", 'options(["female", "male", "other", "unknown"])')
    assert copies("a.js", 'const label = `${unit.kind === "picu" ? 1 : 2}`;')
    # One comparison with a code, generic words, comments and field names are not copies.
    assert not copies("a.js", 'if (me.role === "admin") el("form", { role: "search" }, "expired");')
    assert not copies("a.js", '// a 136 suite ("s136_suite") is open 24/7\nconst body = { closed_reason: "" };')
