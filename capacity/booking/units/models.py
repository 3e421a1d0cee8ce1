"""Areas, providers, units, their area rules and local networks, declaration history and unmet demand."""

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
    join,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from capacity.codes import AreaRule, Sector, UnitKind, UnitSex, UnitStatus, check_in
from capacity.db.base import Base, IdMixin


class Area(Base):
    __tablename__ = "areas"
    code: Mapped[str] = mapped_column(String(9), primary_key=True)  # ONS code, e.g. E06000022
    name: Mapped[str] = mapped_column(String(120))
    region: Mapped[str] = mapped_column(String(80), default="")
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)
    # A retired area (merged, abolished) keeps its history and reports; no new person is from it.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The providers with at least one unit local to this area (`GET /api/areas`: `local_provider_ids`).
    local_network_providers: Mapped[list[Provider]] = relationship(
        "Provider",
        secondary=lambda: join(UnitLocalArea, Unit, UnitLocalArea.unit_id == Unit.id),
        primaryjoin="Area.code == UnitLocalArea.area_code",
        secondaryjoin="Unit.provider_id == Provider.id",
        viewonly=True,
        lazy="selectin",
    )

    @property
    def local_provider_ids(self) -> list[str]:
        return sorted({provider.id for provider in self.local_network_providers})


class Provider(IdMixin, Base):
    __tablename__ = "providers"
    name: Mapped[str] = mapped_column(String(200), unique=True)
    sector: Mapped[str] = mapped_column(String(16))
    ods_code: Mapped[str | None] = mapped_column(String(10), unique=True)  # NHS Organisation Data Service
    # The provider's latest declared operational pressure (OPEL 1-4); its history is in escalation_declarations.
    escalation_level: Mapped[int | None] = mapped_column(Integer)
    escalation_note: Mapped[str | None] = mapped_column(Text)
    escalation_at: Mapped[datetime | None]
    escalation_by: Mapped[str | None] = mapped_column(String(80))
    __table_args__ = (
        check_in("sector", Sector),
        CheckConstraint("escalation_level is null or escalation_level between 1 and 4", name="escalation_level"),
    )


class UnitAreaRule(Base):
    """A home area a unit accepts exclusively (`accepts`) or refuses (`refuses`)."""

    __tablename__ = "unit_area_rules"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True)
    rule: Mapped[str] = mapped_column(String(8))
    __table_args__ = (check_in("rule", AreaRule),)


class UnitLocalArea(Base):
    """A home area whose usual local network of services this unit forms part of (DHSC 2016 OAP
    definition): a placement at the unit of a person from any other area is out of area. Per unit, not
    per provider: one trust's ward may be local to one area and its PICU to another."""

    __tablename__ = "unit_local_areas"
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"), primary_key=True)
    area_code: Mapped[str] = mapped_column(ForeignKey("areas.code"), primary_key=True, index=True)


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
    # False unless said: a unit must declare that it takes people detained under the Act.
    accepts_detained: Mapped[bool] = mapped_column(Boolean, default=False)
    max_stay_days: Mapped[int | None] = mapped_column(Integer)
    daily_cost: Mapped[float] = mapped_column(Numeric(10, 2, asdecimal=False), default=0)
    status: Mapped[str] = mapped_column(String(8), default="open")
    open_places: Mapped[int] = mapped_column(Integer, default=0)
    closed_reason: Mapped[str | None] = mapped_column(String(32))
    last_confirmed_at: Mapped[datetime]
    last_confirmed_by: Mapped[str] = mapped_column(String(80))
    # The unit's own code (e.g. its ODS site code): what the reference import matches a unit by.
    code: Mapped[str | None] = mapped_column(String(20), unique=True)
    # A retired unit keeps its history and reports; it is never offered, held or admitted to again.
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    area_rules: Mapped[list[UnitAreaRule]] = relationship(lazy="raise", cascade="all, delete-orphan")
    # Loaded with the unit: every placement (live, imported, demo) decides out of area from it.
    local_areas: Mapped[list[UnitLocalArea]] = relationship(lazy="selectin", cascade="all, delete-orphan")

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

    @property
    def local_to_areas(self) -> list[str]:
        """The home areas whose local network this unit forms part of, sorted."""
        return sorted(link.area_code for link in self.local_areas)


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


class UnmetDemand(IdMixin, Base):
    """A hold refused for lack of a place, or a search that found nothing: no person data."""

    __tablename__ = "unmet_demand"
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(12))  # 'search' | 'hold'
    kind: Mapped[str | None] = mapped_column(String(24))
    home_area: Mapped[str | None] = mapped_column(String(9))
    unit_id: Mapped[str | None] = mapped_column(String(36))
    __table_args__ = (Index("ix_unmet_demand_area_at", "home_area", "at"),)
