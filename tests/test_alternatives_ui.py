"""The AMHP page in a real Chromium: a search that finds nothing free for a 15-year-old shows the crisis
alternatives open now for their age and home area, nearest first; a search that finds a place shows none."""

from __future__ import annotations

from support import browser as browser_support
from support.browser import Page, playwright

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

BANES = "E06000022"


def search(page, age: str) -> None:
    page.fill("#s-age", age)
    page.select_option("#s-home", BANES)
    page.select_option("#s-near", BANES)
    page.click("#search-form button[type=submit]")


def test_nothing_free_for_a_fifteen_year_old_shows_what_is_open_instead(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    search(page, "15")  # Tuesday 09:30: the CAMHS crisis team's hours, and the line's (always)
    found = page.locator("section.alternatives li")
    playwright.expect(found).to_have_count(2)
    playwright.expect(found.nth(0)).to_contain_text("Avon and Wiltshire CAMHS crisis team (demo)")
    playwright.expect(found.nth(0)).to_contain_text("CAMHS crisis team,")
    playwright.expect(found.nth(1)).to_contain_text("Severnside crisis line (demo) (crisis line, by phone)")
    assert found.nth(1).get_by_role("link", name="0808 157 0103").get_attribute("href") == "tel:08081570103"
    amhp.shot("amhp-alternatives")

    search(page, "30")  # an adult: places are free, so no alternatives are offered
    playwright.expect(page.locator("section.alternatives")).to_have_count(0)
    assert amhp.errors == []
