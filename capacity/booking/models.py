"""Areas, providers, units, their declaration history, holds, placements and conveyance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.codes import AreaRule, HoldStatus, PlaceType, Sector, UnitKind, UnitSex, UnitStatus, check_in
from capacity.db.base import Base, IdMixin


class AreaLocalProvider(Base):
    """A provider that forms part of an area's usual local network (DHSC OAP definition)."""

    __tablename__ = "area_local_providers"
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code", ondelete="CASCADE"), primary_key=True)
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id", ondelete="CASCADE"), primary_key=True)


class Area(Base):
    __tablename__ = "areas"
    code: Mapped[str] = mapped_column(String(9), primary_key=True)  # ONS code, e.g. E06000022
    name: Mapped[str] = mapped_column(String(120))
    region: Mapped[str] = mapped_column(String(80), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    local_providers: Mapped[list[AreaLocalProvider]] = relationship(lazy="selectin", cascade="all")

    @property
    def local_provider_ids(self) -> list[str]:
        return sorted(link.provider_id for link in self.local_providers)


class Provider(IdMixin, Base):
    __tablename__ = "providers"
    name: Mapped[str] = mapped_column(String(200), unique=True)
    sector: Mapped[str] = mapped_column(String(16))
    __table_args__ = (check_in("sector", Sector),)


class UnitAreaRule(Base):
    """A home area a unit accepts exclusively (`accepts`) or refuses (`refuses`)."""

    __tablename__ = "unit_area_rules"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(8))
    __table_args__ = (check_in("rule", AreaRule),)


class Unit(IdMixin, Base):
    __tablename__ = "units"
    provider_id: Mapped[str] = mapped_column(ForeignKey("providers.id"), index=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(24))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    postcode: Mapped[str | None] = mapped_column(String(10))
    sex: Mapped[str] = mapped_column(String(8), default="any")
    min_age: Mapped[int] = mapped_column(Integer, default=18)
    max_age: Mapped[int | None] = mapped_column(Integer)
    mother_and_baby: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_intoxicated: Mapped[bool] = mapped_column(Boolean, default=False)
    accepts_detained: Mapped[bool] = mapped_column(Boolean, default=True)
    max_stay_days: Mapped[int | None] = mapped_column(Integer)
    daily_cost: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False), default=0)
    status: Mapped[str] = mapped_column(String(8), default="open")
    open_places: Mapped[int] = mapped_column(Integer, default=0)
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    last_confirmed_at: Mapped[datetime]
    last_confirmed_by: Mapped[str] = mapped_column(String(80))
    area_rules: Mapped[list[UnitAreaRule]] = relationship(lazy="raise", cascade="all, delete-orphan")

    __table_args__ = (
        CheckConstraint("open_places >= 0", name="open_places_not_negative"),
        check_in("status", UnitStatus),
        check_in("sex", UnitSex),
        check_in("kind", UnitKind),
        Index("ix_units_kind_sex_ages", "kind", "sex", "min_age", "max_age"),
    )

    @property
    def accepts_from_areas(self) -> list[str]:
        return sorted(r.area_code for r in self.area_rules if r.rule == "accepts")

    @property
    def refuses_areas(self) -> list[str]:
        return sorted(r.area_code for r in self.area_rules if r.rule == "refuses")


class AvailabilityDeclaration(IdMixin, Base):
    """Every declaration or confirmation of a unit's figures: who, when, before and after."""

    __tablename__ = "availability_declarations"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    declared_at: Mapped[datetime]
    declared_by: Mapped[str] = mapped_column(String(80))
    before_open_places: Mapped[int | None] = mapped_column(Integer)
    after_open_places: Mapped[int] = mapped_column(Integer)
    before_status: Mapped[str | None] = mapped_column(String(8))
    after_status: Mapped[str] = mapped_column(String(8))
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    confirmation: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_availability_declarations_unit_at", "unit_id", "declared_at"),)


class PersonMixin:
    """The minimum person data (DOMAIN.md): a pseudonymous reference, never a name or NHS number."""

    person_ref: Mapped[str] = mapped_column(String(40))
    person_age: Mapped[int] = mapped_column(Integer)
    person_sex: Mapped[str] = mapped_column(String(8))
    person_ethnicity: Mapped[str | None] = mapped_column(String(2))
    home_area: Mapped[str] = mapped_column(ForeignKey("areas.code"))


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


class Conveyance(Base):
    """How a person on a hold is taken to the unit: mode, the five times and the changing ETA."""

    __tablename__ = "conveyances"
    hold_id: Mapped[str] = mapped_column(ForeignKey("holds.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(20))
    police_vehicle_reason: Mapped[str | None] = mapped_column(String(280))
    requested_at: Mapped[datetime | None]
    dispatched_at: Mapped[datetime | None]
    at_scene_at: Mapped[datetime | None]
    departed_at: Mapped[datetime | None]
    arrived_at: Mapped[datetime | None]
    eta: Mapped[datetime | None]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(80))


class UnmetDemand(IdMixin, Base):
    """A hold refused for lack of a place, or a search that found nothing: no person data."""

    __tablename__ = "unmet_demand"
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(12))  # 'search' | 'hold'
    kind: Mapped[str | None] = mapped_column(String(24))
    home_area: Mapped[str | None] = mapped_column(String(9))
    unit_id: Mapped[str | None] = mapped_column(String(36))
    __table_args__ = (Index("ix_unmet_demand_area_at", "home_area", "at"),)


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
    police_vehicle_reason: Mapped[str | None] = mapped_column(String(280))
    ambulance_requested_at: Mapped[datetime | None]
    ambulance_at_scene_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]

    __table_args__ = (
        check_in("place_type", PlaceType),
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
