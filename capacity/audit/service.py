"""Reads of person-level data are audited in a short write of their own, after the read.

The read itself runs on a read session, so it never waits for (or holds) the write lock; if the audit
entry cannot be written, the caller gets an error instead of the data (the answer is built only after
this returns).
"""

from __future__ import annotations

from typing import Any

from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork


async def audited_read(
    db: Database, actor: Any, *, action: str, object_type: str, object_id: str | None, after: dict | None = None
) -> None:
    async def record(uow: UnitOfWork) -> None:
        uow.audit(actor, action, object_type, object_id, after=after)

    await db.write(record)
