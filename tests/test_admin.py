"""Administration over the API: a region set up from nothing, users with one-time links, retiring
without losing history, every change audited. On both engines."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from capacity.app import create_app
from capacity.audit.models import AuditEntry
from capacity.cli import main
from support.api import Api, assert_problem
from support.databases import own_database
from support.demo import ENGINES, START
from support.settings import settings_for

BANES, BRISTOL = "E06000022", "E06000023"
STRONG = "lantern orchard quietly 42"


def token_of(url: str) -> str:
    assert "/set-password#token=" in url, url
    return url.split("#token=", 1)[1]


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/token", json={"username": username, "password": password})


def bearer(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (200, 201), response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.mark.parametrize("engine", ENGINES)
def test_a_region_starts_from_an_empty_database_with_a_first_admin(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`capacity admin create-user` on a database with no demo data prints a one-time link; the admin
    sets a password through it, signs in, and adds the region's first area, provider, unit and bed manager,
    who sets their own password and declares the unit's places."""
    with own_database(engine, tmp_path, "bootstrap") as url:
        monkeypatch.setenv("CAPACITY_DATABASE_URL", url)
        monkeypatch.setenv("CAPACITY_PUBLIC_URL", "https://capacity.example.nhs.uk")
        made = CliRunner().invoke(main, ["admin", "create-user", "root", "--role", "admin"])
        assert made.exit_code == 0, made.output
        link = made.output.strip().splitlines()[-1]
        assert link.startswith("https://capacity.example.nhs.uk/set-password#token=")
        refused = CliRunner().invoke(main, ["admin", "create-user", "root", "--role", "admin"])
        assert refused.exit_code != 0 and "username" in refused.output
        asyncio.run(_first_steps(url, token_of(link)))


async def _first_steps(url: str, token: str) -> None:
    app = create_app(settings_for(url))
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with app.state.channels, httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        assert (await login(client, "root", "!")).status_code == 401  # no password until one is set
        weak = await client.post("/api/auth/set-password", json={"token": token, "password": "password1234"})
        assert_problem(weak, 422, "password")
        assert (
            await client.post("/api/auth/set-password", json={"token": token, "password": STRONG})
        ).status_code == 200
        again = await client.post("/api/auth/set-password", json={"token": token, "password": STRONG + "!"})
        assert_problem(again, 410)
        await asyncio.sleep(1.05)  # revocation is by the second (a JWT's iat): sign in a second later
        admin = bearer(await login(client, "root", STRONG))
        area = {"code": BRISTOL, "name": "Bristol, City of", "lat": 51.4545, "lon": -2.5879, "region": "South West"}
        assert (await client.post("/api/admin/areas", json=area, headers=admin)).status_code == 201
        provider = await client.post(
            "/api/admin/providers", json={"name": "Avon Trust", "sector": "nhs", "ods_code": "RVN"}, headers=admin
        )
        assert provider.status_code == 201, provider.text
        unit = await client.post(
            "/api/admin/units",
            headers=admin,
            json={
                "name": "Bristol 136 suite",
                "kind": "s136_suite",
                "provider_id": provider.json()["id"],
                "area_code": BRISTOL,
                "lat": 51.46,
                "lon": -2.59,
                "min_age": 16,
                "accepts_detained": True,
                "local_to_areas": [BRISTOL],
            },
        )
        assert unit.status_code == 201, unit.text
        assert (unit.json()["status"], unit.json()["open_places"]) == ("closed", 0)
        manager = await client.post(
            "/api/admin/users",
            headers=admin,
            json={"username": "bm.avon", "role": "bed_manager", "provider_id": provider.json()["id"]},
        )
        assert manager.status_code == 201, manager.text
        assert manager.json()["password_set"] is False
        set_it = {"token": token_of(manager.json()["set_password_url"]), "password": "violet harbour ledger 7"}
        assert (await client.post("/api/auth/set-password", json=set_it)).status_code == 200
        await asyncio.sleep(1.05)
        bm = bearer(await login(client, "bm.avon", "violet harbour ledger 7"))
        declared = await client.put(
            f"/api/units/{unit.json()['id']}/availability", headers=bm, json={"open_places": 3, "status": "open"}
        )
        assert declared.status_code == 200, declared.text
        found = await client.get("/api/units?kind=s136_suite", headers=bm)
        assert [(u["name"], u["available"]) for u in found.json()] == [("Bristol 136 suite", 3)]
    await app.state.db.dispose()


async def test_only_admins_administer(api: Api) -> None:
    for role in ("amhp", "bedmanager", "commissioner", "conveyance"):
        assert_problem(await api.get("/api/admin/users", role), 403)
        assert_problem(await api.post("/api/admin/providers", role, json={"name": "X", "sector": "nhs"}), 403)


async def test_a_user_is_made_with_a_one_time_link_and_bad_input_names_the_field(api: Api) -> None:
    provider = (await api.provider("Avon")).id
    cases = [
        ({"username": "x1", "role": "bed_manager"}, 422, "provider_id"),
        ({"username": "x2", "role": "amhp"}, 422, "areas"),
        ({"username": "x3", "role": "amhp", "areas": ["E99999999"]}, 422, "areas"),
        ({"username": "x4", "role": "amhp", "areas": [BRISTOL], "provider_id": provider}, 422, "provider_id"),
        ({"username": "Not Valid", "role": "admin"}, 422, "username"),
        ({"username": "amhp", "role": "admin"}, 409, "username"),
        ({"username": "x5", "role": "wizard"}, 422, "role"),
    ]
    for body, status, field in cases:
        assert_problem(await api.post("/api/admin/users", "admin", json=body), status, field)
    made = await api.post(
        "/api/admin/users",
        "admin",
        json={"username": "a.new", "role": "amhp", "areas": [BRISTOL], "display_name": "A New", "email": "A@x.nhs.uk"},
    )
    assert made.status_code == 201, made.text
    assert (made.json()["email"], made.json()["areas"]) == ("a@x.nhs.uk", [BRISTOL])
    dup = {"username": "b.new", "role": "amhp", "areas": [BRISTOL], "email": "a@x.nhs.uk"}
    assert_problem(await api.post("/api/admin/users", "admin", json=dup), 409, "email")
    listed = (await api.get("/api/admin/users?q=a.new", "admin")).json()
    assert [u["username"] for u in listed] == ["a.new"]
    # The link is valid 24 hours, and a reset spends the earlier one.
    first = token_of(made.json()["set_password_url"])
    reset = await api.post("/api/admin/users/a.new/reset-password", "admin")
    assert reset.status_code == 200, reset.text
    assert_problem(await api.post("/api/auth/set-password", json={"token": first, "password": STRONG}), 410)
    api.clock.advance(hours=24, seconds=1)
    late = {"token": token_of(reset.json()["set_password_url"]), "password": STRONG}
    assert_problem(await api.post("/api/auth/set-password", json=late), 410)


async def test_deactivating_a_user_or_changing_their_role_revokes_their_tokens_at_once(api: Api) -> None:
    assert (await api.get("/api/holds", "amhp")).status_code == 200
    changed = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"areas": [BRISTOL]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["areas"] == [BRISTOL]
    assert (await api.get("/api/holds", "amhp")).status_code == 401  # the token from before the change
    api._tokens.pop("amhp")
    await asyncio.sleep(1.05)  # a token issued after the change (revocation is by the second of a JWT's iat)
    assert (await api.get("/api/holds", "amhp")).status_code == 200  # a new sign-in has the new scope
    renamed = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"display_name": "Alex AMHP"})
    assert renamed.status_code == 200
    assert (await api.get("/api/holds", "amhp")).status_code == 200  # a name is not access: no revocation
    off = await api.request("PATCH", "/api/admin/users/amhp", "admin", json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await api.get("/api/holds", "amhp")).status_code == 401
    assert (await login(api.client, "amhp", "demo")).status_code == 401
    self_demote = await api.request("PATCH", "/api/admin/users/admin", "admin", json={"role": "amhp"})
    assert_problem(self_demote, 409)
    async with api.db.read_sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "admin.user.update").order_by(AuditEntry.at)
            )
        ).all()
    assert [(e.before["active"], e.after["active"]) for e in entries][-1] == (True, False)
    assert entries[0].before["areas"] == [BANES, BRISTOL] and entries[0].after["areas"] == [BRISTOL]


async def test_own_password_needs_the_current_one_and_a_strong_new_one(api: Api) -> None:
    url = "/api/me/password"
    assert_problem(await api.post(url, "bedmanager", json={"current": "wrong", "new": STRONG}), 422, "current")
    for weak in ("short", "password1234", "qwertyuiop12", "bedmanager1234"):
        assert_problem(await api.post(url, "bedmanager", json={"current": "demo", "new": weak}), 422, "new")
    assert (await api.post(url, "bedmanager", json={"current": "demo", "new": STRONG})).status_code == 200
    assert (await api.get("/api/holds", "bedmanager")).status_code == 401  # signed out everywhere
    assert (await login(api.client, "bedmanager", "demo")).status_code == 401
    await asyncio.sleep(1.05)
    assert (await login(api.client, "bedmanager", STRONG)).status_code == 200


async def test_providers_areas_and_units_are_kept_with_every_attribute(api: Api) -> None:
    made = await api.post("/api/admin/providers", "admin", json={"name": "Severn Crisis CIC", "sector": "voluntary"})
    assert made.status_code == 201, made.text
    provider = made.json()["id"]
    taken = await api.post("/api/admin/providers", "admin", json={"name": "Severn Crisis CIC", "sector": "nhs"})
    assert_problem(taken, 409, "name")
    patched = await api.request("PATCH", f"/api/admin/providers/{provider}", "admin", json={"ods_code": "AB1"})
    assert patched.json()["ods_code"] == "AB1"
    assert_problem(await api.request("PATCH", f"/api/admin/providers/{provider}", "admin", json={"ods_code": "a"}), 422)
    unit = {
        "name": "Severn Safe Haven beds",
        "kind": "crisis_house",
        "provider_id": provider,
        "area_code": BRISTOL,
        "lat": 51.45,
        "lon": -2.6,
    }
    for bad, field in (
        ({"min_age": 30, "max_age": 20}, "max_age"),
        ({"local_to_areas": ["E99999999"]}, "local_to_areas"),
        ({"provider_id": "nope"}, "provider_id"),
        ({"accepts_from_areas": [BRISTOL], "refused_areas": [BRISTOL]}, "refused_areas"),
        ({"lat": 10.0}, "lat"),
    ):
        assert_problem(await api.post("/api/admin/units", "admin", json={**unit, **bad}), 422, field)
    created = await api.post(
        "/api/admin/units",
        "admin",
        json={**unit, "code": "SEV01", "refused_areas": [BANES], "local_to_areas": [BRISTOL]},
    )
    assert created.status_code == 201, created.text
    unit_id = created.json()["id"]
    assert (created.json()["refused_areas"], created.json()["local_to_areas"]) == ([BANES], [BRISTOL])
    assert_problem(await api.post("/api/admin/units", "admin", json={**unit, "code": "SEV01"}), 409, "code")
    changed = await api.request(
        "PATCH",
        f"/api/admin/units/{unit_id}",
        "admin",
        json={"sex": "female", "daily_cost": 180.5, "refused_areas": []},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["sex"], changed.json()["daily_cost"], changed.json()["refused_areas"]) == (
        "female",
        180.5,
        [],
    )
    public = (await api.get(f"/api/units/{unit_id}", "amhp")).json()
    assert (public["sex"], public["refuses_areas"]) == ("female", [])
    area = await api.request("PATCH", f"/api/admin/areas/{BRISTOL}", "admin", json={"name": "City of Bristol"})
    assert area.json()["name"] == "City of Bristol"
    assert_problem(
        await api.post("/api/admin/areas", "admin", json={"code": BRISTOL, "name": "x", "lat": 51, "lon": -2}),
        409,
        "code",
    )
    async with api.db.read_sessions() as session:
        actions = set((await session.scalars(select(AuditEntry.action).where(AuditEntry.action.like("admin.%")))).all())
    assert {"admin.provider.create", "admin.provider.update", "admin.unit.create", "admin.unit.update"} <= actions
    assert "admin.area.update" in actions


async def test_a_retired_unit_keeps_its_history_and_is_never_offered_again(api: Api) -> None:
    suite = await api.unit("Bristol Place of Safety")
    person = {"ref": "RET-1", "age": 30, "sex": "male", "home_area": BRISTOL}
    held = await api.post("/api/holds", "amhp", json={"unit_id": suite.id, "purpose": "s136", "person": person})
    retire = await api.request("PATCH", f"/api/admin/units/{suite.id}", "admin", json={"active": False})
    assert_problem(retire, 409, "active")
    assert (await api.post(f"/api/holds/{held.json()['id']}/release", "amhp")).status_code == 200
    retired = await api.request("PATCH", f"/api/admin/units/{suite.id}", "admin", json={"active": False})
    assert retired.status_code == 200, retired.text
    search = (await api.get("/api/units?kind=s136_suite", "amhp")).json()
    assert suite.id not in [u["id"] for u in search]
    again = await api.post("/api/holds", "amhp", json={"unit_id": suite.id, "purpose": "s136", "person": person})
    assert_problem(again, 422, "unit_id")
    assert (await api.get(f"/api/units/{suite.id}", "amhp")).status_code == 200
    assert (await api.get(f"/api/holds/{held.json()['id']}", "amhp")).json()["status"] == "released"


async def test_a_retired_area_is_no_one_s_new_home_area(api: Api) -> None:
    retired = await api.request("PATCH", f"/api/admin/areas/{BANES}", "admin", json={"active": False})
    assert retired.status_code == 200, retired.text
    assert BANES not in [a["code"] for a in (await api.get("/api/areas", "amhp")).json()]
    assert BANES in [a["code"] for a in (await api.get("/api/admin/areas", "admin")).json()]
    crisis = await api.unit("Bath Crisis House")
    person = {"ref": "RET-2", "age": 30, "sex": "male", "home_area": BANES}
    held = await api.post("/api/holds", "amhp", json={"unit_id": crisis.id, "purpose": "crisis", "person": person})
    assert_problem(held, 422, "person.home_area")
    api.clock.set(START)


async def test_who_may_sign_in_as_a_user_by_single_sign_on_is_recorded_audited_and_ends_their_sessions(
    api: Api,
) -> None:
    url = "/api/admin/users/amhp"
    assert (await api.get("/api/holds", "amhp")).status_code == 200
    recorded = await api.request("PATCH", url, "admin", json={"oidc_subject": "cis2-555", "email": "AMHP@nhs.net"})
    assert recorded.status_code == 200, recorded.text
    assert (recorded.json()["oidc_subject"], recorded.json()["email"]) == ("cis2-555", "amhp@nhs.net")
    # Who may sign in as them changed: a session from before is ended, as with a change of access.
    assert (await api.get("/api/holds", "amhp")).status_code == 401
    taken = await api.request("PATCH", "/api/admin/users/bedmanager", "admin", json={"oidc_subject": "cis2-555"})
    assert_problem(taken, 409, "oidc_subject")
    assert_problem(await api.request("PATCH", url, "admin", json={"oidc_subject": ""}), 422, "oidc_subject")
    cleared = await api.request("PATCH", url, "admin", json={"oidc_subject": None})
    assert cleared.status_code == 200 and cleared.json()["oidc_subject"] is None
    async with api.db.read_sessions() as session:
        entries = (await session.scalars(select(AuditEntry).where(AuditEntry.action == "admin.user.update"))).all()
    # The same instant on the test's clock: which came first is not in the order of `at`.
    changes = {(e.before["oidc_subject"], e.after["oidc_subject"]) for e in entries}
    assert {(None, "cis2-555"), ("cis2-555", None)} <= changes
