"""Reads of person data are audited (DOMAIN.md): a list as one read naming the ids it showed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from capacity.audit.service import audited_read
from capacity.auth.security import Actor
from capacity.db.engine import Database


async def audited_list(db: Database, actor: Actor, object_type: str, shown: Sequence[Any]) -> None:
    """Audit `<object_type>.list`: the caller saw these rows (each with an `id`)."""
    ids = [row.id for row in shown]
    await audited_read(
        db, actor, action=f"{object_type}.list", object_type=object_type, object_id=None, after={"ids": ids}
    )
