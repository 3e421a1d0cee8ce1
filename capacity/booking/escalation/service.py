"""Escalation levels: a provider's bed managers declare its operational pressure (OPEL 1-4, with a note);
every declaration is kept and audited, sent live, and shown beside the provider's units. A declaration
older than CAPACITY_ESCALATION_STALE_MINUTES is stale, as a unit's figures are: a level nobody has
reviewed for that long is no longer a level to plan by."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.auth.security import Actor
from capacity.booking.escalation.models import EscalationDeclaration
from capacity.booking.escalation.schemas import EscalationIn
from capacity.booking.units.models import Provider
from capacity.booking.units.schemas import ProviderOut
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Forbidden, NotFound
from capacity.events import Event
from capacity.settings import Settings


@dataclass(frozen=True)
class Escalation:
    """A provider's latest declared level at one instant; all None before its first declaration."""

    level: int | None
    note: str | None
    at: datetime | None
    stale: bool


def escalation_of(provider: Any, now: datetime, settings: Settings) -> Escalation:
    """`provider`: a Provider, or a row of its escalation columns."""
    at = provider.escalation_at
    stale = at is not None and now - at > timedelta(minutes=settings.escalation_stale_minutes)
    return Escalation(provider.escalation_level, provider.escalation_note, at, stale)


async def escalations(
    session: AsyncSession, provider_ids: Collection[str], now: datetime, settings: Settings
) -> dict[str, Escalation]:
    """The escalation of each of these providers, by id, in one statement."""
    rows = await session.execute(
        select(Provider.id, Provider.escalation_level, Provider.escalation_note, Provider.escalation_at).where(
            Provider.id.in_(sorted(set(provider_ids)))
        )
    )
    return {row.id: escalation_of(row, now, settings) for row in rows}


async def read_escalations(db: Database, provider_ids: Collection[str]) -> dict[str, Escalation]:
    async with db.read() as reading:
        return await escalations(reading.session, provider_ids, reading.now, reading.settings)


def provider_out(provider: Provider, escalation: Escalation) -> ProviderOut:
    return ProviderOut(
        id=provider.id,
        name=provider.name,
        sector=provider.sector,  # type: ignore[arg-type]
        escalation_level=escalation.level,
        escalation_note=escalation.note,
        escalation_at=escalation.at,
        escalation_stale=escalation.stale,
    )


async def list_providers(db: Database) -> list[ProviderOut]:
    async with db.read() as reading:
        providers = (await reading.session.scalars(select(Provider).order_by(Provider.name))).all()
        return [provider_out(p, escalation_of(p, reading.now, reading.settings)) for p in providers]


def ensure_declares(actor: Actor, provider: Provider) -> None:
    """A bed manager declares only for their own provider; admins for any."""
    if actor.role == "admin":
        return
    if actor.role != "bed_manager" or actor.provider_id != provider.id:
        raise Forbidden("only the provider's own bed managers may declare its escalation level")


def escalation_event(provider_id: str, escalation: Escalation, at: datetime) -> Event:
    """Public, like a unit's figures: every page showing the provider's units shows its level."""
    data = {
        "provider_id": provider_id,
        "escalation_level": escalation.level,
        "escalation_note": escalation.note,
        "escalation_at": escalation.at.isoformat() if escalation.at else None,
        "escalation_stale": escalation.stale,
    }
    return Event(type="provider.escalation", at=at, data=data, provider_id=provider_id)


def declared(provider: Provider, level: int, note: str | None, at: datetime, by: str) -> EscalationDeclaration:
    """Make `level` the provider's, declared `at` by `by`; return the declaration that keeps it in the
    provider's history, with the level before."""
    declaration = EscalationDeclaration(
        provider_id=provider.id,
        declared_at=at,
        declared_by=by,
        before_level=provider.escalation_level,
        level=level,
        note=note,
    )
    provider.escalation_level, provider.escalation_note = level, note
    provider.escalation_at, provider.escalation_by = at, by
    return declaration


async def declare_escalation(db: Database, actor: Actor, provider_id: str, body: EscalationIn) -> ProviderOut:
    """Record a declaration; the same level again is a review that moves `escalation_at` on."""

    async def work(uow: UnitOfWork) -> ProviderOut:
        # Locked (on PostgreSQL) so that two declarations at once are recorded one after the other.
        provider = await uow.session.scalar(select(Provider).where(Provider.id == provider_id).with_for_update())
        if provider is None:
            raise NotFound(f"no provider with id {provider_id}")
        ensure_declares(actor, provider)
        now = uow.now
        before = {"level": provider.escalation_level, "note": provider.escalation_note}
        uow.session.add(declared(provider, body.level, body.note, now, actor.username))
        after = {"level": body.level, "note": body.note}
        uow.audit(actor, "provider.escalation", "provider", provider.id, before=before, after=after)
        escalation = escalation_of(provider, now, uow.settings)
        uow.emit(escalation_event(provider.id, escalation, now))
        return provider_out(provider, escalation)

    return await db.write(work)


async def escalation_history(db: Database, provider_id: str) -> list[EscalationDeclaration]:
    """Every declaration of the provider, newest first."""
    async with db.read_sessions() as session:
        if await session.get(Provider, provider_id) is None:
            raise NotFound(f"no provider with id {provider_id}")
        declared = await session.scalars(
            select(EscalationDeclaration)
            .where(EscalationDeclaration.provider_id == provider_id)
            .order_by(EscalationDeclaration.declared_at.desc())
        )
        return list(declared)
