"""Logging in and finding out who you are."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from msgspec import Meta
from sqlalchemy import select

from capacity.auth.models import User
from capacity.auth.passwords import verify_password
from capacity.auth.security import Actor
from capacity.clock import Clock
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
        self, request: Request[Any, Any, Any], db: Database, clock: Clock, settings: Settings, data: TokenRequest
    ) -> TokenResponse:
        throttle = request.app.state.login_throttle
        client = request.client.host if request.client else "unknown"
        now = clock.now()
        if (wait := throttle.retry_after(data.username, client, now)) is not None:
            raise TooManyRequestsException(
                "too many failed logins; try again later", headers={"Retry-After": str(wait)}
            )
        async with db.read_sessions() as session:
            user = await session.scalar(select(User).where(User.username == data.username))
        ok = verify_password(user.password_hash if user else None, data.password)
        if not ok or user is None or not user.active:
            throttle.failed(data.username, client, now)
            # The same answer whether or not the user exists.
            raise NotAuthorizedException("wrong username or password")
        throttle.succeeded(data.username, client)
        lifetime = timedelta(minutes=settings.token_minutes)
        token = request.app.state.jwt_auth.create_token(
            identifier=user.id, token_expiration=lifetime, token_extras={"role": user.role}
        )
        return TokenResponse(token, "bearer", datetime.now(UTC) + lifetime, user.role)

    @get("/me", summary="The caller: role, provider and areas")
    async def me(self, actor: Actor) -> Me:
        return Me(actor.username, actor.role, actor.provider_id, list(actor.areas))
