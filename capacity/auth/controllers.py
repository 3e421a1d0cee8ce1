"""Logging in and finding out who you are."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from msgspec import Meta

from capacity.auth.security import Actor
from capacity.auth.service import authenticate
from capacity.clock import wall_now
from capacity.db.engine import Database
from capacity.settings import Settings


class TokenRequest(msgspec.Struct):
    username: Annotated[str, Meta(min_length=1, max_length=80)]
    password: Annotated[str, Meta(min_length=1, max_length=200)]


class TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str
    expires_at: datetime
    role: str


class Me(msgspec.Struct):
    username: str
    role: str
    provider_id: str | None
    areas: list[str]


class AuthController(Controller):
    path = "/api"
    tags = ["Auth"]

    @post("/auth/token", status_code=200, summary="Exchange a username and password for a bearer token")
    async def token(
        self,
        request: Request[Any, Any, Any],
        db: NamedDependency[Database],
        settings: NamedDependency[Settings],
        data: JSONBody[TokenRequest],
    ) -> TokenResponse:
        client = request.client.host if request.client else "unknown"
        user = await authenticate(db, request.app.state.login_throttle, data.username, data.password, client)
        lifetime = timedelta(minutes=settings.token_minutes)
        token = request.app.state.jwt_auth.create_token(
            identifier=user.id, token_expiration=lifetime, token_extras={"role": user.role}
        )
        return TokenResponse(token, "bearer", wall_now() + lifetime, user.role)

    @get("/me", summary="The caller: role, provider and areas")
    async def me(self, actor: NamedDependency[Actor]) -> Me:
        return Me(actor.username, actor.role, actor.provider_id, list(actor.areas))
