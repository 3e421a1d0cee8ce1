"""The OpenAPI document describes every route, and no generated request makes the service fail (5xx)."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar, get
from litestar.params import FromQuery
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, status_code_conformance
from schemathesis.core.failures import ServerError
from schemathesis.python.asgi import shutdown_lifespans
from sqlalchemy import select

from capacity.app import create_app
from capacity.auth.models import User
from capacity.booking.placements.models import Placement
from capacity.booking.units.models import Unit
from capacity.clock import FixedClock
from capacity.db.engine import Database
from support.demo import START
from support.settings import settings_for

# The endpoints of the foundation (API.md); later issues add theirs, and the test below covers them all.
FOUNDATION = [
    ("post", "/api/auth/token"),
    ("get", "/api/me"),
    ("get", "/api/areas"),
    ("get", "/api/providers"),
    ("get", "/api/units"),
    ("get", "/api/units/{unit_id}"),
    ("put", "/api/units/{unit_id}/availability"),
]


def documented_routes(app: Litestar) -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route the app serves and means to publish."""
    routes = set()
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue  # WebSockets have no place in an OpenAPI document
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            routes |= {(method.lower(), path) for method in handler.http_methods if method not in ("OPTIONS", "HEAD")}
    return routes


async def test_the_document_describes_every_route(tmp_path: Path) -> None:
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/schema/openapi.json")  # without a token: the document is public
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["openapi"].startswith("3.")
    described = {
        (method, path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in ("get", "put", "post", "patch", "delete")
    }
    served = documented_routes(app)
    assert set(FOUNDATION) <= served
    assert served - described == set(), "served but not described"
    assert described - served == set(), "described but not served"
    for path, operations in doc["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "patch", "delete"):
                continue
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert names <= declared, f"{method.upper()} {path} does not declare its path parameters"
            assert operation.get("responses"), f"{method.upper()} {path} documents no response"
    assert "BearerToken" in doc["components"]["securitySchemes"]


PUBLIC = {"/health", "/health/ready", "/api/auth/token", "/api/auth/set-password"}
# The writes that can answer 409 (capacity/openapi.py says why); the fuzzing below checks that no
# operation answers a status its document does not list.
CONFLICTS = re.compile(r"^/api/(holds|placements|s136-detentions|admin/(users|units|areas|providers))(/|$)")


def _operations(doc: dict) -> Iterator[tuple[str, str, dict]]:
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method in ("get", "put", "post", "patch", "delete"):
                yield method, path, operation


async def test_every_operation_lists_its_error_responses_as_problem_details(tmp_path: Path) -> None:
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        doc = (await client.get("/schema/openapi.json")).json()
    problem = doc["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"field", "errors"} <= set(problem["properties"])
    seen: set[str] = set()
    for method, path, operation in _operations(doc):
        name = f"{method.upper()} {path}"
        responses = operation["responses"]
        has_input = bool(operation.get("parameters") or operation.get("requestBody"))
        expected = {"503"} if path != "/health" else set()
        if path not in PUBLIC:
            expected |= {"401", "403"}
        if "{" in path:
            expected.add("404")
        if method != "get" and CONFLICTS.match(path):
            expected.add("409")
        if (method, path) == ("post", "/api/auth/set-password"):
            expected.add("410")
        if has_input:
            expected |= {"400", "422"}
        if (method, path) == ("post", "/api/auth/token"):
            expected |= {"401", "429"}
        errors = {status for status in responses if int(status) >= 400}
        assert errors == expected, name
        for status in errors:
            content = responses[status].get("content") or {}
            assert list(content) == ["application/problem+json"], f"{name} {status}"
            assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
            assert responses[status]["description"], f"{name} {status}"
        seen |= errors
    assert seen == {"400", "401", "403", "404", "409", "410", "422", "429", "503"}
    # The examples the document states hold: a 404 on a path id, a 409 on a hold action, 422 on a report.
    assert "404" in doc["paths"]["/api/units/{unit_id}"]["get"]["responses"]
    assert "409" in doc["paths"]["/api/holds/{hold_id}/release"]["post"]["responses"]
    assert "422" in doc["paths"]["/api/reports/out-of-area"]["get"]["responses"]


async def test_the_docs_page_loads_only_the_apps_own_files(tmp_path: Path) -> None:
    app = create_app(settings_for(f"sqlite+aiosqlite:///{tmp_path / 'doc.db'}"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        page = await client.get("/schema")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', page.text)
        assert sources, page.text
        for source in sources:
            assert source.startswith(("/static/vendor/swagger-ui/", "data:")), source
            if source.startswith("/"):
                assert (await client.get(source)).status_code == 200, source
        assert "//" not in "".join(s for s in sources if not s.startswith("data:"))
        assert (await client.get("/schema/openapi.json")).status_code == 200


# --- Schemathesis: every operation, as admin, on a demo database (SQLite) ----------------------------
#
# Driven through Hypothesis directly: schemathesis' own pytest loader (`from_fixture`) does not work with
# pytest 9.2 (it reads `Function._nodeid`, which pytest removed).


def _operation_labels() -> list[str]:
    """Every operation in the document, known at collection time (building the app opens no database)."""
    app = create_app(settings_for("sqlite+aiosqlite:///:memory:"))
    doc = schemathesis.openapi.from_dict(app.openapi_schema.to_schema())
    return sorted(result.ok().label for result in doc.get_all_operations())


OPERATIONS = _operation_labels()


async def _real_ids(url: str) -> dict[str, list[str]]:
    db = Database(settings_for(url))
    try:
        async with db.read_sessions() as session:
            users = dict((await session.execute(select(User.username, User.id).where(User.username.in_(USERS)))).all())
            return {
                "users": [users[name] for name in USERS],
                "unit_id": list((await session.scalars(select(Unit.id).order_by(Unit.id))).all()),
                "placement_id": list((await session.scalars(select(Placement.id).order_by(Placement.id))).all()),
            }
    finally:
        await db.dispose()


# The demo users, one per role: the fuzzing calls every operation as each of them.
USERS = ("admin", "amhp", "bedmanager", "commissioner", "conveyance")


def _demo_app(sqlite_template: Path, path: Path) -> tuple[Litestar, dict[str, dict[str, str]], dict[str, list[str]]]:
    """An app on its own copy of the demo database, each demo user's headers and the ids of real objects."""
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite+aiosqlite:///{path}"
    real_ids = asyncio.run(_real_ids(url))
    app = create_app(settings_for(url), clock=FixedClock(START))
    tokens = {
        name: app.state.jwt_auth.create_token(identifier=uid)
        for name, uid in zip(USERS, real_ids.pop("users"), strict=True)
    }
    return app, {name: {"Authorization": f"Bearer {token}"} for name, token in tokens.items()}, real_ids


@pytest.fixture(scope="module")
def fuzzed(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    app, headers, real_ids = _demo_app(sqlite_template, tmp_path_factory.mktemp("schemathesis") / "capacity.db")
    yield {
        "schema": schemathesis.openapi.from_asgi("/schema/openapi.json", app),
        "headers": headers,
        "real_ids": real_ids,
    }
    # Schemathesis started the app's lifespan (its scheduler) in a thread of its own: stop it.
    shutdown_lifespans()


def _strategy(operation, mode: GenerationMode, real_ids: dict[str, list[str]]) -> st.SearchStrategy:
    """Generated cases; path ids are sometimes those of real objects, so that more than 404 is reached."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters if real_ids.get(p.name)]
    if not names:
        return generated
    real = st.fixed_dictionaries({name: st.sampled_from(real_ids[name]) for name in names}).flatmap(
        lambda ids: operation.as_strategy(generation_mode=mode, path_parameters=ids)
    )
    return st.one_of(generated, real)


def run_schemathesis(
    operation, mode: GenerationMode, headers: dict[str, str], real_ids: dict[str, list[str]], examples: int = 20
) -> None:
    @given(case=_strategy(operation, mode, real_ids))
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def no_server_error(case) -> None:
        # No 5xx, and no status the document does not list for the operation.
        case.call_and_validate(headers=headers, checks=[not_a_server_error, status_code_conformance])
        # OPTIONS on the same path (Litestar answers it, outside the document), with and without a token.
        case.method = "OPTIONS"
        for with_headers in (headers, {}):
            response = case.call(headers=with_headers)
            assert response.status_code < 500, f"OPTIONS {case.formatted_path}: {response.status_code}"

    no_server_error()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_generated_request_is_a_server_error(fuzzed: dict, label: str, mode: GenerationMode) -> None:
    operation = fuzzed["schema"].find_operation_by_label(label)
    assert operation is not None, label
    run_schemathesis(operation, mode, fuzzed["headers"]["admin"], fuzzed["real_ids"])


@pytest.mark.parametrize("username", [u for u in USERS if u != "admin"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_request_as_any_role_is_a_server_error(fuzzed: dict, label: str, username: str) -> None:
    """The admin's fuzzing above reaches the most code; each other role meets its own guards and scope."""
    operation = fuzzed["schema"].find_operation_by_label(label)
    assert operation is not None, label
    run_schemathesis(operation, GenerationMode.POSITIVE, fuzzed["headers"][username], fuzzed["real_ids"], examples=5)


def test_the_fuzzing_would_catch_a_server_error(sqlite_template: Path, tmp_path: Path) -> None:
    """The control: an operation that fails for some input is reported, so a pass above means something."""
    app, headers, _ = _demo_app(sqlite_template, tmp_path / "control.db")

    @get("/api/test-only/ratio", sync_to_thread=False)
    def ratio(a: FromQuery[int], b: FromQuery[int]) -> dict[str, int]:
        return {"ratio": a // b}  # ZeroDivisionError, a 500, when b is 0

    app.register(ratio)
    schema = schemathesis.openapi.from_asgi("/schema/openapi.json", app)
    operation = schema.find_operation_by_label("GET /api/test-only/ratio")
    assert operation is not None
    try:
        with pytest.raises(BaseExceptionGroup) as raised:
            run_schemathesis(operation, GenerationMode.POSITIVE, headers["admin"], {})
    finally:
        shutdown_lifespans()
    assert raised.group_contains(ServerError)
