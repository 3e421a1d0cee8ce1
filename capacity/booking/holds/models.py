"""Holds and their conveyance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from capacity.booking.persons import PersonMixin
from capacity.codes import HoldStatus, PoliceVehicleReason, check_in
from capacity.db.base import Base, IdMixin


class Hold(IdMixin, PersonMixin, Base):
    __tablename__ = "holds"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(10), default="held")
    purpose: Mapped[str] = mapped_column(String(10))
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    ended_by: Mapped[str | None] = mapped_column(String(80))
    risk_flags: Mapped[list] = mapped_column(default=list)
    note: Mapped[str | None] = mapped_column(String(280))
    extensions: Mapped[int] = mapped_column(Integer, default=0)
    extended_minutes: Mapped[int] = mapped_column(Integer, default=0)
    decline_reason: Mapped[str | None] = mapped_column(String(32))
    decline_note: Mapped[str | None] = mapped_column(String(280))
    # The s135/s136 episode the person is already detained under, elsewhere: the placement continues it.
    detention_id: Mapped[str | None] = mapped_column(ForeignKey("detention_episodes.id"))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_hash: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        check_in("status", HoldStatus),
        # Live holds of a unit are counted on every availability read.
        Index("ix_holds_unit_status_expires", "unit_id", "status", "expires_at"),
        Index("ix_holds_status_expires", "status", "expires_at"),
        Index("ix_holds_home_created", "home_area", "created_at"),  # the capacity report
        UniqueConstraint("created_by", "idempotency_key"),
    )


class Conveyance(Base):
    """How a person on a hold is taken to the unit: mode, the five times and the changing ETA."""

    __tablename__ = "conveyances"
    hold_id: Mapped[str] = mapped_column(ForeignKey("holds.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(20))
    police_vehicle_reason: Mapped[str | None] = mapped_column(String(24))
    # Said by person-level roles, for person-level roles: never read by a report.
    police_vehicle_note: Mapped[str | None] = mapped_column(String(280))
    requested_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    at_scene_at: Mapped[datetime | None]
    departed_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    eta: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(80))
    __table_args__ = (check_in("police_vehicle_reason", PoliceVehicleReason),)
