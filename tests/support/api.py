"""A client of one app under test, and the check that a response is RFC 9457 problem details."""

from __future__ import annotations

from typing import Any

import httpx
from litestar import Litestar
from sqlalchemy import select

from capacity.auth.models import User
from capacity.auth.security import issue_token
from capacity.booking.units.models import Area, Provider, Unit
from capacity.clock import FixedClock
from capacity.db.engine import Database


class Api:
    """A client of one app, with tokens for the demo users and look-ups of demo objects."""

    def __init__(self, client: httpx.AsyncClient, app: Litestar, clock: FixedClock) -> None:
        self.client = client
        self.app = app
        self.clock = clock
        self.db: Database = app.state.db
        self._tokens: dict[str, str] = {}

    async def user(self, username: str) -> User:
        async with self.db.read_sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            assert user is not None, username
            return user

    async def token(self, username: str) -> str:
        if username not in self._tokens:
            user = await self.user(username)
            self._tokens[username] = issue_token(self.app.state.jwt_auth, user)
        return self._tokens[username]

    async def headers(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {await self.token(username)}"}

    async def request(self, method: str, url: str, as_: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if as_:
            headers.update(await self.headers(as_))
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def get(self, url: str, as_: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, as_, **kw)

    async def post(self, url: str, as_: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, as_, **kw)

    async def put(self, url: str, as_: str | None = None, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, as_, **kw)

    async def hold(self, unit_name: str, person: dict, purpose: str = "s136", **body: Any) -> httpx.Response:
        """The AMHP's hold on the unit whose name starts with `unit_name`, for `person`."""
        unit = await self.unit(unit_name)
        body = {"unit_id": unit.id, "purpose": purpose, "person": person, **body}
        return await self.post("/api/holds", "amhp", json=body)

    async def admit(self, unit_name: str, legal_basis: str, person: dict, **body: Any) -> httpx.Response:
        """The bed manager's direct admission of `person` to the unit whose name starts with `unit_name`."""
        unit = await self.unit(unit_name)
        body = {"unit_id": unit.id, "legal_basis": legal_basis, "person": person, **body}
        return await self.post("/api/placements", "bedmanager", json=body)

    async def unit(self, name_start: str) -> Unit:
        async with self.db.read_sessions() as session:
            unit = await session.scalar(select(Unit).where(Unit.name.startswith(name_start)))
            assert unit is not None, name_start
            return unit

    async def provider(self, name_start: str) -> Provider:
        async with self.db.read_sessions() as session:
            provider = await session.scalar(select(Provider).where(Provider.name.startswith(name_start)))
            assert provider is not None, name_start
            return provider

    async def area(self, code: str) -> Area:
        async with self.db.read_sessions() as session:
            area = await session.get(Area, code)
            assert area is not None
            return area


def assert_problem(response, status: int, field: str | None = None) -> dict:
    """The response is RFC 9457 problem details with this status (and names `field`, when given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    for key in ("type", "title", "status", "detail"):
        assert key in body, body
    assert body["status"] == status
    if field is not None:
        fields = {body.get("field")} | {e.get("field") for e in body.get("errors", [])}
        assert field in fields, body
    text_ = response.text.lower()
    assert "traceback" not in text_ and "select " not in text_
    return body
