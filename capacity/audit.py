"""The append-only audit log: every change, and every read of person-level data.

Nothing in the code updates or deletes a row here; on PostgreSQL a trigger refuses it as well.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, get
from litestar.params import FromQuery, QueryParameter
from sqlalchemy import JSON, BigInteger, Index, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from capacity.auth.security import require_roles
from capacity.db.base import Base
from capacity.db.engine import Database


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(40))
    object_type: Mapped[str] = mapped_column(String(24))
    object_id: Mapped[str | None] = mapped_column(String(36))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        Index("ix_audit_log_object", "object_type", "object_id"),
    )


def record(
    session: AsyncSession,
    *,
    at: datetime,
    actor: Any,
    action: str,
    object_type: str,
    object_id: str | None,
    before: dict | None = None,
    after: dict | None = None,
) -> None:
    """Add an audit entry to the caller's transaction: it commits, or rolls back, with the change."""
    session.add(
        AuditEntry(
            at=at,
            username=actor.username,
            role=actor.role,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
        )
    )


class AuditEntryOut(msgspec.Struct):
    id: int
    at: datetime
    username: str
    role: str
    action: str
    object_type: str
    object_id: str | None
    before: dict | None
    after: dict | None


class AuditController(Controller):
    path = "/api/audit"
    tags = ["Audit"]
    guards = [require_roles("admin")]

    @get("/", summary="Query the append-only audit log (admin), newest first")
    async def query(
        self,
        db: Database,
        object_type: FromQuery[str | None] = None,
        object_id: FromQuery[str | None] = None,
        username: FromQuery[str | None] = None,
        action: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        until: FromQuery[datetime | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> list[AuditEntryOut]:
        stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        for column, value in ((AuditEntry.object_type, object_type), (AuditEntry.object_id, object_id),
                              (AuditEntry.username, username), (AuditEntry.action, action)):
            if value is not None:
                stmt = stmt.where(column == value)
        if since is not None:
            stmt = stmt.where(AuditEntry.at >= since)
        if until is not None:
            stmt = stmt.where(AuditEntry.at <= until)
        async with db.read_sessions() as session:
            rows = (await session.scalars(stmt)).all()
        return [AuditEntryOut(e.id, e.at, e.username, e.role, e.action, e.object_type, e.object_id, e.before, e.after)
                for e in rows]
