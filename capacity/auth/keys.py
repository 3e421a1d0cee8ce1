"""The demo database's own signing key: random, made when the demo set is loaded, kept in the database.

A demo signing key that were a constant in the source would let anyone forge an admin token for any
server started with `--demo`. Instead `capacity demo` and `capacity serve --demo` make a random key
when they load the demo set into an empty database and store it beside the data (`service_keys`), so
the same demo database keeps its key across restarts and no two demo databases share one.

`capacity serve --demo` serves a database only when it is the demo set: it has this key and no user
outside the demo's own. Anything else needs a real CAPACITY_SECRET_KEY.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from sqlalchemy import select

from capacity.auth.models import ServiceKey, User
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork

DEMO_KEY = "demo_signing_key"


async def store_demo_key(db: Database) -> str:
    """Make and store the demo database's signing key (or return the one it already has)."""

    async def work(uow: UnitOfWork) -> str:
        existing = await uow.session.get(ServiceKey, DEMO_KEY)
        if existing is not None:
            return existing.value
        key = secrets.token_urlsafe(48)
        uow.session.add(ServiceKey(name=DEMO_KEY, value=key, created_at=uow.now))
        return key

    return await db.write(work)


async def demo_key_of(db: Database, demo_usernames: Iterable[str]) -> str | None:
    """The signing key of a demo database; None when the database holds anything but the demo set
    (no demo key stored, or a user who is not one of the demo's)."""
    async with db.read_sessions() as session:
        key = await session.get(ServiceKey, DEMO_KEY)
        others = await session.scalar(select(User.id).where(User.username.not_in(list(demo_usernames))).limit(1))
    if key is None or others is not None:
        return None
    return key.value
