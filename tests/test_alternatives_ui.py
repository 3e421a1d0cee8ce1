"""The AMHP page in a real Chromium: a search that finds nothing free for a 15-year-old shows the crisis
alternatives open now for their age and home area, nearest first; a search that finds a place shows none.
The admin page adds, changes and retires them, with their opening hours day by day; a mistyped time is named
by its field and nothing is saved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from support import browser as browser_support
from support.browser import ENGINES, Page, demo_database, playwright, running_server, token

browser = browser_support.browser  # the fixture the tests take

# Opening hours are about a day of the week and an hour: these tests keep their own instant, whatever
# CAPACITY_TEST_NOW the others run at, Tuesday 1 December 2026 09:30 London (not a bank holiday).
TUESDAY = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real server on a fresh demo database, its clock started at TUESDAY."""
    with running_server(demo_database(request, tmp_path, TUESDAY), now=TUESDAY) as base:
        yield base


BANES = "E06000022"
expect = playwright.expect


def search(page, age: str) -> None:
    page.fill("#s-age", age)
    page.select_option("#s-home", BANES)
    page.select_option("#s-near", BANES)
    page.click("#search-form button[type=submit]")


def test_nothing_free_for_a_fifteen_year_old_shows_what_is_open_instead(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp", now=TUESDAY)
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


# --- The admin's section for crisis alternatives ----------------------------------------------------------

NEW = "Keynsham young people's drop-in (test)"


def admin_alternatives(base: str) -> list[dict]:
    return httpx.get(f"{base}/api/admin/alternatives", headers=token(base, "admin")).json()


def test_an_admin_adds_an_alternative_with_hours_and_the_amhp_is_offered_it_while_it_is_open(
    server: str, browser
) -> None:
    admin = Page(browser, server, "admin", width=390, now=TUESDAY)
    page = admin.page
    page.get_by_role("navigation", name="Administration").get_by_role("link", name="Crisis alternatives").click()
    expect(page.locator("#areas-count")).to_contain_text(" areas")  # read: the form ticks areas from them
    page.get_by_role("button", name="Add an alternative").click()
    form = page.locator("form[data-form=alternatives]")
    page.fill("#alternatives-f-name", NEW)
    page.select_option("#alternatives-f-kind", label="safe haven or crisis café")
    form.locator("fieldset[data-field=areas]").get_by_label("Bath and North East Somerset (E06000022)").check()
    page.fill("#alternatives-f-max_age", "17")
    page.fill("#alternatives-f-how_to_refer", "Phone ahead; a youth worker meets them at the door.")
    # Tuesday from 08:00 (it is Tuesday 09:30), Sunday all day, closed on bank holidays; one time mistyped.
    hours = form.locator("fieldset[data-field=opening_hours]")
    page.select_option("#alternatives-f-opening_hours-tue-mode", label="Open at these hours")
    hours.get_by_label("Tuesday: opens at").fill("8:00")  # read as 08:00
    hours.get_by_label("Tuesday: closes at").fill("25:00")
    page.select_option("#alternatives-f-opening_hours-sun-mode", label="Open 24 hours")
    page.select_option("#alternatives-f-opening_hours-bank_holidays-mode", label="Closed")
    form.locator("button[type=submit]").click()
    expect(page.locator("#alternatives-f-opening_hours-tue-error")).to_have_text(
        "Enter each time as HH:MM on the 24-hour clock, like 09:00 or 18:30."
    )
    expect(hours.get_by_label("Tuesday: closes at")).to_have_attribute("aria-invalid", "true")
    expect(hours.get_by_label("Tuesday: closes at")).to_be_focused()
    assert admin.page_width() <= 390, "the hours are wider than a phone"
    admin.shot("admin-alternative-phone")
    assert NEW not in {a["name"] for a in admin_alternatives(server)}  # nothing was saved

    # Put right, with the evening too (closing at 00:00 is midnight): saved, listed, open now.
    hours.get_by_label("Tuesday: closes at").fill("12:00")
    hours.get_by_role("button", name="Add more hours on Tuesday").click()
    hours.get_by_label("Tuesday (hours 2): opens at").fill("18:00")
    hours.get_by_label("Tuesday (hours 2): closes at").fill("00:00")
    form.locator("button[type=submit]").click()
    item = page.locator("#alternatives-list li", has_text=NEW)
    expect(item).to_contain_text(
        "Mon closed; Tue 08:00–12:00, 18:00–00:00; Wed–Sat closed; Sun 24 hours; bank holidays closed"
    )
    expect(item).to_contain_text("open now")
    saved = next(a for a in admin_alternatives(server) if a["name"] == NEW)
    evening = {"opens": "18:00", "closes": "00:00"}
    assert saved["opening_hours"]["tue"] == [{"opens": "08:00", "closes": "12:00"}, evening]
    assert (saved["opening_hours"]["mon"], saved["opening_hours"]["bank_holidays"]) == ([], [])

    # Nothing is free for a 15-year-old from Bath: the AMHP is offered it, nearest first among those open.
    amhp = Page(browser, server, "amhp", now=TUESDAY)
    search(amhp.page, "15")
    offered = amhp.page.locator("section.alternatives li")
    expect(offered.filter(has_text=NEW)).to_contain_text("safe haven or crisis café")

    # Closed on Tuesdays after all: the form shows the hours as saved, and the AMHP is no longer offered it.
    item.get_by_role("button", name=f"Edit {NEW}").click()
    expect(page.locator("#alternatives-f-opening_hours-tue-mode")).to_have_value("hours")
    expect(hours.get_by_label("Tuesday (hours 2): closes at")).to_have_value("00:00")
    page.select_option("#alternatives-f-opening_hours-tue-mode", label="Closed")
    form.locator("button[type=submit]").click()
    expect(item).to_contain_text("closed now")
    search(amhp.page, "15")
    expect(amhp.page.locator("section.alternatives")).to_be_visible()
    expect(offered.filter(has_text=NEW)).to_have_count(0)

    # Retiring it asks first; then it is listed as retired.
    item.get_by_role("button", name=f"Retire {NEW}").click()
    confirm = item.get_by_role("group", name=f"Confirm: retire {NEW}")
    expect(confirm).to_contain_text("It will no longer be offered to AMHPs")
    confirm.get_by_role("button", name=f"Yes, retire {NEW}").click()
    expect(item).to_contain_text("retired")
    assert not next(a for a in admin_alternatives(server) if a["name"] == NEW)["active"]
    assert admin.script_errors() == [] and amhp.errors == []
