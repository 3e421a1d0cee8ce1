"""Issue 11, items 4 to 8: token revocation, shared login throttling, bounds, demo safety and logs.

On both engines (the `api` and `database_url` fixtures); what goes through Redis is tested against
the real Redis at CAPACITY_TEST_REDIS_URL (skipped without it, outside CI). Each test fails when the
control it is about is taken away.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from litestar import Litestar
from redis.asyncio import Redis
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

import capacity.auth.throttle as throttle_module
from capacity.app import create_app
from capacity.audit import AuditEntry
from capacity.auth.keys import DEMO_KEY
from capacity.auth.models import LoginFailure, RevokedToken, ServiceKey, User
from capacity.auth.passwords import hash_password
from capacity.auth.security import PUBLIC_PATHS, Actor
from capacity.auth.service import change_user_access, revoke_user
from capacity.auth.throttle import PasswordChecks
from capacity.booking.sweep import sweep
from capacity.booking.units.models import UnmetDemand
from capacity.cli import main, migrate_to_head
from capacity.clock import FixedClock
from capacity.db.engine import Database
from capacity.db.unit_of_work import UnitOfWork
from capacity.errors import ServiceBusy
from capacity.logs import configure as configure_logging
from capacity.logs import redact, with_run_id
from capacity.settings import Settings
from support.api import Api, assert_problem
from support.demo import PG_URL, START
from support.live_server import LiveServer, free_port, serve
from support.settings import settings_for

REDIS_URL = os.environ.get("CAPACITY_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(
    not REDIS_URL and os.environ.get("CI") != "true", reason="needs CAPACITY_TEST_REDIS_URL"
)
BRISTOL = "E06000023"
SUITE = "Bristol Place of Safety"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, username: str, password: str = "demo", **kw: Any) -> httpx.Response:
    return await client.post("/api/auth/token", json={"username": username, "password": password}, **kw)


async def token_of(client: httpx.AsyncClient, username: str) -> str:
    response = await login(client, username)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@asynccontextmanager
async def client_of(app: Litestar, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` connecting from `address` (the peer the app sees)."""
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as client:
        yield client


@asynccontextmanager
async def instance(database_url: str, **overrides: Any) -> AsyncIterator[Litestar]:
    """Another app on the same database (and, with `redis_url`, the same Redis): another instance."""
    app = create_app(settings_for(database_url, **overrides), clock=FixedClock(START))
    try:
        async with app.state.channels:
            yield app
    finally:
        if app.state.redis is not None:
            await app.state.redis.aclose()
        app.state.password_checks.close()
        await app.state.db.dispose()


async def flush_redis_keys(pattern: str) -> None:
    assert REDIS_URL
    redis = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in redis.scan_iter(match=pattern)]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


async def rows(db: Database, model: Any) -> int:
    async with db.read_sessions() as session:
        return await session.scalar(select(func.count()).select_from(model)) or 0


async def next_second() -> None:
    """Tokens carry `iat` in whole seconds, and a user's revocation refuses their tokens of that second."""
    await asyncio.sleep(1.05 - (time.time() % 1))


# --------------------------------------------------------------------------------------------------
# 4. Tokens: revoke, logout, users whose access changes; open WebSockets closed 4401
# --------------------------------------------------------------------------------------------------


async def test_a_revoked_token_is_401_and_the_users_other_tokens_still_work(api: Api) -> None:
    token, other = await token_of(api.client, "amhp"), await token_of(api.client, "amhp")
    assert (await api.client.get("/api/me", headers=bearer(token))).status_code == 200
    revoked = await api.client.post("/api/auth/revoke", headers=bearer(token))
    assert revoked.status_code == 204, revoked.text
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)
    assert_problem(await api.client.post("/api/auth/revoke", headers=bearer(token)), 401)
    assert (await api.client.get("/api/me", headers=bearer(other))).status_code == 200
    # Without Redis the denylist is the database's, kept until the token would have expired.
    assert await rows(api.db, RevokedToken) == 1


async def test_revoke_needs_a_token(api: Api) -> None:
    assert_problem(await api.client.post("/api/auth/revoke"), 401)


PLAIN_HTTP = pytest.mark.parametrize("settings_overrides", [{"secure_cookies": False}])  # for the test client


@PLAIN_HTTP
async def test_logout_revokes_the_cookies_token_not_only_the_cookie(api: Api) -> None:
    await api.client.get("/")
    csrf = {"x-csrftoken": api.client.cookies["capacity_csrf"]}
    response = await api.client.post("/login", json={"username": "amhp", "password": "demo"}, headers=csrf)
    assert response.status_code == 200, response.text
    token = api.client.cookies["capacity_session"].strip('"').split(" ")[-1]
    async with client_of(api.app) as other:  # a copy of the token, used elsewhere
        assert (await other.get("/api/me", headers=bearer(token))).status_code == 200
        csrf = {"x-csrftoken": api.client.cookies["capacity_csrf"]}
        out = await api.client.post("/logout", headers=csrf)
        assert out.status_code == 200, out.text
        assert_problem(await other.get("/api/me", headers=bearer(token)), 401)


async def test_a_revocation_on_one_instance_holds_on_another(api: Api, database_url: str) -> None:
    token = await token_of(api.client, "amhp")
    async with instance(database_url) as other, client_of(other) as client:
        assert (await client.get("/api/me", headers=bearer(token))).status_code == 200
        assert (await api.client.post("/api/auth/revoke", headers=bearer(token))).status_code == 204
        assert_problem(await client.get("/api/me", headers=bearer(token)), 401)


@needs_redis
async def test_with_redis_the_denylist_is_in_redis_and_shared(database_url: str) -> None:
    async with instance(database_url, redis_url=REDIS_URL) as one, instance(database_url, redis_url=REDIS_URL) as two:
        async with client_of(one) as a, client_of(two) as b:
            token = await token_of(a, "amhp")
            assert (await b.get("/api/me", headers=bearer(token))).status_code == 200
            assert (await a.post("/api/auth/revoke", headers=bearer(token))).status_code == 204
            assert_problem(await b.get("/api/me", headers=bearer(token)), 401)
            assert_problem(await a.get("/api/me", headers=bearer(token)), 401)
        assert await rows(one.state.db, RevokedToken) == 1, "the database keeps the record as well"
        redis = one.state.redis
        keys = [key async for key in redis.scan_iter(match="capacity:*:revoked:token:*")]
        assert keys
        for key in keys:  # kept until the token would have expired, no longer
            assert 0 < await redis.ttl(key) <= one.state.settings.token_minutes * 60


@needs_redis
async def test_a_token_revoked_while_redis_is_away_stays_revoked_when_it_returns(database_url: str) -> None:
    async with instance(database_url, redis_url=REDIS_URL) as app, client_of(app) as client:
        token, other = await token_of(client, "amhp"), await token_of(client, "amhp")
        assert (await client.get("/api/me", headers=bearer(token))).status_code == 200  # Redis in use
        working = app.state.redis
        away = Redis.from_url(f"redis://127.0.0.1:{free_port()}/4")  # nothing listens there
        app.state.revocations.store.redis = app.state.login_throttle.failures.redis = away
        try:
            # Without Redis, logins, checks and revocations go on through the database.
            assert (await client.post("/api/auth/revoke", headers=bearer(token))).status_code == 204
            assert_problem(await client.get("/api/me", headers=bearer(token)), 401)
            assert (await client.get("/api/me", headers=bearer(other))).status_code == 200
            assert_problem(await login(client, "amhp", "wrong"), 401)
            assert await rows(app.state.db, LoginFailure) == 2
            assert (await login(client, "amhp")).status_code == 200
        finally:
            await away.aclose()
            app.state.revocations.store.redis = app.state.login_throttle.failures.redis = working
        # Redis is back, without the entry: it is copied in from the database before Redis is trusted.
        assert_problem(await client.get("/api/me", headers=bearer(token)), 401)
        assert (await client.get("/api/me", headers=bearer(other))).status_code == 200


async def test_revoke_user_refuses_every_token_that_user_had(api: Api) -> None:
    first, second = await token_of(api.client, "amhp"), await token_of(api.client, "amhp")
    bystander = await token_of(api.client, "bedmanager")
    user = await api.user("amhp")
    await revoke_user(api.app.state.revocations, user.id)
    for token in (first, second):
        assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)
    assert (await api.client.get("/api/me", headers=bearer(bystander))).status_code == 200
    await next_second()
    fresh = await token_of(api.client, "amhp")  # logging in again gives a token that works
    assert (await api.client.get("/api/me", headers=bearer(fresh))).status_code == 200


async def test_a_change_of_role_or_areas_or_deactivation_revokes_the_users_tokens(api: Api) -> None:
    admin = (await api.get("/api/me", "admin")).json()
    assert admin["role"] == "admin"
    revocations = api.app.state.revocations
    actor = Actor(id=(await api.user("admin")).id, username="admin", role="admin", provider_id=None, areas=())
    token = await token_of(api.client, "amhp")
    # No change: the token keeps working.
    await change_user_access(api.db, revocations, actor, "amhp", role="amhp")
    assert (await api.client.get("/api/me", headers=bearer(token))).status_code == 200
    # Without the revocation, REST would simply see the new areas; the old token is refused instead.
    await change_user_access(api.db, revocations, actor, "amhp", areas=[BRISTOL])
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)
    await next_second()
    token = await token_of(api.client, "amhp")
    assert (await api.client.get("/api/me", headers=bearer(token))).json()["areas"] == [BRISTOL]
    await change_user_access(api.db, revocations, actor, "amhp", active=False)
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)
    async with api.db.read_sessions() as session:
        actions = (await session.scalars(select(AuditEntry.action).where(AuditEntry.action == "user.access"))).all()
    assert len(actions) == 2, "each change audited (the one that changed nothing is not)"


@asynccontextmanager
async def running(database_url: str, log_level: str = "warning", **overrides: Any) -> AsyncIterator[LiveServer]:
    app = create_app(settings_for(database_url, **overrides), clock=FixedClock(START))
    async with serve(app, log_level=log_level) as live:
        yield live


async def test_an_open_websocket_is_closed_4401_within_5_seconds_of_its_tokens_revocation(database_url: str) -> None:
    async with running(database_url) as live:
        token = await token_of(live.client, "amhp")
        other = await token_of(live.client, "amhp")
        revoked_socket = await live.connect(token=token)
        kept_socket = await live.connect(token=other)
        assert (await live.client.post("/api/auth/revoke", headers=bearer(token))).status_code == 204
        started = time.monotonic()
        assert await revoked_socket.close_code(within=5) == 4401
        assert time.monotonic() - started <= 5
        await kept_socket.send({"action": "ping"})
        assert (await kept_socket.next())["type"] == "pong", "the other token's socket stays open"
        # A revoked token cannot open a socket either.
        again = await live.connect(token=token, hello=False)
        assert await again.close_code() == 4401


async def test_websockets_close_4401_when_the_user_is_revoked_or_changed_or_the_token_expires(
    database_url: str,
) -> None:
    async with running(database_url) as live:
        user_revoked = await live.connect("amhp")
        short = live.app.state.jwt_auth.create_token(
            identifier=await _user_id(live, "bedmanager"), token_expiration=timedelta(seconds=2)
        )
        expiring = await live.connect(token=short)
        changed = await live.connect(token=await token_of(live.client, "conveyance"))
        await revoke_user(live.app.state.revocations, await _user_id(live, "amhp"))
        actor = await _actor(live, "admin")
        await change_user_access(live.db, live.app.state.revocations, actor, "conveyance", areas=[BRISTOL])
        started = time.monotonic()
        codes = await asyncio.gather(*(c.close_code(within=7) for c in (user_revoked, expiring, changed)))
        assert codes == [4401, 4401, 4401]
        # The expiring token lived 2 s: every socket was closed within 5 s of its reason.
        assert time.monotonic() - started <= 5 + 2


async def _user_id(live: LiveServer, username: str) -> str:
    async with live.db.read_sessions() as session:
        user = await session.scalar(select(User).where(User.username == username))
    assert user is not None
    return user.id


async def _actor(live: LiveServer, username: str) -> Actor:
    return Actor(id=await _user_id(live, username), username=username, role=username, provider_id=None, areas=())


async def test_a_socket_whose_user_changes_role_is_closed_even_without_a_denylist_entry(database_url: str) -> None:
    """The watch compares the user as they are now with the user the socket was opened for."""
    async with running(database_url) as live:
        socket = await live.connect("amhp")

        async def work(uow: UnitOfWork) -> None:
            await uow.session.execute(text("UPDATE users SET role = 'commissioner' WHERE username = 'amhp'"))

        await live.db.write(work)
        assert await socket.close_code(within=5) == 4401


# --------------------------------------------------------------------------------------------------
# 5. Login throttling, shared and keyed by username and by address; bounded password checks
# --------------------------------------------------------------------------------------------------


async def test_failures_for_one_username_from_many_addresses_lock_that_username(api: Api) -> None:
    limit = api.app.state.settings.login_max_failures
    for n in range(limit):
        async with client_of(api.app, f"198.51.100.{n + 1}") as client:
            assert_problem(await login(client, "amhp", "wrong"), 401)
    async with client_of(api.app, "198.51.100.200") as client:
        assert_problem(await login(client, "amhp"), 429)  # the right password, from a new address
        assert (await login(client, "bedmanager")).status_code == 200  # other users are not locked


async def test_failures_from_one_address_for_many_usernames_lock_that_address(api: Api) -> None:
    limit = api.app.state.settings.login_max_failures_per_address
    async with client_of(api.app, "198.51.100.7") as client:
        for n in range(limit):
            assert_problem(await login(client, f"guess-{n}", "wrong"), 401)
        refused = assert_problem(await login(client, "amhp"), 429)
        assert "access_token" not in refused
    async with client_of(api.app, "198.51.100.8") as client:
        assert (await login(client, "amhp")).status_code == 200


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(api: Api) -> None:
    limit = api.app.state.settings.login_max_failures_per_address
    assert api.app.state.settings.trusted_proxies == ()
    for n in range(limit):  # rotating the header: the peer is still the one address counted
        headers = {"X-Forwarded-For": f"203.0.113.{n}"}
        assert_problem(await login(api.client, f"guess-{n}", "wrong", headers=headers), 401)
    assert_problem(await login(api.client, "amhp", headers={"X-Forwarded-For": "203.0.113.250"}), 429)


@pytest.mark.parametrize("settings_overrides", [{"trusted_proxies": ("127.0.0.0/8",)}])
async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(api: Api) -> None:
    limit = api.app.state.settings.login_max_failures_per_address
    # The proxy appends the peer it saw; whatever the client wrote before that is not believed.
    attacker = {"X-Forwarded-For": "192.0.2.1, 203.0.113.9"}
    for n in range(limit):
        assert_problem(await login(api.client, f"guess-{n}", "wrong", headers=attacker), 401)
    assert_problem(await login(api.client, "amhp", headers=attacker), 429)
    assert_problem(await login(api.client, "amhp", headers={"X-Forwarded-For": "192.0.2.2, 203.0.113.9"}), 429)
    # Another client behind the same proxy is not locked out.
    assert (await login(api.client, "amhp", headers={"X-Forwarded-For": "203.0.113.10"})).status_code == 200


async def test_the_throttle_is_shared_by_instances_through_the_database(api: Api, database_url: str) -> None:
    limit = api.app.state.settings.login_max_failures
    async with instance(database_url) as other, client_of(other) as client:
        for n in range(limit):
            target = api.client if n % 2 else client
            assert_problem(await login(target, "amhp", "wrong"), 401)
        assert_problem(await login(client, "amhp"), 429)
        assert_problem(await login(api.client, "amhp"), 429)
    assert await rows(api.db, LoginFailure) == 2 * limit  # one per username and one per address


@needs_redis
async def test_with_redis_the_throttle_is_in_redis_and_shared(database_url: str) -> None:
    await flush_redis_keys("capacity:*:login:*")
    try:
        async with (
            instance(database_url, redis_url=REDIS_URL) as one,
            instance(database_url, redis_url=REDIS_URL) as two,
        ):
            limit = one.state.settings.login_max_failures
            async with client_of(one, "198.51.100.30") as a, client_of(two, "198.51.100.31") as b:
                for n in range(limit):
                    assert_problem(await login(a if n % 2 else b, "amhp", "wrong"), 401)
                locked = assert_problem(await login(b, "amhp"), 429)
                assert locked["status"] == 429
                assert_problem(await login(a, "amhp"), 429)
            assert await rows(one.state.db, LoginFailure) == 0, "Redis, not the database, counts them"
    finally:
        await flush_redis_keys("capacity:*:login:*")


async def test_no_more_password_checks_run_at_once_than_allowed_and_the_queue_is_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running_now = peak = 0
    lock = threading.Lock()

    def slow_verify(password_hash: str | None, password: str) -> bool:
        nonlocal running_now, peak
        with lock:
            running_now += 1
            peak = max(peak, running_now)
        time.sleep(0.05)
        with lock:
            running_now -= 1
        return False

    monkeypatch.setattr(throttle_module, "verify_password", slow_verify)
    checks = PasswordChecks(concurrency=2, queue=6)
    try:
        results = await asyncio.gather(*(checks.verify(None, "x") for _ in range(12)), return_exceptions=True)
    finally:
        checks.close()
    assert peak == 2
    busy = [r for r in results if isinstance(r, ServiceBusy)]
    assert len(busy) == 4 and results.count(False) == 8


@pytest.mark.parametrize("settings_overrides", [{"login_concurrency": 1, "login_queue": 1}])
async def test_a_login_flood_beyond_the_queue_is_answered_503_at_once(api: Api) -> None:
    responses = await asyncio.gather(*(login(api.client, f"flood-{n}", "wrong") for n in range(8)))
    statuses = sorted(r.status_code for r in responses)
    assert 503 in statuses and 401 in statuses, statuses
    busy = next(r for r in responses if r.status_code == 503)
    assert_problem(busy, 503)
    assert busy.headers["retry-after"]


# --------------------------------------------------------------------------------------------------
# 6. Bounds: WebSocket messages and subscribe lists, nested bodies, public paths, OPTIONS
# --------------------------------------------------------------------------------------------------


async def test_a_websocket_message_over_64_kb_is_closed_1009(database_url: str) -> None:
    async with running(database_url) as live:
        client = await live.connect("amhp")
        await client.send({"action": "ping"})
        assert (await client.next())["type"] == "pong"
        await client.send({"action": "subscribe", "areas": ["x" * 60] * 1200})  # 75 KB
        assert await client.close_code() == 1009
        # Before authenticating too: the first message is bounded the same way.
        anonymous = await live.connect(hello=False)
        await anonymous.send({"token": "x" * 70_000})
        assert await anonymous.close_code() == 1009
        # Just under the limit is a message like any other (an error frame, the socket stays open).
        fine = await live.connect("amhp")
        await fine.ws.send(json.dumps({"action": "nothing", "units": []}) + " " * 60_000)
        assert (await fine.next())["type"] == "error"


async def test_subscribe_lists_are_bounded_and_a_longer_one_changes_nothing(database_url: str) -> None:
    async with running(database_url) as live:
        client = await live.connect("amhp")
        await client.send({"action": "subscribe", "areas": [f"E{n:08d}" for n in range(201)]})
        error = await client.next()
        assert error["type"] == "error" and error["data"]["status"] == 422 and error["data"]["field"] == "areas"
        assert len(json.dumps(error)) < 1000, "the refused list is not echoed back"
        await client.send({"action": "subscribe", "units": ["u" * 65]})
        assert (await client.next())["data"]["field"] == "units"
        await client.send({"action": "subscribe", "areas": [f"E{n:08d}" for n in range(200)]})
        subscribed = await client.next()
        assert subscribed["type"] == "subscribed" and len(subscribed["data"]["areas"]) == 200


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@PLAIN_HTTP
async def test_a_body_nested_deeper_than_32_levels_is_400_even_unauthenticated(api: Api) -> None:
    await api.client.get("/")
    headers = {"content-type": "application/json", "x-csrftoken": api.client.cookies["capacity_csrf"]}
    for url in ("/api/auth/token", "/login"):
        response = await api.client.post(url, content=nested(1000), headers=headers)
        assert_problem(response, 400)
        response = await api.client.post(url, content='{"username": ' + nested(33) + "}", headers=headers)
        assert_problem(response, 400)
    # Inside strings brackets do not count; 32 levels are allowed (and then refused as invalid input).
    assert_problem(await api.client.post("/api/auth/token", content=nested(32), headers=headers), 422)
    text_body = json.dumps({"username": "[" * 70, "password": "{" * 100})
    assert_problem(await api.client.post("/api/auth/token", content=text_body, headers=headers), 401)
    unit = await api.unit(SUITE)
    deep = '{"unit_id": "' + unit.id + '", "purpose": "s136", "person": ' + nested(40) + "}"
    assert_problem(await api.post("/api/holds", "amhp", content=deep, headers=headers), 400)


@pytest.mark.parametrize("path", ["/api/units/login", "/api/holds/login", "/api/units/health"])
async def test_public_paths_are_matched_exactly(api: Api, path: str) -> None:
    assert_problem(await api.client.get(path), 401)
    assert all(p.startswith("^") and p.endswith("$") for p in PUBLIC_PATHS)


async def test_the_public_paths_are_still_public(api: Api) -> None:
    for path in ("/health", "/schema/openapi.json", "/", "/static/js/login.js"):
        response = await api.client.get(path)
        assert response.status_code == 200, (path, response.status_code)


async def test_options_on_every_route_never_answers_5xx(api: Api) -> None:
    paths = set()
    for route in api.app.routes:
        paths.add(re.sub(r"\{[^}]+\}", "x", route.path))
    assert len(paths) > 20
    for path in sorted(paths):
        for headers in ({}, await api.headers("amhp")):
            response = await api.client.options(path, headers=headers)
            assert response.status_code < 500, (path, response.status_code, response.text)


# --------------------------------------------------------------------------------------------------
# 7. Demo safety
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list:
    """What `capacity serve` would have served, instead of serving it."""
    import uvicorn

    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def _serve_demo(db_file: Path, secret: str | None = None) -> Any:
    env = {"CAPACITY_SECRET_KEY": secret, "CAPACITY_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}"}
    return CliRunner().invoke(main, ["serve", "--demo"], env=env)


async def _stored_key(db_file: Path) -> str | None:
    db = Database(Settings(database_url=f"sqlite+aiosqlite:///{db_file}", secret_key="k" * 40))
    try:
        async with db.read_sessions() as session:
            key = await session.get(ServiceKey, DEMO_KEY)
            return key.value if key else None
    finally:
        await db.dispose()


def test_the_demo_signing_key_is_random_per_demo_database_and_kept_across_restarts(
    tmp_path: Path, served: list
) -> None:
    assert Settings(demo=True).signing_key() != Settings(demo=True).signing_key()
    keys = []
    for name in ("one.db", "two.db"):
        result = _serve_demo(tmp_path / name)
        assert result.exit_code == 0, result.output
        stored = asyncio.run(_stored_key(tmp_path / name))
        assert stored and len(stored) >= 40
        assert served[-1][0].state.settings.signing_key() == stored
        keys.append(stored)
    assert keys[0] != keys[1]
    again = _serve_demo(tmp_path / "one.db")  # a restart of the same demo database keeps its key
    assert again.exit_code == 0, again.output
    assert served[-1][0].state.settings.signing_key() == keys[0]


def test_serve_demo_refuses_a_database_holding_anything_but_the_demo_set(tmp_path: Path, served: list) -> None:
    real = tmp_path / "real.db"
    url = f"sqlite+aiosqlite:///{real}"
    migrate_to_head(url)

    async def add_real_user() -> None:
        db = Database(Settings(database_url=url, secret_key="k" * 40))
        try:

            async def work(uow: UnitOfWork) -> None:
                uow.session.add(User(username="jo.bloggs", password_hash="!", role="admin", created_at=START))

            await db.write(work)
        finally:
            await db.dispose()

    asyncio.run(add_real_user())
    refused = _serve_demo(real)
    assert refused.exit_code != 0
    assert "CAPACITY_SECRET_KEY" in refused.output and served == []
    # With a real key it serves (and signs with that key, not a demo one).
    allowed = _serve_demo(real, secret="r" * 48)
    assert allowed.exit_code == 0, allowed.output
    assert served[-1][0].state.settings.signing_key() == "r" * 48
    # A demo database to which a real user was added is no longer the demo set.
    demo = tmp_path / "demo.db"
    assert _serve_demo(demo).exit_code == 0
    url, real = f"sqlite+aiosqlite:///{demo}", demo
    asyncio.run(add_real_user())
    assert _serve_demo(demo).exit_code != 0


# --------------------------------------------------------------------------------------------------
# 8. Logs, the audit log's TRUNCATE, unmet demand once per user, query and 10 minutes
# --------------------------------------------------------------------------------------------------


async def test_the_log_of_a_journey_holds_no_token_password_or_person_reference(database_url: str) -> None:
    """As `capacity serve` logs (JSON, one object a line, every logger through capacity.logs), with a
    request id on every line of a request: the access line's, the service's own and its events'."""
    password, ref = "Correct-Horse-Battery-5731", "SECREF-88412"
    stream = io.StringIO()
    async with running(database_url, log_level="info") as live:
        # After uvicorn's own logging config (made when the test server started), as `serve` runs it.
        configure_logging("json", stream=stream)
        try:

            async def add_user(uow: UnitOfWork) -> None:
                uow.session.add(
                    User(username="amhp2", password_hash=hash_password(password), role="amhp", created_at=START)
                )

            await live.db.write(add_user)
            token = (await login(live.client, "amhp2", password)).json()["access_token"]
            assert (await login(live.client, "amhp2", "wrong-" + password)).status_code == 401
            amhp = await token_of(live.client, "amhp")
            search = await live.client.get("/api/units?age=34&sex=female", headers=bearer(amhp))
            assert search.status_code == 200
            unit = await live.unit(SUITE)
            body = {
                "unit_id": unit.id,
                "purpose": "s136",
                "person": {"ref": ref, "age": 34, "sex": "female", "ethnicity": "A", "home_area": BRISTOL},
            }
            given = {**bearer(amhp), "X-Request-ID": "proxy-7f3a.1"}
            hold = await live.client.post("/api/holds", json=body, headers=given)
            assert hold.status_code == 201, hold.text
            assert hold.headers["X-Request-ID"] == "proxy-7f3a.1"
            arrived = await live.client.post(f"/api/holds/{hold.json()['id']}/arrive", json={}, headers=bearer(amhp))
            assert arrived.status_code in (200, 201), arrived.text
            socket = await live.connect(token=token)
            await socket.send({"action": "ping"})
            await socket.next()
            unsafe = {**bearer(amhp), "X-Request-ID": 'x" injected ' + "y" * 80}
            await live.client.get(f"/api/units?token={token}", headers=unsafe)
            await live.client.post("/api/auth/revoke", headers=bearer(token))
            # A second hold, left to expire: the sweep's events are logged under its run's own id.
            body["person"] = {**body["person"], "ref": ref + "-2"}  # type: ignore[dict-item]
            assert (await live.client.post("/api/holds", json=body, headers=bearer(amhp))).status_code == 201
            live.clock.advance(hours=2)
            await with_run_id(sweep, "sweep")(live.db)
        finally:
            configure_logging("json")
    log_text = stream.getvalue()
    lines = [json.loads(line) for line in log_text.splitlines()]  # every line one JSON object
    assert all(isinstance(line, dict) and "request_id" in line for line in lines if line["logger"] != "uvicorn.error")

    def lines_of(request_id: str) -> list[dict]:
        return [line for line in lines if line.get("request_id") == request_id]

    # The control: the log did record the journey, the WebSocket's request line included.
    assert "/ws/events" in log_text and "/api/holds" in log_text, log_text
    for secret in (token, amhp, password, ref):
        assert secret not in log_text, secret
    assert "token=[redacted]" in log_text
    # One request's lines, by the id its caller gave: uvicorn's access line and the events it published.
    held = lines_of("proxy-7f3a.1")
    assert {line["logger"] for line in held} == {"uvicorn.access", "capacity.events"}, held
    assert any("POST /api/holds" in line["event"] for line in held)
    published = [line["events"] for line in held if line["logger"] == "capacity.events"]
    assert len(published) == 1 and "hold.created" in published[0], published
    # Each request has an id, sent back and bound to its lines; an unsafe one given is replaced.
    assert search.headers["X-Request-ID"] != hold.headers["X-Request-ID"]
    assert [line["event"] for line in lines_of(search.headers["X-Request-ID"])] == [
        line["event"] for line in lines if "GET /api/units?age=34" in line["event"]
    ]
    assert "injected" not in log_text
    unsafe_line = next(line for line in lines if "GET /api/units?token=" in line["event"])
    assert re.fullmatch(r"[0-9a-f]{32}", unsafe_line["request_id"]), unsafe_line
    accepted = next(line for line in lines if "[accepted]" in line["event"])
    assert re.fullmatch(r"[0-9a-f]{32}", accepted["request_id"]), accepted
    swept = [line for line in lines if line["request_id"].startswith("sweep-") and line["logger"] == "capacity.events"]
    assert len(swept) == 1 and "hold.expired" in swept[0]["events"], swept


def test_redaction_of_tokens_and_references_in_any_log_text() -> None:
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    assert jwt_like not in redact(f'"GET /ws/events?token={jwt_like} HTTP/1.1" 101')
    assert redact("/api/x?person_ref=ABC-1&kind=picu") == "/api/x?person_ref=[redacted]&kind=picu"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer [redacted]"


@pytest.mark.skipif(not PG_URL, reason="TRUNCATE exists on PostgreSQL only")
async def test_truncate_on_the_audit_log_is_refused(postgres_url: str) -> None:
    db = Database(settings_for(postgres_url))
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text("TRUNCATE audit_log"))
        with pytest.raises(DBAPIError, match="append-only"):
            async with db.engine.begin() as conn:
                await conn.execute(text("TRUNCATE audit_log, users CASCADE"))
    finally:
        await db.dispose()


async def test_an_empty_search_is_recorded_once_per_user_query_and_ten_minutes(api: Api) -> None:
    async def searches() -> int:
        async with api.db.read_sessions() as session:
            return await session.scalar(select(func.count()).where(UnmetDemand.source == "search")) or 0

    before = await searches()
    for _ in range(20):
        assert (await api.get("/api/units?age=5&kind=picu", "amhp")).status_code == 200
    assert await searches() == before + 1
    await api.get("/api/units?age=6&kind=picu", "amhp")  # another query
    assert await searches() == before + 2
    api.clock.advance(minutes=9)
    await api.get("/api/units?age=5&kind=picu", "amhp")
    assert await searches() == before + 2
    api.clock.advance(minutes=2)  # more than 10 minutes after the first
    await api.get("/api/units?age=5&kind=picu", "amhp")
    assert await searches() == before + 3


async def test_concurrent_identical_searches_are_recorded_once(api: Api) -> None:
    async def searches() -> int:
        async with api.db.read_sessions() as session:
            return await session.scalar(select(func.count()).where(UnmetDemand.source == "search")) or 0

    before = await searches()
    responses = await asyncio.gather(*(api.get("/api/units?age=7", "amhp") for _ in range(10)))
    assert all(r.status_code == 200 for r in responses)
    assert await searches() == before + 1
