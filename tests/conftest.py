"""An app per database engine, on a migrated database holding the demo data set.

Every test that asks for `api` runs on SQLite and, when CAPACITY_TEST_DATABASE_URL names one, on
PostgreSQL too (ARCHITECTURE rule 8). Time is a FixedClock that tests move; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from capacity.app import create_app
from capacity.cli import migrate_to_head
from capacity.clock import FixedClock
from capacity.db.engine import Database
from support.api import Api
from support.demo import ENGINES, PG_URL, START, load_demo, reset_postgres
from support.settings import settings_for

# Every test module belongs to one group (the markers registered in pyproject.toml), so that
# `pytest -m unit` and the like select by kind. A module missing here fails collection: classify it.
#   unit         no database, no server
#   integration  a database, through the app (or its CLI and migrations)
#   concurrency  races: many requests at once, several processes or instances
#   browser      a real Chromium
KINDS = ("unit", "integration", "concurrency", "browser")
MODULE_KINDS = {
    "test_admin": "integration",
    "test_alternatives": "integration",
    "test_alternatives_ui": "browser",  # the AMHP page offers what is open when no place is free
    "test_auth": "integration",
    "test_booking_model": "integration",  # a Hypothesis state machine, one step at a time: no races
    "test_compose": "unit",  # reads compose.yaml and the Dockerfile
    "test_compose_run": "concurrency",  # compose.yaml's processes, without containers, through nginx
    "test_concurrency": "concurrency",
    "test_detentions": "integration",
    "test_disclosure": "integration",
    "test_eligibility": "integration",
    "test_fhir": "integration",  # the FHIR read API, each answer parsed by fhir.resources
    "test_faults": "concurrency",  # PostgreSQL of its own stopped and started, a pool exhausted
    "test_episodes": "integration",  # one clock per s136/s135 episode, on a fixed clock
    "test_escalation": "integration",  # OPEL levels: who declares, history, staleness, live
    "test_escalation_ui": "browser",  # OPEL levels on the bed manager and AMHP pages, live
    "test_errors": "integration",
    "test_hazard_log": "unit",
    "test_holds": "integration",
    "test_import": "integration",
    "test_live": "integration",  # a real server and WebSocket, in the test's own loop
    "test_live_pages": "browser",  # live updates keep typed input; messages and problems in words
    "test_live_redis": "concurrency",  # several instances through Redis
    "test_local_network": "integration",
    "test_migrations": "integration",
    "test_openapi": "integration",
    "test_page_checks": "browser",  # every page: no sideways scrolling, 44 px targets, axe-core, screenshots
    "test_races": "concurrency",  # two changes interleaved by force for the last place
    "test_read_model": "integration",  # the search's read model against the database, events dropped
    "test_reference_import": "integration",
    "test_region": "integration",  # GET /api/region/status against the units' own figures
    "test_region_ui": "browser",  # the /region page updates live
    "test_reports": "integration",
    "test_roles": "integration",
    "test_schema_ui": "browser",  # /schema with every request elsewhere aborted
    "test_task_pages": "browser",  # detentions, direct admission, conveyance, confirmations, London times
    "test_security": "integration",
    "test_snapshot": "integration",
    "test_sso": "browser",  # a real OpenID provider (Node.js) and Chromium
    "test_times": "integration",
    "test_admin_ui": "browser",
    "test_ui": "browser",
    "test_units": "integration",
    "test_web_session": "integration",
    "test_workers": "concurrency",  # real server processes: one sweeper, a graceful stop
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unknown: set[str] = set()
    for item in items:
        if any(item.get_closest_marker(kind) for kind in KINDS):
            continue  # a test that names its own group keeps it
        kind = MODULE_KINDS.get(item.path.stem)
        if kind is None:
            unknown.add(str(item.path.relative_to(config.rootpath)))
        else:
            item.add_marker(kind)
    if unknown:
        raise pytest.UsageError(
            f"test modules not classified in MODULE_KINDS (tests/conftest.py): {', '.join(sorted(unknown))}; "
            f"add each with one of {', '.join(KINDS)}"
        )


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate_to_head(url)
    asyncio.run(load_demo(url))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    assert PG_URL, "CAPACITY_TEST_DATABASE_URL is not set"

    async def wipe() -> None:
        db = Database(settings_for(PG_URL))
        try:
            async with db.engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await db.dispose()

    try:
        asyncio.run(wipe())
    except OSError as exc:  # refuse to skip: CI must run on PostgreSQL
        pytest.exit(f"PostgreSQL at CAPACITY_TEST_DATABASE_URL is unreachable: {exc}", returncode=3)
    migrate_to_head(PG_URL)
    return PG_URL


@pytest.fixture(params=ENGINES)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database with the demo data, fresh for each test."""
    if request.param == "sqlite":
        path = tmp_path / "capacity.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite+aiosqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    asyncio.run(reset_postgres(url))
    return url


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override settings by redefining this fixture."""
    return {}


@pytest.fixture
async def api(database_url: str, clock: FixedClock, settings_overrides: dict[str, Any]) -> AsyncIterator[Api]:
    app = create_app(settings_for(database_url, **settings_overrides), clock=clock)
    # The app runs in the test's own event loop, so tests and app share one connection pool. Its
    # lifespan (the scheduler) is not started: tests run the jobs themselves, by the clock.
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with app.state.channels, httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        yield Api(client, app, clock)
    await app.state.db.dispose()
