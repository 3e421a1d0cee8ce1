"""Section 135/136 episodes (one clock each) and their legs at places that are not units."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.booking.persons import PersonMixin
from capacity.codes import DetentionBasis, ExtensionReason, PlaceType, PoliceVehicleReason, check_in
from capacity.db.base import Base, IdMixin


def first_legs_by_person(table: str) -> Index:
    """An index of the first legs of episodes (a leg whose id is its episode's) in `table`, by the person
    they are for: how the s136 report finds a person's earlier episodes (migration 0014)."""
    first_leg = text("id = detention_id")
    return Index(
        f"ix_{table}_first_leg_person", "home_area", "person_ref", postgresql_where=first_leg, sqlite_where=first_leg
    )


class Episode(IdMixin, Base):
    """One detention under s136 or s135(1) with its one 24-hour clock, whatever places of safety the
    person passes through (each a leg: a placement at a unit, or an `S136Detention` elsewhere). Its id
    is the id of its first leg, and is the `detention_id` a later leg names to continue it."""

    __tablename__ = "detention_episodes"
    legal_basis: Mapped[str] = mapped_column(String(10))
    clock_started_at: Mapped[datetime]  # arrival at the first place of safety
    deadline: Mapped[datetime]  # the clock's start plus 24 hours plus the extension, if any
    # Places of safety so far; each transfer increments it, which also locks the row against a second
    # transfer of the same person at the same moment.
    legs: Mapped[int] = mapped_column(Integer, default=1)
    extension_hours: Mapped[int | None] = mapped_column(Integer)
    extension_reason: Mapped[str | None] = mapped_column(String(24))  # null only for records before codes
    extension_authorised_by: Mapped[str | None] = mapped_column(String(120))  # the examining doctor
    extension_superintendent: Mapped[str | None] = mapped_column(String(120))  # at a police station
    # Said by person-level roles, for person-level roles: never read by a report.
    extension_note: Mapped[str | None] = mapped_column(String(280))
    extension_recorded_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]  # when a leg ended other than `transferred`
    outcome: Mapped[str | None] = mapped_column(String(24))

    __table_args__ = (
        check_in("legal_basis", DetentionBasis),
        check_in("extension_reason", ExtensionReason),
        CheckConstraint("extension_hours is null or extension_hours between 1 and 12", name="extension_hours"),
        Index("ix_detention_episodes_clock_started_at", "clock_started_at"),  # the s136 report's period
        Index(
            "ix_detention_episodes_open_deadline",
            "deadline",
            postgresql_where=text("ended_at IS NULL AND breached_at IS NULL"),
            sqlite_where=text("ended_at IS NULL AND breached_at IS NULL"),
        ),
    )


# The columns a detention keeps just as they were recorded (DetentionIn), and shows so (DetentionOut).
AS_RECORDED = (
    "place_type",
    "place_name",
    "detained_at",
    "never_event_acknowledged",
    "note",
    "authorising_inspector",
    "conveyance_mode",
    "police_vehicle_reason",
    "police_vehicle_note",
    "ambulance_requested_at",
    "ambulance_at_scene_at",
)


class S136Detention(IdMixin, PersonMixin, Base):
    """A leg of an episode at a place of safety that is not a bookable unit: an emergency department,
    a police station or elsewhere. Recorded so that the clock is kept and the s136 report is complete."""

    __tablename__ = "s136_detentions"
    detention_id: Mapped[str] = mapped_column(ForeignKey("detention_episodes.id"), index=True)
    episode: Mapped[Episode] = relationship(lazy="joined", innerjoin=True)
    place_type: Mapped[str] = mapped_column(String(24))
    place_name: Mapped[str | None] = mapped_column(String(200))
    detained_at: Mapped[datetime]  # arrival here (for the first leg, the clock's start)
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(24))
    # s136A: an under-18 in a police station is a never event; recorded only when acknowledged, with a note.
    never_event_acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(String(280))
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
        # s136A: never a police station for a person under 18 unless recorded as the never event it is.
        CheckConstraint(
            "place_type != 'police_station' or person_age >= 18 or (never_event_acknowledged and note is not null)",
            name="no_under_18_in_police_station",
        ),
        Index("ix_s136_detentions_home_detained", "home_area", "detained_at"),
        first_legs_by_person("s136_detentions"),
    )
