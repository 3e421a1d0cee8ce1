"""Placements, with their out-of-area facts and the s136 clock."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

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
    s136_clock_started_at: Mapped[datetime | None]
    s136_deadline: Mapped[datetime | None]
    s136_extension_hours: Mapped[int | None] = mapped_column(Integer)
    s136_extension_authorised_by: Mapped[str | None] = mapped_column(String(120))
    s136_extension_reason: Mapped[str | None] = mapped_column(String(280))
    s136_extension_recorded_at: Mapped[datetime | None]
    s136_breached_at: Mapped[datetime | None]

    __table_args__ = (
        # Occupancy of a unit is counted on every availability read.
        Index("ix_placements_unit_ended", "unit_id", "ended_at"),
        Index("ix_placements_home_started", "home_area", "started_at"),
        # The reports read out-of-area and s136 placements of one area; the sweep only open s136 clocks.
        Index(
            "ix_placements_oap_home_started",
            "home_area",
            "started_at",
            postgresql_where=text("out_of_area IS true"),
            sqlite_where=text("out_of_area IS 1"),
        ),
        Index(
            "ix_placements_s136_home_clock",
            "home_area",
            "s136_clock_started_at",
            postgresql_where=text("legal_basis = 's136'"),
            sqlite_where=text("legal_basis = 's136'"),
        ),
        Index(
            "ix_placements_open_s136_deadline",
            "s136_deadline",
            postgresql_where=text("ended_at IS NULL AND s136_breached_at IS NULL"),
            sqlite_where=text("ended_at IS NULL AND s136_breached_at IS NULL"),
        ),
    )
