"""What the administration API takes and returns (API.md "Administration"). A PATCH body names only
what changes: a field left out is kept (msgspec's UNSET), `null` clears it where it may be empty."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from capacity.booking.persons import HOME_AREA
from capacity.codes import Role, Sector, UnitKind, UnitSex

Username = Annotated[str, Meta(min_length=2, max_length=80, pattern=r"^[a-z0-9][a-z0-9._-]*$")]
Email = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
OidcSubject = Annotated[
    str, Meta(min_length=1, max_length=255, description="The person's `sub` at the single sign-on provider")
]
DisplayName = Annotated[str, Meta(min_length=1, max_length=120)]
OdsCode = Annotated[str, Meta(pattern=r"^[A-Z0-9]{3,10}$", description="NHS ODS organisation code")]
UnitCode = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$")]
Id = Annotated[str, Meta(min_length=1, max_length=36)]
Latitude = Annotated[float, Meta(ge=49.0, le=61.0)]  # the United Kingdom and its waters
Longitude = Annotated[float, Meta(ge=-9.0, le=2.5)]
Age = Annotated[int, Meta(ge=0, le=120)]
Money = Annotated[float, Meta(ge=0, le=100_000)]
AreaCodes = Annotated[list[HOME_AREA], Meta(max_length=400)]


class UserIn(msgspec.Struct, forbid_unknown_fields=True):
    username: Username
    role: Role
    areas: AreaCodes = []
    provider_id: Id | None = None
    display_name: DisplayName | None = None
    email: Email | None = None
    oidc_subject: OidcSubject | None = None


class UserPatch(msgspec.Struct, forbid_unknown_fields=True):
    role: Role | UnsetType = UNSET
    areas: AreaCodes | UnsetType = UNSET
    provider_id: Id | None | UnsetType = UNSET
    active: bool | UnsetType = UNSET
    display_name: DisplayName | None | UnsetType = UNSET
    email: Email | None | UnsetType = UNSET
    oidc_subject: OidcSubject | None | UnsetType = UNSET


class UserOut(msgspec.Struct):
    username: str
    role: Role
    areas: list[str]
    provider_id: str | None
    active: bool
    display_name: str | None
    email: str | None
    oidc_subject: str | None
    created_at: datetime
    password_set: bool


class PasswordLinkOut(msgspec.Struct):
    """A one-time link to set a password: give it to the person only, by a channel only they read."""

    username: str
    set_password_url: str
    expires_at: datetime


class UserCreatedOut(UserOut, kw_only=True):
    set_password_url: str
    set_password_expires_at: datetime


class SetPasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=20, max_length=200)]
    password: Annotated[str, Meta(max_length=1000)]


class OwnPasswordIn(msgspec.Struct, forbid_unknown_fields=True):
    current: Annotated[str, Meta(max_length=1000)]
    new: Annotated[str, Meta(max_length=1000)]


class ProviderIn(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    sector: Sector
    ods_code: OdsCode | None = None


class ProviderPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    sector: Sector | UnsetType = UNSET
    ods_code: OdsCode | None | UnsetType = UNSET


class AdminProviderOut(msgspec.Struct):
    id: str
    name: str
    sector: Sector
    ods_code: str | None


class AreaIn(msgspec.Struct, forbid_unknown_fields=True):
    code: HOME_AREA
    name: Name
    lat: Latitude
    lon: Longitude
    region: Annotated[str, Meta(max_length=80)] = ""


class AreaPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    region: Annotated[str, Meta(max_length=80)] | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class AdminAreaOut(msgspec.Struct):
    code: str
    name: str
    lat: float
    lon: float
    region: str
    active: bool


class UnitIn(msgspec.Struct, forbid_unknown_fields=True):
    """A new unit. Its places are not set here: its bed managers declare them (it starts closed, 0)."""

    name: Name
    kind: UnitKind
    provider_id: Id
    area_code: HOME_AREA
    lat: Latitude
    lon: Longitude
    code: UnitCode | None = None
    postcode: Annotated[str, Meta(max_length=10)] | None = None
    sex: UnitSex = UnitSex.ANY
    min_age: Age = 18
    max_age: Age | None = None
    mother_and_baby: bool = False
    accepts_intoxicated: bool = False
    accepts_detained: bool = False
    max_stay_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    daily_cost: Money = 0
    accepts_from_areas: AreaCodes = []
    refused_areas: AreaCodes = []
    local_to_areas: AreaCodes = []


class UnitPatch(msgspec.Struct, forbid_unknown_fields=True):
    name: Name | UnsetType = UNSET
    kind: UnitKind | UnsetType = UNSET
    provider_id: Id | UnsetType = UNSET
    area_code: HOME_AREA | UnsetType = UNSET
    lat: Latitude | UnsetType = UNSET
    lon: Longitude | UnsetType = UNSET
    code: UnitCode | None | UnsetType = UNSET
    postcode: Annotated[str, Meta(max_length=10)] | None | UnsetType = UNSET
    sex: UnitSex | UnsetType = UNSET
    min_age: Age | UnsetType = UNSET
    max_age: Age | None | UnsetType = UNSET
    mother_and_baby: bool | UnsetType = UNSET
    accepts_intoxicated: bool | UnsetType = UNSET
    accepts_detained: bool | UnsetType = UNSET
    max_stay_days: Annotated[int, Meta(ge=1, le=3650)] | None | UnsetType = UNSET
    daily_cost: Money | UnsetType = UNSET
    accepts_from_areas: AreaCodes | UnsetType = UNSET
    refused_areas: AreaCodes | UnsetType = UNSET
    local_to_areas: AreaCodes | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class AdminUnitOut(msgspec.Struct):
    id: str
    code: str | None
    name: str
    kind: UnitKind
    provider_id: str
    area_code: str
    lat: float
    lon: float
    postcode: str | None
    sex: UnitSex
    min_age: int
    max_age: int | None
    mother_and_baby: bool
    accepts_intoxicated: bool
    accepts_detained: bool
    max_stay_days: int | None
    daily_cost: float
    accepts_from_areas: list[str]
    refused_areas: list[str]
    local_to_areas: list[str]
    active: bool
    status: str
    open_places: int
