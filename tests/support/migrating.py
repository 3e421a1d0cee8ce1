"""Testing what a migration does to rows already there: migrate an empty database part way, fill it as it
was at that revision, migrate on, and read what came of the rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from capacity.cli import alembic_config


@asynccontextmanager
async def engine_of(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a test's own database, disposed of after (each asyncio.run needs its own)."""
    engine = create_async_engine(url)
    try:
        yield engine
    finally:
        await engine.dispose()


def migrate_filled(url: str, at: str, fill: Callable[[str], Awaitable[None]], to: str) -> Config:
    """Upgrade the database at `url` to revision `at`, `fill` it, then upgrade it to `to`; the config is
    for going back down."""
    config = alembic_config(url)
    command.upgrade(config, at)
    asyncio.run(fill(url))
    command.upgrade(config, to)
    return config


async def rows_of(url: str, query: str) -> set[tuple]:
    async with engine_of(url) as engine, engine.connect() as conn:
        return {tuple(r) for r in await conn.execute(text(query))}


async def table_names(url: str) -> set[str]:
    async with engine_of(url) as engine, engine.connect() as conn:
        return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
