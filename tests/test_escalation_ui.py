"""Escalation levels on the live pages in a real Chromium, on each engine: the bed manager sees their trust's
OPEL level in words, a warning once it has gone stale, and declares a new one with a note; the AMHP's search
results show each unit's provider's level, and a new declaration arrives there live (the public event
provider.escalation), with no reload. Both pages fit a phone."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import browser as browser_support
from support.browser import ENGINES, LONDON, NOW, Page, demo_database, playwright, running_server, token, unit_id

browser = browser_support.browser  # the fixture the tests take
expect = playwright.expect
NOTE = "no acute beds; two people waiting in ED"


@pytest.fixture(params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The demo, whose AWP level was declared an hour before NOW: stale from the start with a 30-minute window."""
    with running_server(demo_database(request, tmp_path), CAPACITY_ESCALATION_STALE_MINUTES="30") as base:
        yield base


def test_a_bed_manager_declares_a_level_and_the_amhp_sees_it_live(server: str, browser) -> None:
    suite = unit_id(server, "Bristol Place of Safety")  # an Avon and Wessex (AWP) unit
    amhp = Page(browser, server, "amhp", width=390)
    result = amhp.page.locator(f"section[aria-labelledby=results-h] tr[data-unit='{suite}'] [data-field=escalation]")
    expect(result).to_contain_text("OPEL 3: severe pressure")
    expect(result.locator(".stale")).to_have_text("stale")

    manager = Page(browser, server, "bedmanager", width=390)
    panel = manager.page.get_by_role("region", name=re.compile("^Escalation level of Avon and Wessex"))
    expect(panel.locator("[data-field=escalation]")).to_contain_text("OPEL 3: severe pressure")
    expect(panel.locator("[data-field=escalation-stale]")).to_contain_text("This level is stale")
    assert manager.page_width() <= 390, "the bed manager's level is wider than a phone"
    manager.shot("bed-manager-escalation-phone")

    panel.get_by_label("Level", exact=True).select_option(label="OPEL 4: extreme pressure")
    panel.get_by_label("Note (optional): what drives it").fill(NOTE)
    panel.get_by_role("button", name="Declare level").click()
    expect(panel.get_by_role("status")).to_contain_text("Declared OPEL 4: extreme pressure")
    today = NOW.astimezone(LONDON).strftime("%d %b")
    expect(panel.locator("[data-field=escalation]")).to_contain_text(f"OPEL 4: extreme pressure declared {today}")
    expect(panel.locator("[data-field=escalation]")).to_contain_text(NOTE)
    expect(panel.locator("[data-field=escalation-stale]")).to_have_count(0)  # just declared: fresh

    # The AMHP's results change with no reload, from the event.
    expect(result).to_contain_text("OPEL 4: extreme pressure")
    expect(result.locator(".stale")).to_have_count(0)
    assert "provider.escalation" in amhp.events
    assert amhp.page_width() <= 390
    amhp.shot("amhp-escalation-phone")

    awp = httpx.get(f"{server}/api/units/{suite}", headers=token(server, "admin")).json()["provider_id"]
    history = httpx.get(f"{server}/api/providers/{awp}/escalation/history", headers=token(server, "admin")).json()
    assert (history[0]["level"], history[0]["before_level"], history[0]["note"], history[0]["declared_by"]) == (
        4,
        3,
        NOTE,
        "bedmanager",
    )
    assert manager.errors == [] and amhp.errors == []
