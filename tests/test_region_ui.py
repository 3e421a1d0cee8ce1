"""The /region page (issue 16 item 3) in the system Chromium against a real server, on each engine: a
commissioner reaches it from their page and it follows a bed manager's changes live, without a reload."""

from __future__ import annotations

import re

import httpx

from support import browser as browser_support
from support.browser import NOW, WAIT_MS, Page, playwright, token, unit_id

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take


def test_the_region_page_updates_live_when_a_bed_manager_changes_a_figure(server: str, browser) -> None:
    commissioner = Page(browser, server, "commissioner")
    page = commissioner.page
    page.get_by_role("link", name="Region").click()
    page.wait_for_url(f"{server}/region")
    playwright.expect(page.locator("#region")).to_have_value("South West")
    suites = page.locator("tr[data-kind=s136_suite]")
    # Bristol's 4 places and Taunton's 2, all free.
    playwright.expect(suites.locator("[data-field=available]")).to_have_text("6")
    playwright.expect(page.locator("[data-total=s136_suites_empty]")).to_have_text("2")
    awp = page.locator("section[aria-labelledby=opel-h] li")
    playwright.expect(awp).to_contain_text("OPEL 3: severe pressure")

    suite = unit_id(server, "Bristol Place of Safety")
    bed_manager = token(server, "bedmanager")
    declared = httpx.put(
        f"{server}/api/units/{suite}/availability", headers=bed_manager, json={"open_places": 1, "status": "open"}
    )
    assert declared.status_code == 200, declared.text
    playwright.expect(suites.locator("[data-field=available]")).to_have_text("3")
    playwright.expect(suites.locator("[data-field=open_places]")).to_have_text("3")

    provider = httpx.get(f"{server}/api/units/{suite}", headers=bed_manager).json()["provider_id"]
    lowered = httpx.put(f"{server}/api/providers/{provider}/escalation", headers=bed_manager, json={"level": 2})
    assert lowered.status_code == 200, lowered.text
    playwright.expect(page.locator("section[aria-labelledby=opel-h]")).to_contain_text("None")
    playwright.expect(page.locator("[data-total=providers_at_level_3_4]")).to_have_text("0")
    assert commissioner.script_errors() == []


def test_a_detention_at_an_emergency_department_comes_and_goes_on_the_region_page_live(server: str, browser) -> None:
    """Those who see people (here an admin) see the emergency department's waiters change as AMHPs record
    and end detentions there, sooner than the page's once-a-minute read."""
    admin = Page(browser, server, "admin")
    page = admin.page
    page.goto(f"{server}/region")
    waiting = page.locator("[data-total=waiting_in_ed_s136]")
    playwright.expect(waiting).to_have_text("0")
    amhp = token(server, "amhp")
    person = {"ref": "REGION-1", "age": 30, "sex": "female", "home_area": "E06000023"}
    body = {"place_type": "emergency_department", "person": person, "detained_at": NOW.isoformat()}
    recorded = httpx.post(f"{server}/api/s136-detentions", headers=amhp, json=body)
    assert recorded.status_code == 201, recorded.text
    playwright.expect(waiting).to_have_text(re.compile(r"^1 \(longest \d+ minutes?\)$"), timeout=WAIT_MS)
    ended = httpx.post(
        f"{server}/api/s136-detentions/{recorded.json()['id']}/end", headers=amhp, json={"outcome": "discharged"}
    )
    assert ended.status_code == 200, ended.text
    playwright.expect(waiting).to_have_text("0", timeout=WAIT_MS)
    assert admin.script_errors() == []
