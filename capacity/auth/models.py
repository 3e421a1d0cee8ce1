"""Users of the system: staff, never the people in crisis."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.codes import Role, check_in
from capacity.db.base import Base, IdMixin


class UserArea(Base):
    __tablename__ = "user_areas"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True)


class User(IdMixin, Base):
    __tablename__ = "users"
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(ForeignKey("providers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    area_links: Mapped[list[UserArea]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    __table_args__ = (
        check_in("role", Role),
        # A bed manager belongs to exactly one provider.
        CheckConstraint("role != 'bed_manager' or provider_id is not null", name="bed_manager_provider"),
    )

    @property
    def areas(self) -> list[str]:
        return sorted(link.area_code for link in self.area_links)
