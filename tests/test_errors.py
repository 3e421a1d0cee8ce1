"""Bad input gets problem details that name the field, and changes nothing; faults leak nothing."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import get
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from capacity.audit import AuditEntry
from capacity.booking.units.models import AvailabilityDeclaration
from support.api import Api, assert_problem

OWN_UNIT = "Bristol Place of Safety"  # the demo bed manager's


async def snapshot(api: Api, unit_id: str) -> dict[str, Any]:
    """What a bad request must not change: the unit as served, its declaration history, the audit log."""
    unit = await api.get(f"/api/units/{unit_id}", "admin")
    assert unit.status_code == 200, unit.text
    async with api.db.read_sessions() as session:
        history = (
            await session.execute(
                select(
                    AvailabilityDeclaration.id,
                    AvailabilityDeclaration.after_open_places,
                    AvailabilityDeclaration.after_status,
                    AvailabilityDeclaration.declared_by,
                ).order_by(AvailabilityDeclaration.id)
            )
        ).all()
        audit = await session.scalar(select(func.count()).select_from(AuditEntry))
    return {"unit": unit.json(), "history": history, "audit": audit}


LONG_NOTE = "x" * 501

# (body, status, field named in the problem)
BAD_DECLARATIONS = [
    pytest.param({"open_places": -1, "status": "open"}, 422, "open_places", id="negative"),
    pytest.param({"status": "open"}, 422, "open_places", id="missing-open_places"),
    pytest.param({"open_places": "three", "status": "open"}, 422, "open_places", id="wrong-type"),
    pytest.param({"open_places": 2.5, "status": "open"}, 422, "open_places", id="fraction"),
    pytest.param({"open_places": None, "status": "open"}, 422, "open_places", id="null"),
    pytest.param({"open_places": 3, "status": "open", "colour": "red"}, 422, "colour", id="unknown-field"),
    pytest.param({"open_places": 3}, 422, "status", id="missing-status"),
    pytest.param({"open_places": 3, "status": "shut"}, 422, "status", id="unknown-status"),
    pytest.param({"open_places": 3, "status": "closed"}, 422, "closed_reason", id="closed-without-reason"),
    pytest.param(
        {"open_places": 3, "status": "closed", "closed_reason": "bored"},
        422,
        "closed_reason",
        id="unknown-closed-reason",
    ),
    pytest.param({"open_places": 3, "status": "open", "note": LONG_NOTE}, 422, "note", id="note-too-long"),
    pytest.param([3, "open"], 422, None, id="not-an-object"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD_DECLARATIONS)
async def test_a_bad_declaration_is_refused_and_changes_nothing(
    api: Api, body: Any, status: int, field: str | None
) -> None:
    unit = await api.unit(OWN_UNIT)
    before = await snapshot(api, unit.id)
    api.clock.advance(minutes=5)
    response = await api.put(f"/api/units/{unit.id}/availability", "bedmanager", json=body)
    problem = assert_problem(response, status, field)
    if field:
        assert field in problem["detail"], problem
    assert await snapshot(api, unit.id) == before
    # The control: the same caller with good figures is accepted and does change things.
    good = await api.put(f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 3, "status": "open"})
    assert good.status_code == 200, good.text
    assert await snapshot(api, unit.id) != before


async def test_malformed_json_is_a_problem_and_changes_nothing(api: Api) -> None:
    unit = await api.unit(OWN_UNIT)
    before = await snapshot(api, unit.id)
    response = await api.put(
        f"/api/units/{unit.id}/availability",
        "bedmanager",
        content=b'{"open_places": 3,',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert_problem(response, response.status_code)
    assert await snapshot(api, unit.id) == before


async def test_declaring_for_an_unknown_unit_is_404_and_changes_nothing(api: Api) -> None:
    unit = await api.unit(OWN_UNIT)
    before = await snapshot(api, unit.id)
    provider = await api.provider("Avon")  # a real id, but not a unit's
    for unit_id in ("00000000-0000-0000-0000-000000000000", provider.id, "no-such-unit"):
        response = await api.put(
            f"/api/units/{unit_id}/availability", "admin", json={"open_places": 1, "status": "open"}
        )
        assert_problem(response, 404)
        assert_problem(await api.get(f"/api/units/{unit_id}", "amhp"), 404)
    assert await snapshot(api, unit.id) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("age=-1", "age"),
        ("age=abc", "age"),
        ("age=121", "age"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("near=garbage", "near"),
        ("near=91,0", "near"),
        ("near=0,181", "near"),
        ("near=51.4,-2.5,7", "near"),
        ("near=nan,nan", "near"),
        ("kind=nonsense", "kind"),
        ("kind=s136_suite&kind=nonsense", "kind"),
        ("sex=other", "sex"),
        ("home_area=E99999999", "home_area"),
        ("home_area=E0600002299", "home_area"),
        ("available_only=maybe", "available_only"),
    ],
)
async def test_a_bad_search_names_the_field(api: Api, query: str, field: str) -> None:
    assert_problem(await api.get(f"/api/units?{query}", "amhp"), 422, field)


async def test_text_the_database_cannot_store_is_refused_not_a_fault(api: Api) -> None:
    """A NUL character breaks PostgreSQL text: it must be answered as bad input, never as a 500."""
    unit = await api.unit(OWN_UNIT)
    assert (await api.get("/api/units/%00", "amhp")).status_code in (404, 422)
    assert_problem(await api.get("/api/units?home_area=E0%0060", "amhp"), 422)
    login = await api.post("/api/auth/token", json={"username": "amhp\u0000", "password": "demo"})
    assert login.status_code in (401, 422), login.text
    assert_problem(login, login.status_code)
    before = await snapshot(api, unit.id)
    response = await api.put(
        f"/api/units/{unit.id}/availability",
        "bedmanager",
        json={"open_places": 2, "status": "open", "note": "bad\u0000note"},
    )
    assert response.status_code in (200, 422), response.text  # SQLite stores it; PostgreSQL cannot
    if response.status_code == 422:
        assert_problem(response, 422)
        assert await snapshot(api, unit.id) == before


LEAKY = "SELECT password_hash FROM users WHERE username = 'admin'"


@pytest.mark.parametrize("exc", [RuntimeError(f"boom: {LEAKY}"), OperationalError(LEAKY, {}, Exception("disk I/O"))])
async def test_an_unexpected_error_is_a_500_problem_without_internals(
    api: Api, exc: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    @get("/api/test-only/boom", sync_to_thread=False)
    def boom() -> None:
        raise exc

    api.app.register(boom)
    with caplog.at_level(logging.ERROR, logger="capacity"):
        response = await api.get("/api/test-only/boom", "admin")
    body = assert_problem(response, 500)
    for secret in ("password_hash", "users", "boom", "disk I/O", "Traceback", 'File "', ".py"):
        assert secret not in response.text, secret
    assert set(body) <= {"type", "title", "status", "detail"}
    # The operators can still find out what happened.
    assert any(record.exc_info for record in caplog.records), "the error must be logged with its traceback"


@pytest.fixture
def failing_flush() -> Iterator[None]:
    """Every flush that writes an availability declaration fails afterwards, as a crash mid-write would."""

    def fail(session: Session, _context: Any) -> None:
        if any(isinstance(obj, AvailabilityDeclaration) for obj in session.new):
            raise RuntimeError(f"crash after writing: {LEAKY}")

    event.listen(Session, "after_flush", fail)
    try:
        yield
    finally:
        event.remove(Session, "after_flush", fail)


async def test_a_crash_in_the_middle_of_a_write_is_a_500_and_rolls_back(api: Api, failing_flush: None) -> None:
    unit = await api.unit(OWN_UNIT)
    before = await snapshot(api, unit.id)
    api.clock.advance(minutes=5)
    response = await api.put(
        f"/api/units/{unit.id}/availability",
        "bedmanager",
        json={"open_places": 1, "status": "closed", "closed_reason": "staffing"},
    )
    assert_problem(response, 500)
    assert "password_hash" not in response.text and "crash" not in response.text
    assert await snapshot(api, unit.id) == before


async def test_a_missing_query_parameter_is_named(api: Api) -> None:
    response = await api.get("/api/reports/s136?to=2026-01-31", "admin")
    assert_problem(response, 422, "from")
