"""Who is calling: signed tokens (Litestar JWT), the caller as an `Actor`, role guards, login throttling."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTCookieAuth, Token
from sqlalchemy import bindparam, select

from capacity.auth.models import User, UserArea


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


# The caller and their areas in one round trip, as plain rows (no ORM objects, no session), built once.
_ACTOR = (
    select(User.id, User.username, User.role, User.provider_id, UserArea.area_code)
    .outerjoin(UserArea, UserArea.user_id == User.id)
    .where(User.id == bindparam("sub"), User.active.is_(True))
)


async def retrieve_actor(token: Token, connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    # The user is read on every request so that a deactivated account stops working at once: one
    # autocommit read, with no BEGIN and ROLLBACK round trips around it.
    db = connection.app.state.db
    async with db.autocommit_engine.connect() as conn:
        rows = (await conn.execute(_ACTOR, {"sub": token.sub})).all()
    if not rows:
        return None
    user_id, username, role, provider_id, _ = rows[0]
    areas = tuple(sorted(r.area_code for r in rows if r.area_code is not None))
    return Actor(user_id, username, role, provider_id, areas)


PUBLIC_PATHS = ["/api/auth/token", "/schema", "/health", "/static", "/login", "^/$", "^/favicon.ico$"]


SESSION_COOKIE = "capacity_session"


def make_jwt_auth(signing_key: str, token_minutes: int, secure_cookie: bool) -> JWTCookieAuth[Actor, Token]:
    """Bearer tokens for API clients; the same token in an HttpOnly, SameSite=Strict cookie for browsers."""
    return JWTCookieAuth[Actor, Token](
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


class LoginThrottle:
    """Refuses further logins for a while after repeated failures for one username from one client.

    Kept in process memory: with several instances each counts its own failures, so the effective limit
    is per instance; the argon2 cost already makes guessing slow.
    """

    def __init__(self, max_failures: int, window_seconds: int) -> None:
        self.max_failures = max_failures
        self.window = timedelta(seconds=window_seconds)
        self._failures: dict[tuple[str, str], deque[datetime]] = defaultdict(deque)

    def _recent(self, key: tuple[str, str], now: datetime) -> deque[datetime]:
        failures = self._failures[key]
        while failures and now - failures[0] > self.window:
            failures.popleft()
        return failures

    def retry_after(self, username: str, client: str, now: datetime) -> int | None:
        """Seconds to wait, when this username and client have failed too often; else None."""
        failures = self._recent((username.lower(), client), now)
        if len(failures) < self.max_failures:
            return None
        return max(1, int((failures[0] + self.window - now).total_seconds()) + 1)

    def failed(self, username: str, client: str, now: datetime) -> None:
        self._recent((username.lower(), client), now).append(now)

    def succeeded(self, username: str, client: str) -> None:
        self._failures.pop((username.lower(), client), None)
