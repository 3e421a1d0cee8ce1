"""Section 136 detentions at places that are not units."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from capacity.booking.persons import PersonMixin
from capacity.codes import PlaceType, PoliceVehicleReason, check_in
from capacity.db.base import Base, IdMixin


class S136Detention(IdMixin, PersonMixin, Base):
    """A section 136 detention at a place of safety that is not a bookable unit: an emergency department,
    a police station or elsewhere. Recorded so that the s136 report is complete."""

    __tablename__ = "s136_detentions"
    place_type: Mapped[str] = mapped_column(String(24))
    place_name: Mapped[str | None] = mapped_column(String(200))
    detained_at: Mapped[datetime]  # the 24-hour clock starts here
    deadline: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(24))
    extension_hours: Mapped[int | None] = mapped_column(Integer)
    extension_authorised_by: Mapped[str | None] = mapped_column(String(120))
    extension_reason: Mapped[str | None] = mapped_column(String(280))
    breached_at: Mapped[datetime | None]
    # Places of Safety Regulations 2017: an adult in a police station only on all criteria and an inspector's say.
    police_station_criteria: Mapped[list] = mapped_column(default=list)
    authorising_inspector: Mapped[str | None] = mapped_column(String(120))
    conveyance_mode: Mapped[str | None] = mapped_column(String(20))
    police_vehicle_reason: Mapped[str | None] = mapped_column(String(24))
    # Said by person-level roles, for person-level roles: never read by a report.
    police_vehicle_note: Mapped[str | None] = mapped_column(String(280))
    ambulance_requested_at: Mapped[datetime | None]
    ambulance_at_scene_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]

    __table_args__ = (
        check_in("place_type", PlaceType),
        check_in("police_vehicle_reason", PoliceVehicleReason),
        # s136A: never a police station for a person under 18, whatever the code above does.
        CheckConstraint("place_type != 'police_station' or person_age >= 18", name="no_under_18_in_police_station"),
        Index("ix_s136_detentions_home_detained", "home_area", "detained_at"),
        Index(
            "ix_s136_detentions_open_deadline",
            "deadline",
            postgresql_where=text("ended_at IS NULL AND breached_at IS NULL"),
            sqlite_where=text("ended_at IS NULL AND breached_at IS NULL"),
        ),
    )
