"""Administration and passwords: thin handlers, one service call each."""

from __future__ import annotations

from typing import Any, cast

import msgspec
from litestar import Controller, Request, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from capacity.admin import service
from capacity.admin.schemas import (
    AdminAreaOut,
    AdminProviderOut,
    AdminUnitOut,
    AreaIn,
    AreaPatch,
    OwnPasswordIn,
    PasswordLinkOut,
    ProviderIn,
    ProviderPatch,
    SetPasswordIn,
    UnitIn,
    UnitPatch,
    UserCreatedOut,
    UserIn,
    UserOut,
    UserPatch,
)
from capacity.auth.models import User
from capacity.auth.revocation import Revocations
from capacity.auth.security import require_roles
from capacity.booking.units.models import Area, Provider, Unit
from capacity.codes import Role, Sector
from capacity.deps import ActorDep, DbDep


def user_out(u: User) -> UserOut:
    return UserOut(
        username=u.username,
        role=cast(Role, u.role),
        areas=u.areas,
        provider_id=u.provider_id,
        active=u.active,
        display_name=u.display_name,
        email=u.email,
        oidc_subject=u.oidc_subject,
        created_at=u.created_at,
        password_set=u.password_hash != service.NO_PASSWORD,
    )


def provider_out(p: Provider) -> AdminProviderOut:
    return AdminProviderOut(id=p.id, name=p.name, sector=cast(Sector, p.sector), ods_code=p.ods_code)


def area_out(a: Area) -> AdminAreaOut:
    return AdminAreaOut(code=a.code, name=a.name, lat=a.lat, lon=a.lon, region=a.region, active=a.active)


def unit_out(u: Unit) -> AdminUnitOut:
    # Every attribute an admin may change (UnitPatch's fields, by the API's names), then its declared state.
    attributes = {name: getattr(u, service.UNIT_ATTRIBUTE.get(name, name)) for name in UnitPatch.__struct_fields__}
    attributes["daily_cost"] = float(u.daily_cost or 0)
    return msgspec.convert({**attributes, "id": u.id, "status": u.status, "open_places": u.open_places}, AdminUnitOut)


def _revocations(request: Request[Any, Any, Any]) -> Revocations:
    return cast(Revocations, request.app.state.revocations)


class AdminController(Controller):
    """What a region's admin keeps: users, providers, units and areas. Every change is audited."""

    path = "/api/admin"
    tags = ["Administration"]
    guards = [require_roles("admin")]

    @get("/users", summary="Users, searched by username, name or e-mail")
    async def list_users(self, db: DbDep, q: FromQuery[str | None] = None) -> list[UserOut]:
        return [user_out(u) for u in await service.list_users(db, q)]

    @post("/users", summary="Make a user; answers their one-time set-password link", status_code=201)
    async def create_user(self, db: DbDep, actor: ActorDep, data: JSONBody[UserIn]) -> UserCreatedOut:
        user, link = await service.create_user(db, actor, data)
        return UserCreatedOut(
            **{f: getattr(user_out(user), f) for f in UserOut.__struct_fields__},
            set_password_url=link.url,
            set_password_expires_at=link.expires_at,
        )

    @get("/users/{username:str}", summary="One user")
    async def get_user(self, db: DbDep, username: FromPath[str]) -> UserOut:
        return user_out(await service.read_user(db, username))

    @patch("/users/{username:str}", summary="Change a user's role, areas, provider, activity, name or e-mail")
    async def update_user(
        self,
        request: Request[Any, Any, Any],
        db: DbDep,
        actor: ActorDep,
        username: FromPath[str],
        data: JSONBody[UserPatch],
    ) -> UserOut:
        return user_out(await service.update_user(db, _revocations(request), actor, username, data))

    @post("/users/{username:str}/reset-password", summary="A new one-time set-password link", status_code=200)
    async def reset_password(self, db: DbDep, actor: ActorDep, username: FromPath[str]) -> PasswordLinkOut:
        link = await service.reset_password(db, actor, username)
        return PasswordLinkOut(username=username, set_password_url=link.url, expires_at=link.expires_at)

    @get("/providers", summary="Providers with their ODS codes")
    async def list_providers(self, db: DbDep) -> list[AdminProviderOut]:
        return [provider_out(p) for p in await service.list_providers(db)]

    @post("/providers", summary="Add a provider", status_code=201)
    async def create_provider(self, db: DbDep, actor: ActorDep, data: JSONBody[ProviderIn]) -> AdminProviderOut:
        return provider_out(await service.create_provider(db, actor, data))

    @patch("/providers/{provider_id:str}", summary="Change a provider")
    async def update_provider(
        self, db: DbDep, actor: ActorDep, provider_id: FromPath[str], data: JSONBody[ProviderPatch]
    ) -> AdminProviderOut:
        return provider_out(await service.update_provider(db, actor, provider_id, data))

    @get("/areas", summary="Areas, retired ones too")
    async def list_areas(self, db: DbDep) -> list[AdminAreaOut]:
        return [area_out(a) for a in await service.list_areas(db)]

    @post("/areas", summary="Add an area (ONS code)", status_code=201)
    async def create_area(self, db: DbDep, actor: ActorDep, data: JSONBody[AreaIn]) -> AdminAreaOut:
        return area_out(await service.create_area(db, actor, data))

    @patch("/areas/{code:str}", summary="Change or retire an area")
    async def update_area(
        self, db: DbDep, actor: ActorDep, code: FromPath[str], data: JSONBody[AreaPatch]
    ) -> AdminAreaOut:
        return area_out(await service.update_area(db, actor, code, data))

    @get("/units", summary="Units with every attribute, retired ones too, searched by name or code")
    async def list_units(self, db: DbDep, q: FromQuery[str | None] = None) -> list[AdminUnitOut]:
        return [unit_out(u) for u in await service.list_units(db, q)]

    @get("/units/{unit_id:str}", summary="One unit with every attribute")
    async def get_unit(self, db: DbDep, unit_id: FromPath[str]) -> AdminUnitOut:
        return unit_out(await service.read_unit(db, unit_id))

    @post("/units", summary="Add a unit (closed, no places, until its bed managers declare them)", status_code=201)
    async def create_unit(self, db: DbDep, actor: ActorDep, data: JSONBody[UnitIn]) -> AdminUnitOut:
        return unit_out(await service.create_unit(db, actor, data))

    @patch("/units/{unit_id:str}", summary="Change or retire a unit")
    async def update_unit(
        self, db: DbDep, actor: ActorDep, unit_id: FromPath[str], data: JSONBody[UnitPatch]
    ) -> AdminUnitOut:
        return unit_out(await service.update_unit(db, actor, unit_id, data))


class PasswordController(Controller):
    """Setting a password through a one-time link (no login), and changing one's own."""

    path = "/api"
    tags = ["Authentication"]

    @post(
        "/auth/set-password",
        summary="Spend a one-time link: set the password (410 when spent or expired)",
        status_code=200,
    )
    async def set_password(
        self, request: Request[Any, Any, Any], db: DbDep, data: JSONBody[SetPasswordIn]
    ) -> dict[str, str]:
        user = await service.set_password(db, _revocations(request), data.token, data.password)
        return {"username": user.username, "status": "password set: sign in with it"}

    @post("/me/password", summary="Change one's own password; every token of this user stops working", status_code=200)
    async def change_password(
        self, request: Request[Any, Any, Any], db: DbDep, actor: ActorDep, data: JSONBody[OwnPasswordIn]
    ) -> dict[str, str]:
        await service.change_own_password(db, _revocations(request), actor, data.current, data.new)
        return {"status": "password changed: sign in again"}
