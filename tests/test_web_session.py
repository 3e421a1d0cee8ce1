"""The browser's session: an HttpOnly, SameSite=Strict cookie, and CSRF protection for what it sends."""

from __future__ import annotations

import pytest

from support.api import Api, assert_problem


@pytest.fixture
def settings_overrides() -> dict:
    return {"secure_cookies": False}  # the test client speaks plain http


async def login(api: Api, username: str = "amhp") -> str:
    page = await api.client.get("/")
    assert page.status_code == 200 and 'type="password"' in page.text and 'name="username"' in page.text
    csrf = api.client.cookies["capacity_csrf"]
    response = await api.client.post(
        "/login", json={"username": username, "password": "demo"}, headers={"x-csrftoken": csrf}
    )
    assert response.status_code == 200, response.text
    return response.headers["set-cookie"]


async def test_login_sets_an_httponly_strict_cookie_and_no_token_in_the_body(api: Api) -> None:
    set_cookie = (await login(api)).lower()
    assert "capacity_session=" in set_cookie and "httponly" in set_cookie and "samesite=strict" in set_cookie
    me = await api.client.get("/api/me")
    assert me.status_code == 200 and me.json()["username"] == "amhp"


async def test_login_without_the_csrf_token_is_refused(api: Api) -> None:
    await api.client.get("/")
    response = await api.client.post("/login", json={"username": "amhp", "password": "demo"})
    assert_problem(response, 403)
    assert "capacity_session" not in api.client.cookies


async def test_a_cookie_session_must_send_the_csrf_token_to_change_anything(api: Api) -> None:
    await login(api, "bedmanager")
    unit = await api.unit("Bristol Place of Safety")
    body = {"open_places": 3, "status": "open"}
    assert_problem(await api.client.put(f"/api/units/{unit.id}/availability", json=body), 403)
    assert (await api.get(f"/api/units/{unit.id}", "amhp")).json()["open_places"] == 4
    ok = await api.client.put(
        f"/api/units/{unit.id}/availability", json=body, headers={"x-csrftoken": api.client.cookies["capacity_csrf"]}
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["open_places"] == 3


async def test_logout_ends_the_session(api: Api) -> None:
    await login(api)
    out = await api.client.post("/logout", headers={"x-csrftoken": api.client.cookies["capacity_csrf"]})
    assert out.status_code == 200
    assert_problem(await api.client.get("/api/me"), 401)


async def test_api_clients_with_a_bearer_token_need_no_csrf_token(api: Api) -> None:
    unit = await api.unit("Bristol Place of Safety")
    response = await api.put(
        f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 2, "status": "open"}
    )
    assert response.status_code == 200
