"""Checking a username and password, for the API's tokens and the browser's session alike."""

from __future__ import annotations

import asyncio

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from sqlalchemy import select

from capacity.auth.models import User
from capacity.auth.passwords import verify_password
from capacity.auth.security import LoginThrottle
from capacity.db.engine import Database


async def authenticate(db: Database, throttle: LoginThrottle, username: str, password: str, client: str) -> User:
    """The user, if the password is right; the same 401 whether or not the user exists; 429 when throttled."""
    now = db.clock.now()
    if (wait := throttle.retry_after(username, client, now)) is not None:
        raise TooManyRequestsException("too many failed logins; try again later", headers={"Retry-After": str(wait)})
    async with db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    # argon2 is deliberately slow: verify in a worker thread, not on the event loop (rule 7).
    ok = await asyncio.to_thread(verify_password, user.password_hash if user else None, password)
    if not ok or user is None or not user.active:
        throttle.failed(username, client, now)
        raise NotAuthorizedException("wrong username or password")
    throttle.succeeded(username, client)
    return user
