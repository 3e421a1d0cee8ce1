"""A crisis alternative and the areas it serves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.codes import AlternativeKind, check_in
from capacity.db.base import Base, IdMixin


class AlternativeArea(Base):
    """A home area whose people an alternative serves."""

    __tablename__ = "crisis_alternative_areas"
    alternative_id: Mapped[str] = mapped_column(
        ForeignKey("crisis_alternatives.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: "who serves this area" is the question every search asks.
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True, index=True)


class Alternative(IdMixin, Base):
    """Help in a crisis that is not a bookable bed. Retired (`active` false), never deleted."""

    __tablename__ = "crisis_alternatives"
    code: Mapped[str | None] = mapped_column(String(20), unique=True)  # the reference import matches by it
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    min_age: Mapped[int] = mapped_column(Integer, default=0)
    max_age: Mapped[int | None] = mapped_column(Integer)
    # capacity.alternatives.hours: intervals per weekday in Europe/London, and bank holidays.
    opening_hours: Mapped[dict[str, Any]] = mapped_column(JSON)
    how_to_refer: Mapped[str] = mapped_column(Text)
    phone: Mapped[str | None] = mapped_column(String(30))
    # Where it is, when it is somewhere (a crisis line is not): distance is from the person's home area.
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    area_links: Mapped[list[AlternativeArea]] = relationship(lazy="selectin", cascade="all, delete-orphan")

    __table_args__ = (
        check_in("kind", AlternativeKind),
        CheckConstraint("max_age is null or max_age >= min_age", name="ages"),
        CheckConstraint("(lat is null) = (lon is null)", name="location"),
    )

    @property
    def areas(self) -> list[str]:
        return sorted(link.area_code for link in self.area_links)
