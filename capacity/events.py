"""Domain events: emitted through the unit of work, published only after its transaction commits (rule 5).

An event carries a small payload and the facts that decide who may hear it: the unit and provider it
concerns, the area the unit stands in and, for anything about a person, the person's home area.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import msgspec

# Events about a unit's figures or a provider's escalation level, which every role may see (they are what
# GET /api/units and GET /api/providers show).
PUBLIC_TYPES = frozenset({"unit.availability", "provider.escalation"})


class Event(msgspec.Struct, frozen=True):
    """An event, as recorded in the transaction and as it travels between instances on the channel."""

    type: str
    at: datetime
    data: dict[str, Any]
    unit_id: str | None = None
    provider_id: str | None = None
    unit_area: str | None = None
    # The home area of the person the event is about; None when it is about no one.
    home_area: str | None = None
    # Whether the unit's own record (its columns, rules, placements) may have changed with it, so that a
    # read model must re-read the unit. Not for a change of holds alone: a hold's own event carries its
    # status and expiry, which is all such a change moves. Never sent to sockets (capacity.notify.hub).
    rereads_unit: bool = True


class AtUnit(Protocol):
    id: str
    provider_id: str
    area_code: str


def unit_event(
    type_: str,
    unit: AtUnit,
    at: datetime,
    data: dict[str, Any],
    *,
    home_area: str | None = None,
    rereads_unit: bool = True,
) -> Event:
    """An event about something at `unit` (and, with `home_area`, about a person from there): the unit's
    facts are what the stream's scope decides by."""
    return Event(
        type=type_,
        at=at,
        data={"unit_id": unit.id, **data},
        unit_id=unit.id,
        provider_id=unit.provider_id,
        unit_area=unit.area_code,
        home_area=home_area,
        rereads_unit=rereads_unit,
    )


def encode(event: Event) -> bytes:
    return msgspec.json.encode(event)


_decoder = msgspec.json.Decoder(Event)


def decode(raw: bytes) -> Event:
    return _decoder.decode(raw)
