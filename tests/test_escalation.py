"""Escalation levels (issue 16 item 2): a provider's OPEL level, declared by its own bed managers or an
admin, kept as history and audited, shown beside its units, sent live, and flagged stale like figures."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from capacity.app import create_app
from capacity.audit import AuditEntry
from capacity.booking.escalation.models import EscalationDeclaration
from capacity.clock import FixedClock
from support.api import Api, assert_problem
from support.demo import START
from support.live_server import serve
from support.settings import settings_for

AWP = "Avon and Wessex"  # the demo bed manager's trust: OPEL 3, declared an hour before the demo starts
SOMERSET = "Somerset Levels"  # OPEL 2, declared 20 hours before: stale


async def history_and_audit(api: Api, provider_id: str) -> tuple[int, int]:
    async with api.db.read_sessions() as session:
        declarations = await session.scalar(
            select(func.count())
            .select_from(EscalationDeclaration)
            .where(EscalationDeclaration.provider_id == provider_id)
        )
        audit = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.object_id == provider_id)
        )
    return declarations, audit


async def test_the_bed_manager_declares_and_the_providers_units_show_the_level(api: Api) -> None:
    awp = await api.provider(AWP)
    api.clock.advance(minutes=30)
    response = await api.put(
        f"/api/providers/{awp.id}/escalation", "bedmanager", json={"level": 4, "note": "no acute beds left"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["escalation_level"], body["escalation_note"], body["escalation_stale"]) == (
        4,
        "no acute beds left",
        False,
    )
    assert body["escalation_at"].startswith("2026-03-02T09:30:00")

    providers = {p["id"]: p for p in (await api.get("/api/providers", "amhp")).json()}
    assert providers[awp.id]["escalation_level"] == 4
    units = (await api.get("/api/units", "amhp")).json()
    awp_units = [u for u in units if u["provider_id"] == awp.id]
    assert awp_units and all(u["escalation_level"] == 4 for u in awp_units)
    assert all(u["escalation_at"] == body["escalation_at"] for u in awp_units)
    suite = await api.unit("Bristol Place of Safety")
    assert (await api.get(f"/api/units/{suite.id}", "conveyance")).json()["escalation_level"] == 4


async def test_history_is_kept_newest_first_and_each_declaration_is_audited(api: Api) -> None:
    awp = await api.provider(AWP)
    for minutes, level in ((10, 4), (20, 2)):
        api.clock.advance(minutes=minutes)
        response = await api.put(f"/api/providers/{awp.id}/escalation", "admin", json={"level": level})
        assert response.status_code == 200, response.text

    history = (await api.get(f"/api/providers/{awp.id}/escalation/history", "commissioner")).json()
    assert [(h["before_level"], h["level"], h["declared_by"]) for h in history] == [
        (4, 2, "admin"),
        (3, 4, "admin"),
        (None, 3, "demo"),
    ]
    assert history[0]["declared_at"].startswith("2026-03-02T09:30:00")
    log = (await api.get(f"/api/audit?object_id={awp.id}&action=provider.escalation", "admin")).json()
    assert [(e["before"]["level"], e["after"]["level"], e["username"]) for e in log] == [
        (4, 2, "admin"),
        (3, 4, "admin"),
    ]


@pytest.mark.parametrize(
    ("caller", "provider", "status"),
    [
        ("bedmanager", AWP, 200),
        ("admin", SOMERSET, 200),
        ("bedmanager", SOMERSET, 403),  # another provider's bed manager
        ("amhp", AWP, 403),
        ("commissioner", AWP, 403),
        ("conveyance", AWP, 403),
    ],
)
async def test_only_the_providers_own_bed_managers_or_an_admin_may_declare(
    api: Api, caller: str, provider: str, status: int
) -> None:
    target = await api.provider(provider)
    counts_before = await history_and_audit(api, target.id)
    response = await api.put(f"/api/providers/{target.id}/escalation", caller, json={"level": 1})
    counts_after = await history_and_audit(api, target.id)
    after = {p["id"]: p for p in (await api.get("/api/providers", "admin")).json()}[target.id]
    if status == 200:
        assert response.status_code == 200, response.text
        assert after["escalation_level"] == 1
        assert counts_after == (counts_before[0] + 1, counts_before[1] + 1)
    else:
        assert_problem(response, status)
        assert after["escalation_level"] != 1, "a refused declaration must change nothing"
        assert counts_after == counts_before, "a refused declaration must leave no history or audit entry"


@pytest.mark.parametrize("body", [{"level": 0}, {"level": 5}, {"level": "severe"}, {}, {"level": 2, "note": "x" * 501}])
async def test_the_level_is_1_to_4_and_a_bad_one_is_named(api: Api, body: dict) -> None:
    awp = await api.provider(AWP)
    response = await api.put(f"/api/providers/{awp.id}/escalation", "bedmanager", json=body)
    assert_problem(response, 422, "note" if "note" in body else "level")
    assert (await history_and_audit(api, awp.id))[0] == 1  # the demo's declaration only


async def test_an_unknown_provider_is_404(api: Api) -> None:
    assert_problem(await api.put("/api/providers/nope/escalation", "admin", json={"level": 2}), 404)
    assert_problem(await api.get("/api/providers/nope/escalation/history", "admin"), 404)


async def test_a_declaration_older_than_the_staleness_period_is_flagged_until_reviewed(api: Api) -> None:
    awp, somerset = await api.provider(AWP), await api.provider(SOMERSET)
    providers = {p["id"]: p for p in (await api.get("/api/providers", "amhp")).json()}
    assert (providers[awp.id]["escalation_stale"], providers[somerset.id]["escalation_stale"]) == (False, True)
    # CAPACITY_ESCALATION_STALE_MINUTES is 12 hours by default: AWP's, made at 08:00, is stale after 20:00.
    api.clock.advance(hours=11)
    assert {p["id"]: p for p in (await api.get("/api/providers", "amhp")).json()}[awp.id]["escalation_stale"] is False
    api.clock.advance(minutes=1)
    suite = await api.unit("Bristol Place of Safety")
    assert (await api.get(f"/api/units/{suite.id}", "amhp")).json()["escalation_stale"] is True
    # The same level again is a review: no longer stale.
    reviewed = await api.put(f"/api/providers/{awp.id}/escalation", "bedmanager", json={"level": 3})
    assert reviewed.json()["escalation_stale"] is False
    assert (await api.get(f"/api/units/{suite.id}", "amhp")).json()["escalation_stale"] is False


class TestAShorterStalenessPeriod:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"escalation_stale_minutes": 30}

    async def test_the_staleness_period_is_a_setting(self, api: Api) -> None:
        awp = await api.provider(AWP)
        providers = {p["id"]: p for p in (await api.get("/api/providers", "amhp")).json()}
        assert providers[awp.id]["escalation_stale"] is True  # declared an hour ago, against 30 minutes


async def test_a_declaration_is_sent_live_to_every_role(database_url: str) -> None:
    app = create_app(settings_for(database_url), clock=FixedClock(START))
    async with serve(app) as live:
        listeners = {name: await live.connect(name) for name in ("commissioner", "amhp", "conveyance")}
        awp = await live.provider_of("Bristol Place of Safety")
        response = await live.put(
            f"/api/providers/{awp.id}/escalation", "bedmanager", json={"level": 4, "note": "full"}
        )
        assert response.status_code == 200, response.text
        for name, client in listeners.items():
            frames = await client.until(lambda f: f["type"] == "provider.escalation")
            data = frames[-1]["data"]
            assert (data["provider_id"], data["escalation_level"], data["escalation_note"]) == (awp.id, 4, "full"), name
            assert data["escalation_stale"] is False
