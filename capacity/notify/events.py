"""Domain events: recorded inside the write transaction, published only after it commits (rule 5)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True)
class Event:
    type: str
    at: datetime
    data: dict[str, Any]
    # Who may hear it: the unit and provider it concerns, and the home area of any person in it.
    unit_id: str | None = None
    provider_id: str | None = None
    area_codes: tuple[str, ...] = ()
    # True when `data` carries person-level fields, which commissioners never receive.
    personal: bool = False
    extra_scope: dict[str, Any] = field(default_factory=dict)


def record_event(session: AsyncSession, event: Event) -> None:
    session.info.setdefault("events", []).append(event)
