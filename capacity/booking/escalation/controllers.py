"""Escalation levels: thin handlers that call one service each."""

from __future__ import annotations

from litestar import Controller, get, put
from litestar.params import FromPath, JSONBody

from capacity.auth.security import require_roles
from capacity.booking.escalation import service
from capacity.booking.escalation.schemas import EscalationDeclarationOut, EscalationIn
from capacity.booking.units.schemas import ProviderOut
from capacity.deps import ActorDep, DbDep


class EscalationController(Controller):
    path = "/api/providers/{provider_id:str}/escalation"
    tags = ["Units and availability"]

    @put(
        "/",
        guards=[require_roles("bed_manager", "admin")],
        summary="Declare the provider's escalation level (OPEL 1-4) with a note; the same level again is a review",
    )
    async def declare(
        self, db: DbDep, actor: ActorDep, provider_id: FromPath[str], data: JSONBody[EscalationIn]
    ) -> ProviderOut:
        return await service.declare_escalation(db, actor, provider_id, data)

    @get("/history", summary="Every escalation level the provider declared, newest first")
    async def history(self, db: DbDep, provider_id: FromPath[str]) -> list[EscalationDeclarationOut]:
        return [
            EscalationDeclarationOut(d.provider_id, d.level, d.before_level, d.note, d.declared_at, d.declared_by)
            for d in await service.escalation_history(db, provider_id)
        ]
