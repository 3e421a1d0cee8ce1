"""Logging in and finding out who you are."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.security.jwt import Token
from msgspec import Meta

from capacity.auth.revocation import Presented
from capacity.auth.security import Actor, issue_token
from capacity.auth.service import authenticate, revoke_token
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
        # The peer, or the client a trusted proxy names (ProxyHeadersMiddleware, capacity.app).
        client = request.client.host if request.client else "unknown"
        state = request.app.state
        user = await authenticate(db, state.login_throttle, state.password_checks, data.username, data.password, client)
        lifetime = timedelta(minutes=settings.token_minutes)
        token = issue_token(request.app.state.jwt_auth, user, lifetime)
        return TokenResponse(token, "bearer", wall_now() + lifetime, user.role)

    @post("/auth/revoke", status_code=204, summary="Revoke the presented token, on every instance")
    async def revoke(self, request: Request[Actor, Token, Any]) -> None:
        await revoke_token(request.app.state.revocations, Presented.of(request.auth))

    @get("/me", summary="The caller: role, provider and areas")
    async def me(self, actor: NamedDependency[Actor]) -> Me:
        return Me(actor.username, actor.role, actor.provider_id, list(actor.areas))
