"""GET /api/audit: the admin's query of the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromQuery, QueryParameter
from sqlalchemy import select

from capacity.audit.models import AuditEntry
from capacity.auth.security import require_roles
from capacity.db.engine import Database
from capacity.times import require_offset


class AuditEntryOut(msgspec.Struct):
    id: int
    at: datetime
    username: str
    role: str
    action: str
    object_type: str
    object_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


class AuditController(Controller):
    path = "/api/audit"
    tags = ["Audit"]
    guards = [require_roles("admin")]

    @get("/", summary="Query the append-only audit log (admin), newest first")
    async def query(
        self,
        db: NamedDependency[Database],
        object_type: FromQuery[str | None] = None,
        object_id: FromQuery[str | None] = None,
        username: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[AuditEntryOut]:
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        for column, value in (
            (AuditEntry.object_type, object_type),
            (AuditEntry.object_id, object_id),
            (AuditEntry.username, username),
            (AuditEntry.action, action),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        since, until = require_offset(since, "since"), require_offset(until, "until")
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEntry.at <= until)
        async with db.read_sessions() as session:
            rows = (await session.scalars(stmt)).all()
        return [
            AuditEntryOut(e.id, e.at, e.username, e.role, e.action, e.object_type, e.object_id, e.before, e.after)
            for e in rows
        ]
