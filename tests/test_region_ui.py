"""The /region page (issue 16 item 3) in the system Chromium against a real server, on each engine: a
commissioner reaches it from their page and it follows a bed manager's changes live, without a reload."""

from __future__ import annotations

import httpx

from support import browser as browser_support
from support.browser import Page, playwright, token, unit_id

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
