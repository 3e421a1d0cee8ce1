"""An app per database engine, on a migrated database holding the demo data set.

Every test that asks for `api` runs on SQLite and, when CAPACITY_TEST_DATABASE_URL names one, on
PostgreSQL too (ARCHITECTURE rule 8). Time is a FixedClock that tests move; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import select, text

from capacity.app import create_app
from capacity.auth.models import User
from capacity.booking.models import Area, Provider, Unit
from capacity.cli import migrate_to_head
from capacity.clock import FixedClock
from capacity.db.engine import Database
from capacity.demo import load_demo
from capacity.models import Base
from capacity.settings import Settings

# A fixed Monday morning in GMT: the demo data is confirmed at this instant.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PG_URL = os.environ.get("CAPACITY_TEST_DATABASE_URL")
if os.environ.get("CI") == "true" and not PG_URL:
    raise RuntimeError("CI must run the suite on PostgreSQL too: set CAPACITY_TEST_DATABASE_URL")
ENGINES = ["sqlite"] + (["postgres"] if PG_URL else [])
DEMO_USERS = ("admin", "amhp", "bedmanager", "commissioner", "conveyance")


def test_settings(database_url: str, **overrides: Any) -> Settings:
    return Settings(database_url=database_url, secret_key="test-signing-key-" + "x" * 32, **overrides)


async def _load_demo(url: str, at: datetime = START) -> None:
    db = Database(test_settings(url))
    try:
        assert await load_demo(db, at)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    url = f"sqlite+aiosqlite:///{path}"
    migrate_to_head(url)
    asyncio.run(_load_demo(url))
    return path


async def _reset_postgres(url: str, demo_at: datetime = START) -> None:
    db = Database(test_settings(url))
    try:
        async with db.engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    finally:
        await db.dispose()
    await _load_demo(url, demo_at)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    assert PG_URL, "CAPACITY_TEST_DATABASE_URL is not set"

    async def wipe() -> None:
        db = Database(test_settings(PG_URL))
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
    asyncio.run(_reset_postgres(url))
    return url


class Api:
    """A client of one app, with tokens for the demo users and look-ups of demo objects."""

    def __init__(self, client: httpx.AsyncClient, app: Litestar, clock: FixedClock) -> None:
        self.client = client
        self.app = app
        self.clock = clock
        self.db: Database = app.state.db
        self._tokens: dict[str, str] = {}

    async def user(self, username: str) -> User:
        async with self.db.read_sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None, username
            return user

    async def headers(self, username: str) -> dict[str, str]:
        if username not in self._tokens:
            user = await self.user(username)
            self._tokens[username] = self.app.state.jwt_auth.create_token(identifier=user.id)
        return {"Authorization": f"Bearer {self._tokens[username]}"}

    async def request(self, method: str, url: str, as_: str | None = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}) or {})
        if as_:
            headers.update(await self.headers(as_))
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, as_: str | None = None, **kw: Any):
        return await self.request("GET", url, as_, **kw)

    async def post(self, url: str, as_: str | None = None, **kw: Any):
        return await self.request("POST", url, as_, **kw)

    async def put(self, url: str, as_: str | None = None, **kw: Any):
        return await self.request("PUT", url, as_, **kw)

    async def unit(self, name_start: str) -> Unit:
        async with self.db.read_sessions() as session:
            unit = await session.scalar(select(Unit).where(Unit.name.startswith(name_start)))
            assert unit is not None, name_start
            return unit

    async def provider(self, name_start: str) -> Provider:
        async with self.db.read_sessions() as session:
            provider = await session.scalar(select(Provider).where(Provider.name.startswith(name_start)))
            assert provider is not None, name_start
            return provider

    async def area(self, code: str) -> Area:
        async with self.db.read_sessions() as session:
            area = await session.get(Area, code)
            assert area is not None
            return area


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Tests override settings by redefining this fixture."""
    return {}


@pytest.fixture
async def api(database_url: str, clock: FixedClock, settings_overrides: dict[str, Any]) -> AsyncIterator[Api]:
    app = create_app(test_settings(database_url, **settings_overrides), clock=clock)
    # The app runs in the test's own event loop, so tests and app share one connection pool. Its
    # lifespan (the scheduler) is not started: tests run the jobs themselves, by the clock.
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with app.state.channels, httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        yield Api(client, app, clock)
    await app.state.db.dispose()


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """The response is RFC 9457 problem details with this status (and names `field`, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert body["status"] == status
    if field is not None:
        fields = {body.get("field")} | {e.get("field") for e in body.get("errors", [])}
        assert field in fields, body
    text_ = response.text.lower()
    assert "traceback" not in text_ and "select " not in text_
    return body
