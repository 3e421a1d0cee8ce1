"""What the alternatives API takes and returns (API.md "Beyond beds"). A PATCH names only what changes."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.admin.schemas import Age, AreaCodes, Latitude, Longitude, Name, UnitCode
from capacity.codes import AlternativeKind

Clock = Annotated[str, Meta(pattern=r"^(([01]\d|2[0-3]):[0-5]\d|24:00)$", description="HH:MM, Europe/London")]
Phone = Annotated[str, Meta(min_length=3, max_length=30, pattern=r"^[0-9+() -]+$")]
HowToRefer = Annotated[str, Meta(min_length=1, max_length=2000)]
Served = Annotated[AreaCodes, Meta(min_length=1)]


class Interval(msgspec.Struct, forbid_unknown_fields=True):
    """Open from `opens` until `closes`; closing at or before opening runs past midnight."""

    opens: Clock
    closes: Clock


Intervals = Annotated[list[Interval], Meta(max_length=6)]


class OpeningHours(msgspec.Struct, forbid_unknown_fields=True):
    """Local hours per weekday; `bank_holidays`: null keeps the weekday's, [] closes, or special hours."""

    mon: Intervals = []
    tue: Intervals = []
    wed: Intervals = []
    thu: Intervals = []
    fri: Intervals = []
    sat: Intervals = []
    sun: Intervals = []
    bank_holidays: Intervals | None = None


class AlternativeIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    kind: AlternativeKind
    areas: Served
    opening_hours: OpeningHours
    how_to_refer: HowToRefer
    code: UnitCode | None = None
    min_age: Age = 0
    max_age: Age | None = None
    phone: Phone | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None


class AlternativePatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    kind: AlternativeKind | UnsetType = UNSET
    areas: Served | UnsetType = UNSET
    opening_hours: OpeningHours | UnsetType = UNSET
    how_to_refer: HowToRefer | UnsetType = UNSET
    code: UnitCode | None | UnsetType = UNSET
    min_age: Age | UnsetType = UNSET
    max_age: Age | None | UnsetType = UNSET
    phone: Phone | None | UnsetType = UNSET
    lat: Latitude | None | UnsetType = UNSET
    lon: Longitude | None | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class AlternativeOut(msgspec.Struct, omit_defaults=True):
    id: str
    name: str
    kind: AlternativeKind
    areas: list[str]
    min_age: int
    max_age: int | None
    open_now: bool
    opening_hours: OpeningHours
    how_to_refer: str
    phone: str | None = None
    distance_km: float | None = None


class AdminAlternativeOut(msgspec.Struct):
    """An alternative with every attribute, retired ones too (the administration API)."""

    id: str
    code: str | None
    name: str
    kind: AlternativeKind
    areas: list[str]
    min_age: int
    max_age: int | None
    opening_hours: OpeningHours
    how_to_refer: str
    phone: str | None
    lat: float | None
    lon: float | None
    active: bool
    open_now: bool
