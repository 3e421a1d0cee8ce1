"""Checking a username and password, for the API's tokens and the browser's session alike; revoking
tokens, and every token of a user whose access changes."""

from __future__ import annotations

from collections.abc import Iterable

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from sqlalchemy import select

from capacity.auth.models import User, UserArea
from capacity.auth.revocation import Presented, Revocations
from capacity.auth.security import Actor
from capacity.auth.throttle import LoginThrottle, PasswordChecks
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import NotFound


async def authenticate(
    db: Database, throttle: LoginThrottle, checks: PasswordChecks, username: str, password: str, client: str
) -> User:
    """The user, if the password is right; the same 401 whether or not the user exists; 429 when throttled
    (by username or by client address); 503 when too many password checks are already waiting."""
    now = db.clock.now()
    if (wait := await throttle.retry_after(username, client, now)) is not None:
        raise TooManyRequestsException("too many failed logins; try again later", headers={"Retry-After": str(wait)})
    async with db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    # argon2 is deliberately slow: verified in a bounded pool of worker threads, not on the event loop.
    ok = await checks.verify(user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        await throttle.failed(username, client, now)
        raise NotAuthorizedException("wrong username or password")
    await throttle.succeeded(username)
    return user


async def revoke_token(revocations: Revocations, token: Presented) -> None:
    """`POST /api/auth/revoke` and `POST /logout`: this token is refused from now on, on every instance."""
    await revocations.revoke_token(token)


async def revoke_user(revocations: Revocations, user_id: str) -> None:
    """Every token of this user issued until now is refused on every instance, and their WebSockets are
    closed 4401 within seconds. Call it whenever a user is deactivated or their role or scope changes."""
    await revocations.revoke_user(user_id)


async def change_user_access(
    db: Database,
    revocations: Revocations,
    actor: Actor,
    username: str,
    *,
    active: bool | None = None,
    role: str | None = None,
    provider_id: str | None = None,
    areas: Iterable[str] | None = None,
) -> User:
    """Deactivate a user or change their role, provider or areas (audited, before and after); when
    anything changed, their tokens are revoked. The service an admin API calls."""

    async def work(uow: UnitOfWork) -> tuple[User, bool]:
        user = await uow.session.scalar(select(User).where(User.username == username).with_for_update())
        if user is None:
            raise NotFound(f"no user {username}")
        before = {"active": user.active, "role": user.role, "provider_id": user.provider_id, "areas": user.areas}
        if active is not None:
            user.active = active
        if role is not None:
            user.role = role
        if provider_id is not None:
            user.provider_id = provider_id or None
        if areas is not None:
            wanted = sorted(set(areas))
            if wanted != user.areas:
                user.area_links = [UserArea(area_code=code) for code in wanted]
        after = {"active": user.active, "role": user.role, "provider_id": user.provider_id, "areas": user.areas}
        changed = before != after
        if changed:
            uow.audit(actor, "user.access", "user", user.id, before=before, after=after)
        return user, changed

    user, changed = await db.write(work)
    if changed:
        await revoke_user(revocations, user.id)
    return user
