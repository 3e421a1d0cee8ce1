"""s136 detentions at places that are not units: thin handlers."""

from __future__ import annotations

from typing import cast

from litestar import Controller, get, post
from litestar.params import FromPath, JSONBody

from capacity.auth.security import require_roles
from capacity.booking.detentions import service as detention_service
from capacity.booking.detentions.episodes import EXTENSION_SHOWN
from capacity.booking.detentions.models import AS_RECORDED, S136Detention
from capacity.booking.detentions.schemas import DetentionEndIn, DetentionIn, DetentionOut, ExtensionIn
from capacity.booking.persons import person_out
from capacity.codes import DetentionBasis
from capacity.deps import ActorDep, DbDep


def detention_out(d: S136Detention) -> DetentionOut:
    episode = d.episode
    return DetentionOut(
        **{name: getattr(d, name) for name in AS_RECORDED},
        id=d.id,
        detention_id=d.detention_id,
        legal_basis=cast(DetentionBasis, episode.legal_basis),
        person=person_out(d),
        **{name: getattr(episode, name) for name in ("deadline", "breached_at", *EXTENSION_SHOWN)},
        s136_clock_started_at=episode.clock_started_at,
        ended_at=d.ended_at,
        outcome=d.outcome,
        police_station_criteria=list(d.police_station_criteria or []),
    )


class DetentionController(Controller):
    """s135/s136 detentions at places of safety that are not bookable units (emergency department, police
    station, elsewhere): each a leg of an episode with one clock."""

    path = "/api/s136-detentions"
    tags = ["Section 136"]
    guards = [require_roles("amhp", "admin")]

    @post(
        "/", summary="Record an s136 detention at an emergency department, police station or elsewhere", status_code=201
    )
    async def record(self, db: DbDep, actor: ActorDep, data: JSONBody[DetentionIn]) -> DetentionOut:
        return detention_out(await detention_service.record_detention(db, actor, data))

    @get("/", summary="s136 detentions at other places, in the caller's areas")
    async def list_detentions(self, db: DbDep, actor: ActorDep) -> list[DetentionOut]:
        return [detention_out(d) for d in await detention_service.list_detentions(db, actor)]

    @get("/{detention_id:str}", summary="One s136 detention")
    async def get_detention(self, db: DbDep, actor: ActorDep, detention_id: FromPath[str]) -> DetentionOut:
        return detention_out(await detention_service.read_detention(db, actor, detention_id))

    @post("/{detention_id:str}/end", summary="End a detention with its outcome", status_code=200)
    async def end(
        self, db: DbDep, actor: ActorDep, detention_id: FromPath[str], data: JSONBody[DetentionEndIn]
    ) -> DetentionOut:
        return detention_out(await detention_service.end_detention(db, actor, detention_id, data))

    @post(
        "/{detention_id:str}/extension",
        summary="Record the one extension of the detention (s136B), wherever the person is now",
        status_code=200,
    )
    async def extension(
        self, db: DbDep, actor: ActorDep, detention_id: FromPath[str], data: JSONBody[ExtensionIn]
    ) -> DetentionOut:
        return detention_out(await detention_service.extend_detention(db, actor, detention_id, data))
