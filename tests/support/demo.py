"""The demo data set the tests run on, the engines they run on, and loading or resetting a database."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from sqlalchemy import text

import capacity.demo
from capacity.db.engine import Database
from capacity.models import Base
from support.settings import settings_for

# A fixed Monday morning in GMT: the demo data is confirmed at this instant.
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PG_URL = os.environ.get("CAPACITY_TEST_DATABASE_URL")
if os.environ.get("CI") == "true" and not PG_URL:
    raise RuntimeError("CI must run the suite on PostgreSQL too: set CAPACITY_TEST_DATABASE_URL")
ENGINES = ["sqlite"] + (["postgres"] if PG_URL else [])
DEMO_USERS = ("admin", "amhp", "bedmanager", "commissioner", "conveyance")


async def load_demo(url: str, at: datetime = START) -> None:
    """Load the demo data set, confirmed at `at`, into the (migrated, empty) database at `url`."""
    db = Database(settings_for(url))
    try:
        assert await capacity.demo.load_demo(db, at)
    finally:
        await db.dispose()


async def reset_postgres(url: str, demo_at: datetime = START) -> None:
    """Empty every table of the PostgreSQL database at `url` and load the demo data again."""
    db = Database(settings_for(url))
    try:
        async with db.engine.begin() as conn:
            tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
            # The audit log refuses TRUNCATE (migration 0007); a test database's owner lifts that for the reset.
            await conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER USER"))
            await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER USER"))
    finally:
        await db.dispose()
    await load_demo(url, demo_at)
