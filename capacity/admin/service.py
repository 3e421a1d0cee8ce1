"""Administration: the users, providers, units and areas a region keeps (API.md "Administration").

Every change is one transaction, audited with what it was before and after. Nothing is deleted:
a unit or area is retired (`active` false) and keeps its history and reports; a user is deactivated.
A user whose role, scope or activity changes, or who sets a new password, has every token issued to
them revoked at once (their sockets close within seconds, capacity.auth.revocation).

A user is made without a password: they set their own through a one-time link, valid 24 hours and
spent by its first use. Only the link's SHA-256 is kept, and the link carries its token after `#`,
which browsers never send to a server, so it appears in no access log.

Each change to a provider, area or unit is one function on a transaction its caller owns (`add_area`,
`change_unit`, ...): the API runs one per request, the reference import (capacity.imports.reference) every
record of a file in one, so both apply the same checks.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec
from msgspec import UNSET
from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from capacity.admin.schemas import (
    AreaIn,
    AreaPatch,
    ProviderIn,
    ProviderPatch,
    UnitIn,
    UnitPatch,
    UserIn,
    UserPatch,
)
from capacity.auth.models import PasswordToken, User, UserArea
from capacity.auth.passwords import hash_password, password_problem, verify_password
from capacity.auth.revocation import Revocations
from capacity.auth.security import Actor
from capacity.booking.units.availability import unit_figures
from capacity.booking.units.models import Area, Provider, Unit, UnitAreaRule, UnitLocalArea
from capacity.booking.units.service import availability_event
from capacity.codes import ROLE_SCOPE, ROLES_NEEDING_AREAS
from capacity.db.base import new_id
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Gone, Invalid, NotFound

Row = TypeVar("Row")
T = TypeVar("T")

# The password hash of a user who has not set one yet: no password verifies against it.
NO_PASSWORD = "!"


# A unit's attribute for a field of the API's unit bodies, where the two names differ.
UNIT_ATTRIBUTE = {"refused_areas": "refuses_areas"}


@dataclass(frozen=True)
class Audited:
    """A kind of object the administration keeps, as the audit log names its changes: `admin.<kind>.create`
    with what it is after, `admin.<kind>.update` with what it was before and after. An entry shows the
    object's key and every attribute a PATCH may change."""

    kind: str
    keys: tuple[str, ...]
    id_attribute: str = "id"  # an area is named by its code

    def snapshot(self, row: Any) -> dict:
        """What an entry shows of the row now (an instant as ISO 8601 text)."""
        return {k: (v.isoformat() if isinstance(v := getattr(row, k), datetime) else v) for k in self.keys}

    def created(self, uow: UnitOfWork, actor: Actor, row: Any) -> None:
        self._audit(uow, actor, row, "create", None)

    def updated(self, uow: UnitOfWork, actor: Actor, row: Any, before: dict) -> None:
        self._audit(uow, actor, row, "update", before)

    def _audit(self, uow: UnitOfWork, actor: Actor, row: Any, action: str, before: dict | None) -> None:
        uow.audit(
            actor,
            f"admin.{self.kind}.{action}",
            self.kind,
            getattr(row, self.id_attribute),
            before=before,
            after=self.snapshot(row),
        )


USERS = Audited("user", ("username", *UserPatch.__struct_fields__))
PROVIDERS = Audited("provider", ProviderPatch.__struct_fields__)
AREAS = Audited("area", ("code", *AreaPatch.__struct_fields__), id_attribute="code")
UNITS = Audited("unit", tuple(UNIT_ATTRIBUTE.get(f, f) for f in UnitPatch.__struct_fields__))


def _found(row: Row | None, missing: str) -> Row:
    """The row a request names, or 404 saying what is missing."""
    if row is None:
        raise NotFound(missing)
    return row


async def _update(
    db: Database, model: type[Row], key: str, missing: str, change: Callable[[UnitOfWork, Row], Awaitable[T]]
) -> T:
    """Change the row of `model` with this key in one transaction (404 `missing` when there is none)."""

    async def work(uow: UnitOfWork) -> T:
        return await change(uow, _found(await uow.session.get(model, key), missing))

    return await db.write(work)


async def _rows(db: Database, stmt: Select[Row]) -> list[Row]:
    async with db.read() as reading:
        return list((await reading.session.scalars(stmt)).all())


def _search(stmt: Select[Row], q: str | None, *columns: Any) -> Select[Row]:
    """The rows with `q` in any of these columns, in any case (all of them when there is no `q`)."""
    if not q:
        return stmt
    like = f"%{q.lower()}%"
    return stmt.where(or_(*(func.lower(column).like(like) for column in columns)))


def _changes(patch: msgspec.Struct) -> dict[str, Any]:
    """The fields a PATCH body names (UNSET: left out, kept as it is)."""
    return {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not UNSET}


async def _ensure_free(session: AsyncSession, model: Any, field: str, value: object, own_id: str | None) -> None:
    """A value that is unique to one row (a username, an ODS code) is not taken by another (409)."""
    if value is None:
        return
    stmt = select(model.id).where(getattr(model, field) == value)
    if own_id is not None:
        stmt = stmt.where(model.id != own_id)
    if await session.scalar(stmt) is not None:
        raise Conflict(f"another {model.__tablename__[:-1]} already has this {field}", field=field)


# --- users ------------------------------------------------------------------------------------------


async def _known_areas(session: AsyncSession, codes: list[str], field: str) -> list[str]:
    wanted = sorted(set(codes))
    if not wanted:
        return []
    found = set((await session.scalars(select(Area.code).where(Area.code.in_(wanted), Area.active))).all())
    if missing := [c for c in wanted if c not in found]:
        raise Invalid(f"no active area with code {', '.join(missing)}", field=field)
    return wanted


async def _check_access(session: AsyncSession, role: str, provider_id: str | None, areas: list[str]) -> None:
    """A bed manager belongs to one provider; AMHPs, conveyance and commissioners work for areas
    (`codes.ROLE_SCOPE`)."""
    scope = ROLE_SCOPE[role]
    if scope == "provider":
        if provider_id is None:
            raise Invalid("a bed manager belongs to a provider", field="provider_id")
        if await session.get(Provider, provider_id) is None:
            raise Invalid(f"no provider with id {provider_id}", field="provider_id")
    elif provider_id is not None:
        raise Invalid("only a bed manager belongs to a provider", field="provider_id")
    if role in ROLES_NEEDING_AREAS and not areas:
        raise Invalid(f"a user with role {role} needs the areas they work for", field="areas")
    if scope != "areas" and areas:
        raise Invalid(f"a user with role {role} has no areas", field="areas")


@dataclass
class PasswordLink:
    url: str
    expires_at: datetime


async def _issue_link(uow: UnitOfWork, user: User, actor: Actor) -> PasswordLink:
    """A new one-time set-password link for `user`; any earlier unspent one is spent now."""
    now = uow.now
    await uow.session.execute(
        update(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(hours=uow.settings.password_link_hours)
    uow.session.add(
        PasswordToken(
            token_hash=_digest(token), user_id=user.id, created_at=now, created_by=actor.username, expires_at=expires_at
        )
    )
    return PasswordLink(f"{uow.settings.public_url}/set-password#token={token}", expires_at)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(db: Database, actor: Actor, body: UserIn) -> tuple[User, PasswordLink]:
    async def work(uow: UnitOfWork) -> tuple[User, PasswordLink]:
        session = uow.session
        areas = await _known_areas(session, body.areas, "areas")
        await _check_access(session, body.role, body.provider_id, areas)
        user = User(
            username=body.username,
            password_hash=NO_PASSWORD,
            role=body.role,
            provider_id=body.provider_id,
            active=True,
            created_at=uow.now,
            display_name=body.display_name,
            email=body.email.lower() if body.email else None,
            oidc_subject=body.oidc_subject,
            area_links=[UserArea(area_code=code) for code in areas],
        )
        await _ensure_free(session, User, "username", user.username, None)
        await _ensure_free(session, User, "email", user.email, None)
        await _ensure_free(session, User, "oidc_subject", user.oidc_subject, None)
        session.add(user)
        await session.flush()
        link = await _issue_link(uow, user, actor)
        USERS.created(uow, actor, user)
        return user, link

    return await db.write(work)


async def _user(session: AsyncSession, username: str) -> User:
    return _found(await session.scalar(select(User).where(User.username == username)), f"no user {username}")


async def read_user(db: Database, username: str) -> User:
    async with db.read() as reading:
        return await _user(reading.session, username)


async def list_users(db: Database, q: str | None) -> list[User]:
    stmt = select(User).order_by(User.username).limit(500)
    return await _rows(db, _search(stmt, q, User.username, User.display_name, User.email))


# A change to any of these ends the user's sessions: what they may do, or who may sign in as them.
ACCESS_KEYS = ("role", "areas", "provider_id", "active", "email", "oidc_subject")


async def update_user(db: Database, revocations: Revocations, actor: Actor, username: str, patch: UserPatch) -> User:
    """Change a user; when their role, scope or activity changed, every token they hold stops working."""
    changes = _changes(patch)

    async def work(uow: UnitOfWork) -> tuple[User, bool]:
        session = uow.session
        user = await _user(session, username)
        if user.id == actor.id and (changes.get("active") is False or changes.get("role", "admin") != "admin"):
            raise Conflict("an admin may not deactivate or demote themselves: another admin does it")
        before = USERS.snapshot(user)
        role = changes.get("role", user.role)
        provider_id = changes.get("provider_id", user.provider_id)
        areas = await _known_areas(session, changes["areas"], "areas") if "areas" in changes else user.areas
        if ROLE_SCOPE[role] != "areas" and "areas" not in changes:
            areas = []  # a change of role to one without areas drops them
        if ROLE_SCOPE[role] != "provider" and "provider_id" not in changes:
            provider_id = None
        await _check_access(session, role, provider_id, areas)
        user.role, user.provider_id = role, provider_id
        if areas != user.areas:
            user.area_links = [UserArea(area_code=code) for code in areas]
        for key in ("active", "display_name"):
            if key in changes:
                setattr(user, key, changes[key])
        # Checked before it is set: a query would flush the clash first and fail as a 500, not a 409.
        if "email" in changes:
            email = changes["email"].lower() if changes["email"] else None
            await _ensure_free(session, User, "email", email, user.id)
            user.email = email
        if "oidc_subject" in changes:
            await _ensure_free(session, User, "oidc_subject", changes["oidc_subject"], user.id)
            user.oidc_subject = changes["oidc_subject"]
        await session.flush()
        USERS.updated(uow, actor, user, before)
        return user, any(before[k] != getattr(user, k) for k in ACCESS_KEYS)

    user, access_changed = await db.write(work)
    if access_changed:
        await revocations.revoke_user(user.id)
    return user


async def reset_password(db: Database, actor: Actor, username: str) -> PasswordLink:
    """A new one-time link for a user who has forgotten their password (the old one works until then)."""

    async def work(uow: UnitOfWork) -> PasswordLink:
        user = await _user(uow.session, username)
        if not user.active:
            raise Conflict("the user is deactivated: reactivate them first")
        link = await _issue_link(uow, user, actor)
        uow.audit(actor, "admin.user.reset_password", "user", user.id)
        return link

    return await db.write(work)


async def set_password(db: Database, revocations: Revocations, token: str, password: str) -> User:
    """Spend a one-time link: set the password it was for (410 when spent, expired or unknown)."""

    async def work(uow: UnitOfWork) -> User:
        session, now = uow.session, uow.now
        spent = await session.execute(
            update(PasswordToken)
            .where(
                PasswordToken.token_hash == _digest(token),
                PasswordToken.used_at.is_(None),
                PasswordToken.expires_at > now,
            )
            .values(used_at=now)
            .returning(PasswordToken.user_id)
        )
        user_id = spent.scalar_one_or_none()
        if user_id is None:
            raise Gone("this link has been used or has expired: ask an admin for a new one")
        user = await session.get(User, user_id)
        if user is None or not user.active:
            raise Gone("this link's user is no longer active")
        if problem := password_problem(password, user_inputs=_inputs(user)):
            raise Invalid(problem, field="password")
        user.password_hash = hash_password(password)
        uow.audit(_self(user), "user.set_password", "user", user.id)
        return user

    user = await db.write(work)
    await revocations.revoke_user(user.id)
    return user


def _inputs(user: User) -> list[str]:
    return [v for v in (user.username, user.display_name, user.email) if v]


def _self(user: User) -> Actor:
    return Actor(user.id, user.username, user.role, user.provider_id, tuple(user.areas))


async def change_own_password(db: Database, revocations: Revocations, actor: Actor, current: str, new: str) -> None:
    """A user changes their own password; every token they hold, this one too, stops working."""

    async def work(uow: UnitOfWork) -> User:
        user = _found(await uow.session.get(User, actor.id), "no such user")
        if not verify_password(user.password_hash, current):
            raise Invalid("this is not your current password", field="current")
        if problem := password_problem(new, user_inputs=_inputs(user)):
            raise Invalid(problem, field="new")
        user.password_hash = hash_password(new)
        uow.audit(actor, "user.change_password", "user", user.id)
        return user

    user = await db.write(work)
    await revocations.revoke_user(user.id)


# --- providers and areas ----------------------------------------------------------------------------


async def list_providers(db: Database) -> list[Provider]:
    return await _rows(db, select(Provider).order_by(Provider.name))


async def create_provider(db: Database, actor: Actor, body: ProviderIn) -> Provider:
    return await db.write(lambda uow: add_provider(uow, actor, body))


async def add_provider(uow: UnitOfWork, actor: Actor, body: ProviderIn) -> Provider:
    """A new provider in `uow`'s transaction, audited (the API's and the reference import's one rule)."""
    provider = Provider(id=new_id(), name=body.name, sector=body.sector, ods_code=body.ods_code)
    await _unique_provider(uow.session, provider)
    uow.session.add(provider)
    await uow.session.flush()
    PROVIDERS.created(uow, actor, provider)
    return provider


async def _unique_provider(session: AsyncSession, provider: Provider) -> None:
    """A provider's name and ODS code are each its own (409 naming the one taken)."""
    for field in ("name", "ods_code"):
        await _ensure_free(session, Provider, field, getattr(provider, field), provider.id)


async def update_provider(db: Database, actor: Actor, provider_id: str, patch: ProviderPatch) -> Provider:
    changes = _changes(patch)
    missing = f"no provider with id {provider_id}"
    return await _update(db, Provider, provider_id, missing, lambda uow, p: change_provider(uow, actor, p, changes))


async def change_provider(uow: UnitOfWork, actor: Actor, provider: Provider, changes: dict[str, Any]) -> Provider:
    """Change a provider in `uow`'s transaction, audited before and after."""
    before = PROVIDERS.snapshot(provider)
    with uow.session.no_autoflush:  # the uniqueness checks run before the change is written
        for key, value in changes.items():
            setattr(provider, key, value)
        await _unique_provider(uow.session, provider)
    await uow.session.flush()
    PROVIDERS.updated(uow, actor, provider, before)
    return provider


async def list_areas(db: Database) -> list[Area]:
    return await _rows(db, select(Area).order_by(Area.code))


async def create_area(db: Database, actor: Actor, body: AreaIn) -> Area:
    return await db.write(lambda uow: add_area(uow, actor, body))


async def add_area(uow: UnitOfWork, actor: Actor, body: AreaIn) -> Area:
    """A new area in `uow`'s transaction, audited (409 if its code is taken)."""
    if await uow.session.get(Area, body.code) is not None:
        raise Conflict(f"an area with code {body.code} already exists", field="code")
    area = Area(code=body.code, name=body.name, lat=body.lat, lon=body.lon, region=body.region, active=True)
    uow.session.add(area)
    await uow.session.flush()
    AREAS.created(uow, actor, area)
    return area


async def update_area(db: Database, actor: Actor, code: str, patch: AreaPatch) -> Area:
    """Change an area; retiring it keeps its history and reports, and no new person is from it."""
    changes = _changes(patch)
    return await _update(
        db, Area, code, f"no area with code {code}", lambda uow, a: change_area(uow, actor, a, changes)
    )


async def change_area(uow: UnitOfWork, actor: Actor, area: Area, changes: dict[str, Any]) -> Area:
    """Change an area in `uow`'s transaction, audited before and after."""
    before = AREAS.snapshot(area)
    for key, value in changes.items():
        setattr(area, key, value)
    await uow.session.flush()
    AREAS.updated(uow, actor, area, before)
    return area


# --- units ------------------------------------------------------------------------------------------


async def list_units(db: Database, q: str | None) -> list[Unit]:
    async with db.read() as reading:
        stmt = _search(select(Unit).order_by(Unit.name).limit(2000), q, Unit.name, Unit.code)
        units = list((await reading.session.scalars(stmt)).all())
        await load_rules(reading.session, units)
        return units


async def load_rules(session: AsyncSession, units: list[Unit]) -> None:
    """The units' area rules (lazy="raise" on the model: loaded here, in one statement)."""
    ids = [u.id for u in units]
    rules: dict[str, list[UnitAreaRule]] = {i: [] for i in ids}
    if ids:
        for rule in (await session.scalars(select(UnitAreaRule).where(UnitAreaRule.unit_id.in_(ids)))).all():
            rules[rule.unit_id].append(rule)
    for unit in units:
        set_committed_value(unit, "area_rules", rules[unit.id])


async def read_unit(db: Database, unit_id: str) -> Unit:
    async with db.read() as reading:
        unit = _found(await reading.session.get(Unit, unit_id), f"no unit with id {unit_id}")
        await load_rules(reading.session, [unit])
        return unit


async def _apply_unit(uow: UnitOfWork, unit: Unit, values: dict[str, Any]) -> None:
    """Set a unit's attributes and area lists after checking them against the reference data."""
    session = uow.session
    with session.no_autoflush:  # nothing is written until every check has passed
        await _check_and_set_unit(session, unit, dict(values))  # a copy: the checks take the area lists out
    await session.flush()


async def _check_and_set_unit(session: AsyncSession, unit: Unit, values: dict[str, Any]) -> None:
    if "provider_id" in values and await session.get(Provider, values["provider_id"]) is None:
        raise Invalid(f"no provider with id {values['provider_id']}", field="provider_id")
    if "area_code" in values and await session.get(Area, values["area_code"]) is None:
        raise Invalid(f"no area with code {values['area_code']}", field="area_code")
    lists = {
        field: await _known_areas(session, values.pop(field), field)
        for field in ("accepts_from_areas", "refused_areas", "local_to_areas")
        if field in values
    }
    for key, value in values.items():
        setattr(unit, key, value)
    if unit.max_age is not None and unit.max_age < unit.min_age:
        raise Invalid("max_age is below min_age", field="max_age")
    accepts = lists.get("accepts_from_areas", unit.accepts_from_areas)
    refuses = lists.get("refused_areas", unit.refuses_areas)
    if both := set(accepts) & set(refuses):
        raise Invalid(f"an area cannot be both accepted and refused: {', '.join(sorted(both))}", field="refused_areas")
    if "accepts_from_areas" in lists or "refused_areas" in lists:
        unit.area_rules = [UnitAreaRule(area_code=c, rule="accepts") for c in accepts] + [
            UnitAreaRule(area_code=c, rule="refuses") for c in refuses
        ]
    if "local_to_areas" in lists:
        unit.local_areas = [UnitLocalArea(area_code=c) for c in lists["local_to_areas"]]
    await _ensure_free(session, Unit, "code", unit.code, unit.id)


async def create_unit(db: Database, actor: Actor, body: UnitIn) -> Unit:
    """A new unit, closed with no places until its bed managers declare them."""

    return await db.write(lambda uow: add_unit(uow, actor, body))


async def add_unit(uow: UnitOfWork, actor: Actor, body: UnitIn) -> Unit:
    """A new unit in `uow`'s transaction, closed with no places, checked against the reference data and
    audited (the API's and the reference import's one rule)."""
    values = msgspec.structs.asdict(body)
    unit = Unit(
        id=new_id(),
        status="closed",
        closed_reason="other",
        open_places=0,
        last_confirmed_at=uow.now,
        last_confirmed_by=actor.username,
        active=True,
        area_rules=[],
        local_areas=[],
    )
    uow.session.add(unit)
    await _apply_unit(uow, unit, values)
    UNITS.created(uow, actor, unit)
    uow.emit(availability_event(await unit_figures(uow, unit), uow.now))
    return unit


async def update_unit(db: Database, actor: Actor, unit_id: str, patch: UnitPatch) -> Unit:
    """Change a unit's attributes. Retiring it (`active` false) keeps its history and reports; it is
    refused while anyone is held or placed there."""
    changes = _changes(patch)

    async def work(uow: UnitOfWork) -> Unit:
        unit = await uow.lock_unit(unit_id)
        await load_rules(uow.session, [unit])
        return await change_unit(uow, actor, unit, changes)

    return await db.write(work)


async def change_unit(uow: UnitOfWork, actor: Actor, unit: Unit, changes: dict[str, Any]) -> Unit:
    """Change a unit in `uow`'s transaction, audited before and after; the caller has locked it and
    loaded its area rules (`load_rules`). Retiring it is refused while anyone is held or placed there."""
    before = UNITS.snapshot(unit)
    if changes.get("active") is False and unit.active:
        figures = await unit_figures(uow, unit)
        if figures.held or figures.occupied:
            raise Conflict(
                f"the unit has {figures.held} held and {figures.occupied} placed: release, decline or discharge "
                "them before retiring it",
                field="active",
            )
    await _apply_unit(uow, unit, changes)
    UNITS.updated(uow, actor, unit, before)
    uow.emit(availability_event(await unit_figures(uow, unit), uow.now))
    return unit
