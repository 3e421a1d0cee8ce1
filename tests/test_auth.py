"""Logging in, finding out who you are, and the ways a login or a token is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from click.testing import CliRunner
from sqlalchemy import update

from capacity.app import create_app
from capacity.auth.models import User
from capacity.cli import main
from capacity.settings import Settings, SettingsError
from support.api import Api, assert_problem
from support.demo import DEMO_USERS
from support.statements import Statements

BANES, BRISTOL, WILTSHIRE, SOMERSET = "E06000022", "E06000023", "E06000054", "E06000066"
ROLE_OF = {
    "admin": "admin",
    "amhp": "amhp",
    "bedmanager": "bed_manager",
    "commissioner": "commissioner",
    "conveyance": "conveyance",
}


async def login(api: Api, username: str, password: str = "demo", client: httpx.AsyncClient | None = None):
    return await (client or api.client).post("/api/auth/token", json={"username": username, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("username", DEMO_USERS)
async def test_each_demo_user_logs_in_and_the_token_identifies_them(api: Api, username: str) -> None:
    before = datetime.now(UTC)
    response = await login(api, username)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["role"] == ROLE_OF[username]
    assert isinstance(body["access_token"], str) and body["access_token"].count(".") == 2
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.utcoffset() is not None, "expires_at must carry an offset"
    lifetime = timedelta(minutes=api.app.state.settings.token_minutes)
    assert before + lifetime - timedelta(minutes=1) <= expires_at <= datetime.now(UTC) + lifetime
    # The token is what the caller then uses: /api/me answers for this user and no other.
    me = await api.client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == username and me.json()["role"] == ROLE_OF[username]


async def test_me_describes_each_role_with_its_provider_and_areas(api: Api) -> None:
    bristol_suite = await api.unit("Bristol Place of Safety")
    areas = (await api.get("/api/areas", "admin")).json()
    south_west = sorted(a["code"] for a in areas if a["region"] == "South West")
    assert south_west == [BANES, BRISTOL, WILTSHIRE, SOMERSET]
    expected = {
        "admin": (None, []),
        "amhp": (None, [BANES, BRISTOL]),
        "bedmanager": (bristol_suite.provider_id, []),
        "commissioner": (None, [BANES]),
        "conveyance": (None, south_west),
    }
    for username, (provider_id, user_areas) in expected.items():
        response = await api.get("/api/me", username)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["username"] == username
        assert body["role"] == ROLE_OF[username]
        assert body["provider_id"] == provider_id, username
        assert sorted(body["areas"]) == user_areas, username


async def test_wrong_password_and_unknown_user_get_the_same_answer(api: Api) -> None:
    wrong = await login(api, "amhp", "not-the-password")
    unknown = await login(api, "no-such-user", "not-the-password")
    unknown_right_password = await login(api, "nobody", "demo")
    first = assert_problem(wrong, 401)
    assert assert_problem(unknown, 401) == first
    assert assert_problem(unknown_right_password, 401) == first
    assert "token" not in first and "access_token" not in wrong.text
    # Nothing in the headers tells the cases apart either.
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


async def test_an_inactive_user_cannot_log_in_or_use_an_earlier_token(api: Api) -> None:
    token = (await login(api, "amhp")).json()["access_token"]
    assert (await api.client.get("/api/me", headers=bearer(token))).status_code == 200
    off = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"active": False})
    assert off.status_code == 200, off.text
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)
    assert_problem(await login(api, "amhp"), 401)


async def test_a_request_knows_its_caller_from_the_token_without_reading_users(api: Api) -> None:
    """Issue 15: the caller is who the token says, so a request reads no user; the denylist is the one
    check, answered from memory on SQLite (from the table on PostgreSQL without Redis, where other
    machines may revoke). A change of scope still ends the token at once."""
    token = (await login(api, "amhp")).json()["access_token"]
    assert (await api.client.get("/api/me", headers=bearer(token))).status_code == 200  # warm
    statements = Statements(api)
    for _ in range(20):
        me = await api.client.get("/api/me", headers=bearer(token))
    assert me.json() == {"username": "amhp", "role": "amhp", "provider_id": None, "areas": [BANES, BRISTOL]}
    assert all("revoked_tokens" in s and "users" not in s for s in statements.sent), statements.sent
    # SQLite: none (its denylist is mirrored in memory); PostgreSQL without Redis: one look-up per request.
    assert len(statements.sent) == (0 if api.db.is_sqlite else 20)
    changed = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"areas": [BRISTOL]})
    assert changed.status_code == 200
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)  # its claims are out of date


async def test_a_token_issued_before_tokens_carried_claims_is_checked_against_the_user(api: Api) -> None:
    """A rolling upgrade: a token from an older instance names only its user and role; it still works, and
    its user is read, so a deactivation reaches it even when made straight in the database."""
    user = await api.user("amhp")
    token = api.app.state.jwt_auth.create_token(identifier=user.id, token_extras={"role": user.role})
    assert (await api.client.get("/api/me", headers=bearer(token))).json()["areas"] == [BANES, BRISTOL]
    async with api.db.write_sessions() as session, session.begin():
        await session.execute(update(User).where(User.username == "amhp").values(active=False))
    assert_problem(await api.client.get("/api/me", headers=bearer(token)), 401)


async def test_repeated_failures_lock_out_that_username_from_that_client(api: Api) -> None:
    limit = api.app.state.settings.login_max_failures
    assert limit == 5
    # Fewer failures than the limit, then the right password: it works, and the count starts again.
    for _ in range(limit - 1):
        assert_problem(await login(api, "amhp", "wrong"), 401)
    assert (await login(api, "amhp")).status_code == 200
    for _ in range(limit):
        assert_problem(await login(api, "amhp", "wrong"), 401)
    locked = await login(api, "amhp")  # the right password, but too late
    body = assert_problem(locked, 429)
    assert "access_token" not in body
    retry_after = int(locked.headers["retry-after"])
    # Rounded up, so that waiting that long is always enough.
    assert 0 < retry_after <= api.app.state.settings.login_lockout_seconds + 1
    assert_problem(await login(api, "amhp", "wrong"), 429)
    # Another user on the same client is not affected.
    assert (await login(api, "bedmanager")).status_code == 200
    # Once the wait is over, the right password works again.
    api.clock.advance(seconds=retry_after - 2)
    assert_problem(await login(api, "amhp"), 429)
    api.clock.advance(seconds=2)
    assert (await login(api, "amhp")).status_code == 200


async def test_an_unknown_username_is_throttled_like_a_real_one(api: Api) -> None:
    for _ in range(api.app.state.settings.login_max_failures):
        assert_problem(await login(api, "ghost", "wrong"), 401)
    assert_problem(await login(api, "ghost", "wrong"), 429)


def _segments(token: str) -> list[str]:
    return token.split(".")


async def test_a_tampered_token_is_refused(api: Api) -> None:
    amhp = (await login(api, "amhp")).json()["access_token"]
    admin = (await login(api, "admin")).json()["access_token"]
    # The admin's claims under the AMHP's signature: a forged promotion.
    forged = ".".join([_segments(admin)[0], _segments(admin)[1], _segments(amhp)[2]])
    last = _segments(amhp)[2]
    flipped = ".".join(_segments(amhp)[:2] + [("A" if last[0] != "A" else "B") + last[1:]])
    for bad in (forged, flipped, "not-a-token", amhp + "x"):
        assert_problem(await api.client.get("/api/me", headers=bearer(bad)), 401)
    assert (await api.client.get("/api/me", headers=bearer(amhp))).status_code == 200


async def test_an_expired_token_or_one_signed_with_another_key_is_refused(api: Api) -> None:
    user = await api.user("admin")
    now = datetime.now(UTC)
    key = api.app.state.settings.signing_key()

    def sign(exp: datetime, secret: str) -> str:
        claims = {"sub": user.id, "iat": int((now - timedelta(hours=2)).timestamp()), "exp": int(exp.timestamp())}
        return jwt.encode(claims, secret, algorithm="HS256")

    # The control: a token made the same way, but live and signed with the right key, is accepted.
    assert (await api.client.get("/api/me", headers=bearer(sign(now + timedelta(minutes=5), key)))).status_code == 200
    expired = sign(now - timedelta(minutes=1), key)
    assert_problem(await api.client.get("/api/me", headers=bearer(expired)), 401)
    # The public demo key must not open a service that runs with a real key.
    demo_key = Settings(demo=True).signing_key()
    assert demo_key != key
    other_key = sign(now + timedelta(minutes=5), demo_key)
    assert_problem(await api.client.get("/api/me", headers=bearer(other_key)), 401)


def test_the_app_refuses_to_start_without_a_secret_key_outside_demo(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(SettingsError, match="CAPACITY_SECRET_KEY"):
        create_app(Settings(database_url=url, secret_key=None, demo=False))
    with pytest.raises(SettingsError, match="CAPACITY_SECRET_KEY"):
        create_app(Settings(database_url=url, secret_key="", demo=False))
    # With a key, or in demo mode, it starts.
    assert create_app(Settings(database_url=url, secret_key="k" * 40)) is not None
    assert create_app(Settings(database_url=url, demo=True)) is not None


def test_single_sign_on_is_set_up_whole_or_not_at_all() -> None:
    sso = {"CAPACITY_OIDC_ISSUER": "https://login.example.nhs.uk/realms/staff", "CAPACITY_OIDC_CLIENT_ID": "capacity"}
    with pytest.raises(SettingsError, match="CAPACITY_OIDC_CLIENT_SECRET must be set"):
        Settings.from_env(sso)
    with pytest.raises(SettingsError, match="CAPACITY_OIDC_ISSUER must be an https:// URL"):
        Settings.from_env(
            {**sso, "CAPACITY_OIDC_ISSUER": "http://login.example.nhs.uk", "CAPACITY_OIDC_CLIENT_SECRET": "s"}
        )
    settings = Settings.from_env(
        {**sso, "CAPACITY_OIDC_CLIENT_SECRET": "very-secret-value", "CAPACITY_PUBLIC_URL": "https://cap.nhs.uk/"}
    )
    assert (settings.oidc_issuer, settings.oidc_redirect_uri) == (
        sso["CAPACITY_OIDC_ISSUER"],
        "https://cap.nhs.uk/login/oidc/callback",
    )
    assert "very-secret-value" not in repr(settings)  # never printed in a log or a traceback
    assert Settings.from_env({}).oidc_issuer is None  # off unless set


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> list:
    """Records what `capacity serve` would have served instead of serving it."""
    import uvicorn

    calls: list = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append((app, kw)))
    return calls


def test_capacity_serve_without_a_secret_key_exits_non_zero(tmp_path: Path, served: list) -> None:
    db_file = tmp_path / "serve.db"
    env = {"CAPACITY_SECRET_KEY": None, "CAPACITY_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}"}
    result = CliRunner().invoke(main, ["serve"], env=env)
    assert result.exit_code != 0
    assert "CAPACITY_SECRET_KEY" in result.output
    assert served == []
    assert not db_file.exists(), "it should refuse before touching the database"


def test_capacity_serve_with_a_secret_key_migrates_and_serves(tmp_path: Path, served: list) -> None:
    db_file = tmp_path / "serve.db"
    env = {"CAPACITY_SECRET_KEY": "s" * 40, "CAPACITY_DATABASE_URL": f"sqlite+aiosqlite:///{db_file}"}
    result = CliRunner().invoke(main, ["serve", "--port", "8123"], env=env)
    assert result.exit_code == 0, result.output
    assert len(served) == 1 and served[0][1]["port"] == 8123
    assert db_file.exists()
