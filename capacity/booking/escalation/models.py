"""Every escalation level a provider declared: who, when, the level before and after, and the note."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from capacity.booking.declared import DeclaredMixin
from capacity.db.base import Base, IdMixin


class EscalationDeclaration(IdMixin, DeclaredMixin, Base):
    __tablename__ = "escalation_declarations"
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"))
    before_level: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[int] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    __table_args__ = (
        CheckConstraint("level between 1 and 4", name="level"),
        Index("ix_escalation_declarations_provider_at", "provider_id", "declared_at"),
    )
