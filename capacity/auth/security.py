"""Who is calling: signed tokens (Litestar JWT), the caller as an `Actor`, role guards, public paths."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTCookieAuth, Token
from sqlalchemy import bindparam, select

from capacity.auth.models import User, UserArea
from capacity.auth.revocation import Presented


@dataclass(frozen=True)
class Actor:
    """The authenticated caller, as every service sees it."""

    id: str
    username: str
    role: str
    provider_id: str | None
    areas: tuple[str, ...]

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.id, user.username, user.role, user.provider_id, tuple(user.areas))


def token_claims(user: User) -> dict[str, Any]:
    """What a token says of its user, so that a request knows its caller with no database read. Safe
    because every change to these, or to `active`, revokes the user's tokens (auth.service.revoke_user)."""
    return {"role": user.role, "name": user.username, "provider": user.provider_id, "areas": user.areas}


def issue_token(jwt_auth: CapacityJWTAuth, user: User, lifetime: timedelta | None = None) -> str:
    """A token for this user: the API's bearer token and the browser's session cookie alike."""
    return jwt_auth.create_token(identifier=user.id, token_expiration=lifetime, token_extras=token_claims(user))


def _claimed(token: Token) -> Actor | None:
    extras = token.extras
    if not {"role", "name", "provider", "areas"} <= extras.keys():
        return None
    return Actor(token.sub, extras["name"], extras["role"], extras["provider"], tuple(extras["areas"]))


# A token issued before tokens carried their claims (by an older instance during a rolling upgrade): the
# caller and their areas read in one round trip, as plain rows (no ORM objects, no session), built once.
_ACTOR = (
    select(User.id, User.username, User.role, User.provider_id, UserArea.area_code)
    .outerjoin(UserArea, UserArea.user_id == User.id)
    .where(User.id == bindparam("sub"), User.active.is_(True))
)


async def retrieve_actor(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    # The denylist, shared by every instance (capacity.auth.revocation), is the one check per request: a
    # revoked token, or any token of a user deactivated or changed since it was issued, is 401 everywhere.
    # The caller is then who the token says (token_claims), with no database read.
    state = connection.app.state
    if (await state.revocations.revoked([Presented.of(token)]))[0]:
        return None
    if (actor := _claimed(token)) is not None:
        return actor
    async with state.db.autocommit_engine.connect() as conn:
        rows = (await conn.execute(_ACTOR, {"sub": token.sub})).all()
    if not rows:
        return None
    user_id, username, role, provider_id, _ = rows[0]
    areas = tuple(sorted(r.area_code for r in rows if r.area_code is not None))
    return Actor(user_id, username, role, provider_id, areas)


# Paths served without a token. Litestar searches these regular expressions anywhere in the path, so
# each is anchored at both ends: `/login` alone would also open `/api/units/login` and `/api/holds/login`.
PUBLIC_PATHS = [
    r"^/api/auth/token$",
    r"^/api/auth/set-password$",  # the one-time link is the credential
    r"^/set-password$",
    r"^/schema(?:/.*)?$",
    r"^/health(?:/.*)?$",
    r"^/static/.*$",
    r"^/login$",
    r"^/$",
    r"^/favicon\.ico$",
]


SESSION_COOKIE = "capacity_session"


class CapacityJWTAuth(JWTCookieAuth[Actor, Token]):
    """Litestar's JWT cookie auth, every token it makes carrying a unique `jti`, so that one token can be
    revoked (capacity.auth.revocation)."""

    def create_token(
        self,
        identifier: str,
        token_expiration: timedelta | None = None,
        token_issuer: str | None = None,
        token_audience: str | None = None,
        token_unique_jwt_id: str | None = None,
        token_extras: dict | None = None,
        **kwargs: Any,
    ) -> str:
        return super().create_token(
            identifier,
            token_expiration,
            token_issuer,
            token_audience,
            token_unique_jwt_id or uuid.uuid4().hex,
            token_extras,
            **kwargs,
        )

    def decode(self, encoded: str) -> Token:
        """A token this service signed and that has not expired (litestar's NotAuthorizedException if not)."""
        return Token.decode(encoded, secret=self.token_secret, algorithm=self.algorithm)


def make_jwt_auth(signing_key: str, token_minutes: int, secure_cookie: bool) -> CapacityJWTAuth:
    """Bearer tokens for API clients; the same token in an HttpOnly, SameSite=Strict cookie for browsers."""
    return CapacityJWTAuth(
        retrieve_user_handler=retrieve_actor,
        token_secret=signing_key,
        default_token_expiration=timedelta(minutes=token_minutes),
        exclude=PUBLIC_PATHS,
        key=SESSION_COOKIE,
        samesite="strict",
        secure=secure_cookie,
    )


def require_roles(*roles: str) -> Callable[[ASGIConnection, BaseRouteHandler], None]:
    """A guard: only callers with one of these roles may use the route (403 otherwise)."""

    def guard(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        if connection.scope.get("method") == "OPTIONS":
            # Litestar answers OPTIONS itself with the allowed methods and nothing else; its auth middleware
            # lets OPTIONS through unauthenticated (CORS preflights carry no credentials), so there is no
            # caller to check here.
            return
        actor = connection.user
        if not isinstance(actor, Actor):
            raise NotAuthorizedException("authentication required")
        if actor.role not in roles:
            raise PermissionDeniedException(f"the {actor.role} role may not do this")

    guard.__name__ = f"require_{'_or_'.join(roles)}"
    return guard
