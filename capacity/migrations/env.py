"""Alembic environment: async engines, batch mode on SQLite, URL from the app's settings."""

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from capacity.db.engine import make_engine
from capacity.models import Base
from capacity.settings import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.attributes.get("database_url") or Settings.from_env().database_url


def _configure(connection: Connection | None = None, url: str | None = None) -> None:
    is_sqlite = (url or "").startswith("sqlite") or (connection is not None and connection.dialect.name == "sqlite")
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        render_as_batch=is_sqlite,
        compare_type=True,
        literal_binds=connection is None,
    )


def run_migrations_offline() -> None:
    _configure(url=_url())
    with context.begin_transaction():
        context.run_migrations()


# Several app instances may start together and each migrate: on PostgreSQL they take turns.
MIGRATION_LOCK = 7_136_136


def _sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    """Batch mode rebuilds a table by copy and drop, which SQLite refuses for a table others reference
    while foreign keys are enforced. The pragma counts only outside a transaction, so it is set on the
    driver's connection, before SQLAlchemy begins one (and set back after the commit)."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    cursor.close()


def _run_sync(connection: Connection) -> None:
    _configure(connection=connection)
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        _sqlite_foreign_keys(connection, on=False)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
        context.run_migrations()
        if sqlite and (broken := connection.exec_driver_sql("PRAGMA foreign_key_check").first()):
            raise RuntimeError(f"a migration left a row whose foreign key points nowhere: {tuple(broken)}")


async def run_async_migrations() -> None:
    engine = make_engine(_url())
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync)
        await connection.commit()
        if connection.dialect.name == "sqlite":
            await connection.run_sync(_sqlite_foreign_keys, True)
    await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(run_async_migrations())
