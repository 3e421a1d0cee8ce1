"""Placements, with their out-of-area facts and, under s135/s136, the episode whose clock they keep."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Numeric, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.booking.detentions.models import Episode, first_legs_by_person
from capacity.booking.persons import PersonMixin
from capacity.db.base import Base, IdMixin


class Placement(IdMixin, PersonMixin, Base):
    __tablename__ = "placements"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    hold_id: Mapped[str | None] = mapped_column(ForeignKey("holds.id"), unique=True)
    legal_basis: Mapped[str] = mapped_column(String(10))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(24))
    out_of_area: Mapped[bool] = mapped_column(Boolean, default=False)
    oap_reason: Mapped[str | None] = mapped_column(String(2))
    distance_km: Mapped[float | None] = mapped_column(Float)
    daily_cost: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False), default=0)
    created_by: Mapped[str] = mapped_column(String(80))
    # Under s135/s136: the episode this placement is a leg of, which keeps the clock for all its legs.
    detention_id: Mapped[str | None] = mapped_column(ForeignKey("detention_episodes.id"), index=True)
    episode: Mapped[Episode | None] = relationship(lazy="joined")
    # Why a 16- or 17-year-old was admitted to an adult ward in an emergency (person-level, never reported).
    age_exception_reason: Mapped[str | None] = mapped_column(String(280))

    __table_args__ = (
        # Occupancy of a unit is counted on every availability read.
        Index("ix_placements_unit_ended", "unit_id", "ended_at"),
        Index("ix_placements_home_started", "home_area", "started_at"),
        # The reports read out-of-area placements of one area.
        Index(
            "ix_placements_oap_home_started",
            "home_area",
            "started_at",
            postgresql_where=text("out_of_area IS true"),
            sqlite_where=text("out_of_area IS 1"),
        ),
        first_legs_by_person("placements"),
    )
