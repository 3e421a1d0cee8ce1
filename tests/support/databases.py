"""Databases of a test's own, beside the shared test database, on each engine: made empty, then dropped."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from support.demo import PG_URL


async def _server(url: str, statement: str) -> None:
    server = create_async_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with server.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await server.dispose()


@contextmanager
def own_database(engine: str, tmp_path: Path, suffix: str) -> Iterator[str]:
    """The URL of an empty database for this test: a file on SQLite; on PostgreSQL `<test database>_<suffix>`,
    created empty and dropped when the test ends."""
    if engine == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'{suffix}.db'}"
        return
    assert PG_URL
    url = make_url(PG_URL)
    name = f"{url.database}_{suffix}"
    own = url.set(database=name).render_as_string(hide_password=False)
    asyncio.run(_server(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    asyncio.run(_server(PG_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield own
    finally:
        asyncio.run(_server(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
