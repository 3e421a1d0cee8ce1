"""Conveyance of a held person to the unit: mode, the five times, the changing ETA.

A reported ETA keeps the place: a live hold that would expire before the ETA plus a grace period is
extended to it (DOMAIN.md), under the unit's lock like any other change to a hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update

from capacity.auth.scope import ensure_role
from capacity.auth.security import Actor
from capacity.booking.holds.models import Conveyance, Hold
from capacity.booking.holds.schemas import ConveyanceIn, ConveyanceOut
from capacity.booking.holds.service import effective_status, hold_event, lock_hold
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import Conflict, Invalid
from capacity.events import unit_event

# The order the times must come in, when given.
SEQUENCE = ("requested_at", "dispatched_at", "at_scene_at", "departed_at", "arrived_at")
# What a conveyance keeps as it was last reported (ConveyanceIn), and shows so (ConveyanceOut).
REPORTED = ("mode", "police_vehicle_reason", "police_vehicle_note", "eta", *SEQUENCE)


def response_minutes(conveyance: Conveyance, now: datetime) -> float | None:
    """Ambulance response so far: request to at scene, or to now while still on the way."""
    if conveyance.mode != "ambulance" or conveyance.requested_at is None:
        return None
    end = conveyance.at_scene_at or now
    return round((end - conveyance.requested_at).total_seconds() / 60, 1)


def conveyance_out(conveyance: Conveyance, now: datetime, standard_minutes: int) -> ConveyanceOut:
    minutes = response_minutes(conveyance, now)
    within = None
    if minutes is not None and (conveyance.at_scene_at is not None or minutes > standard_minutes):
        within = minutes <= standard_minutes
    return ConveyanceOut(
        **{name: getattr(conveyance, name) for name in ("hold_id", *REPORTED, "updated_at", "updated_by")},
        ambulance_response_minutes=minutes,
        ambulance_standard_minutes=standard_minutes,
        within_standard=within,
    )


def _check(body: ConveyanceIn, now: datetime) -> None:
    if body.mode == "police_vehicle" and body.police_vehicle_reason is None:
        raise Invalid("a police vehicle should not be used; say why one is", field="police_vehicle_reason")
    if body.police_vehicle_reason is not None and body.mode != "police_vehicle":
        raise Invalid("a police vehicle reason is only for mode police_vehicle", field="police_vehicle_reason")
    previous: tuple[str, datetime] | None = None
    for name in SEQUENCE:
        value = getattr(body, name)
        if value is None:
            continue
        if value - now > timedelta(minutes=5):
            raise Invalid(f"{name} is in the future", field=name)
        if previous and value < previous[1]:
            raise Invalid(f"{name} is before {previous[0]}", field=name)
        previous = (name, value)


@dataclass
class ConveyanceResult:
    conveyance: Conveyance
    hold: Hold
    now: datetime  # the instant it was recorded at


async def update_conveyance(db: Database, actor: Actor, hold_id: str, body: ConveyanceIn) -> ConveyanceResult:
    async def work(uow: UnitOfWork) -> ConveyanceResult:
        hold, unit = await lock_hold(uow, actor, hold_id)
        now, session = uow.now, uow.session
        ensure_role(actor, "amhp", "conveyance", action="update conveyance")
        _check(body, now)
        if effective_status(hold, now) not in ("held", "arrived"):
            raise Conflict(f"the hold is {effective_status(hold, now)}; there is nothing to convey")
        # An ETA keeps the place, but never past the hold's original expiry plus what extensions may add
        # (API.md "Conveyance ETA"): a place is not blocked by an ETA that may never come.
        settings = db.settings
        cap = (
            hold.created_at
            + timedelta(seconds=settings.hold_seconds[unit.kind])
            + timedelta(minutes=settings.max_hold_extension_minutes)
        )
        if body.eta is not None and body.eta > cap:
            raise Invalid(
                f"the eta is after {cap.isoformat()}, the longest this hold may be kept; release it and hold "
                "again nearer the time",
                field="eta",
            )
        conveyance = await session.get(Conveyance, hold.id)
        before = None
        if conveyance is None:
            conveyance = Conveyance(hold_id=hold.id, updated_at=now, updated_by=actor.username, mode=body.mode)
            session.add(conveyance)
        else:
            before = _snapshot(conveyance)
        for name in REPORTED:
            value = getattr(body, name)
            if value is not None or name in ("police_vehicle_reason", "police_vehicle_note"):
                setattr(conveyance, name, value)
        conveyance.updated_at, conveyance.updated_by = now, actor.username
        await session.flush()

        extended_to = None
        if body.eta is not None and effective_status(hold, now) == "held":
            wanted = min(body.eta + timedelta(minutes=db.settings.eta_grace_minutes), cap)
            if wanted > hold.expires_at:
                await session.execute(
                    update(Hold)
                    .where(Hold.id == hold.id, Hold.status == "held", Hold.expires_at > now)
                    .values(expires_at=wanted)
                )
                await session.refresh(hold)
                extended_to = wanted
                uow.emit(hold_event("hold.extended", hold, unit, now, reason="conveyance eta"))
        after = {**_snapshot(conveyance), "hold_extended_to": _iso(extended_to)}
        uow.audit(actor, "conveyance.update", "conveyance", hold.id, before=before, after=after)
        out = conveyance_out(conveyance, now, db.settings.ambulance_standard_minutes)
        data = {
            "hold_id": hold.id,
            "mode": conveyance.mode,
            "eta": _iso(conveyance.eta),
            "requested_at": _iso(conveyance.requested_at),
            "at_scene_at": _iso(conveyance.at_scene_at),
            "arrived_at": _iso(conveyance.arrived_at),
            "ambulance_response_minutes": out.ambulance_response_minutes,
            "ambulance_standard_minutes": out.ambulance_standard_minutes,
            "hold_expires_at": hold.expires_at.isoformat(),
        }
        uow.emit(unit_event("conveyance.updated", unit, now, data, home_area=hold.home_area))
        return ConveyanceResult(conveyance, hold, now)

    return await db.write(work)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _snapshot(conveyance: Conveyance) -> dict:
    return {"mode": conveyance.mode, **{k: _iso(getattr(conveyance, k)) for k in ("eta", *SEQUENCE)}}
