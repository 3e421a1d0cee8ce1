"""The AMHP and bed manager pages keep what a person is doing while live updates arrive (issue 14): a
form being filled keeps its typed values, its focus and the click that follows; what happened to a hold
is said in words, naming the person and the unit, until dismissed; problems are shown next to the field
in plain English, and a lost connection is said and clears itself. In the system Chromium against a
real server, on each engine, with the fixtures tests/test_ui.py uses."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import httpx
import pytest

from support import browser as browser_support
from support.browser import NOW, Page, playwright, token, unit_id

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

SUITE = "Bristol Place of Safety (136 suite, demo)"


def declare(base: str, unit: str, places: int, who: str = "bedmanager") -> None:
    """A bed manager elsewhere saves a figure: every page showing the unit gets a live update."""
    body = {"open_places": places, "status": "open"}
    response = httpx.put(f"{base}/api/units/{unit}/availability", headers=token(base, who), json=body)
    assert response.status_code == 200, response.text


def place_hold(base: str, unit: str, ref: str) -> dict:
    person = {"ref": ref, "age": 30, "sex": "female", "home_area": "E06000023"}
    response = httpx.post(
        f"{base}/api/holds", headers=token(base, "amhp"), json={"unit_id": unit, "purpose": "s136", "person": person}
    )
    assert response.status_code == 201, response.text
    return response.json()


def live_holds(base: str, ref: str) -> list[dict]:
    response = httpx.get(f"{base}/api/holds", params={"status": "held"}, headers=token(base, "amhp"))
    assert response.status_code == 200, response.text
    return [h for h in response.json() if h["person"]["ref"] == ref]


def suite_row(server: str, browser, who: str) -> tuple[Page, str, Any]:
    """`who`'s page, the Bristol suite's id, and the suite's row on the page."""
    page = Page(browser, server, who)
    suite = unit_id(server, "Bristol Place of Safety")
    return page, suite, page.page.locator(f"tr[data-unit='{suite}']")


def focused_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_a_live_update_while_the_amhp_fills_the_hold_form_loses_nothing(server: str, browser) -> None:
    amhp, suite, row = suite_row(server, browser, "amhp")
    page = amhp.page
    availability = row.locator("[data-field=available]")
    playwright.expect(availability).to_have_text("4 of 4 free")
    # An earlier hold's success message, which must not stand for the next one.
    page.locator(f"tr[data-unit='{suite}']").get_by_role("button", name="Hold").click()
    page.fill("#h-ref", "LIVE-EARLIER")
    page.fill("#h-age", "35")
    page.get_by_role("button", name="Place hold").click()
    playwright.expect(page.locator("#announce")).to_contain_text("Held a place for LIVE-EARLIER")

    row.get_by_role("button", name="Hold").click()
    page.locator("#h-ref").click()
    page.keyboard.type("LIVE-")
    declare(server, suite, 5)  # a bed manager saves a figure elsewhere, mid-word
    playwright.expect(availability).to_have_text("4 of 5 free")  # the live update has been drawn
    page.keyboard.type("0001")  # the focus never left the field
    assert focused_id(page) == "h-ref"
    playwright.expect(page.locator("#h-ref")).to_have_value("LIVE-0001")
    page.fill("#h-age", "41")
    page.select_option("#h-sex", "male")
    declare(server, suite, 6)
    playwright.expect(availability).to_have_text("5 of 6 free")
    playwright.expect(page.locator("#h-ref")).to_have_value("LIVE-0001")
    playwright.expect(page.locator("#h-age")).to_have_value("41")
    playwright.expect(page.locator("#h-sex")).to_have_value("male")
    page.get_by_role("button", name="Place hold").click()

    announce = page.locator("#announce")
    playwright.expect(announce).to_have_text(
        re.compile(rf"^Held a place for LIVE-0001 at {re.escape(SUITE)} until \d\d \w\w\w, \d\d:\d\d\.$")
    )
    [hold] = live_holds(server, "LIVE-0001")  # the click made the hold
    assert hold["unit_id"] == suite and hold["person"]["age"] == 41 and hold["person"]["sex"] == "male"
    playwright.expect(page.locator(f"article[data-hold='{hold['id']}']")).to_contain_text("LIVE-0001")
    assert amhp.errors == []


def test_a_live_update_while_the_bed_manager_types_a_figure_loses_nothing(server: str, browser) -> None:
    manager, suite, row = suite_row(server, browser, "bedmanager")
    page = manager.page
    places = row.get_by_role("spinbutton", name=f"Open places at {SUITE}")
    playwright.expect(row.locator("[data-field=available]")).to_have_text("4 free")
    places.click()
    page.keyboard.press("Control+A")
    page.keyboard.type("2")
    # Live updates for this very row: a hold made on the unit, and another bed manager's figure.
    hold = place_hold(server, suite, "INCOMING-1")
    new_row = page.locator(f"tr[data-hold='{hold['id']}']")
    playwright.expect(new_row).to_contain_text("INCOMING-1")
    playwright.expect(row.locator("[data-field=available]")).to_have_text("3 free")
    declare(server, suite, 7, who="admin")
    playwright.expect(row.locator("[data-field=available]")).to_have_text("6 free")
    assert focused_id(page) == f"places-{suite}"
    playwright.expect(places).to_have_value("2")
    # The new hold is highlighted and was announced to screen readers.
    playwright.expect(new_row).to_have_class(re.compile(r"\bis-new\b"))
    announce = page.locator("#announce")
    assert announce.get_attribute("aria-live") == "polite"
    playwright.expect(announce).to_contain_text(f"New hold on {SUITE}: INCOMING-1")

    row.get_by_role("button", name="Save").click()
    playwright.expect(announce).to_have_text(f"{SUITE}: saved")
    unit = httpx.get(f"{server}/api/units/{suite}", headers=token(server, "admin")).json()
    assert unit["open_places"] == 2  # the typed figure, not the one that arrived live
    playwright.expect(places).to_have_value("2")
    assert manager.errors == []


def test_the_amhp_is_told_a_hold_was_declined_and_why_until_they_dismiss_it(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    suite = unit_id(server, "Bristol Place of Safety")
    declined, released = place_hold(server, suite, "DECLINE-ME"), place_hold(server, suite, "RELEASE-ME")
    page.locator(f"article[data-hold='{declined['id']}']").wait_for()
    response = httpx.post(
        f"{server}/api/holds/{declined['id']}/decline", headers=token(server, "bedmanager"), json={"reason": "staffing"}
    )
    assert response.status_code == 200, response.text
    messages = page.locator("#messages li")
    message = messages.filter(has_text="DECLINE-ME")
    playwright.expect(message).to_have_text(
        re.compile(rf"The hold for DECLINE-ME at {re.escape(SUITE)} was declined: staffing\.")
    )
    playwright.expect(page.locator(f"article[data-hold='{declined['id']}']")).to_have_count(0)
    # The AMHP's own release is said the same way; both stay while other updates arrive.
    card = page.locator(f"article[data-hold='{released['id']}']")
    card.get_by_role("button", name=f"Release the hold for RELEASE-ME at {SUITE}").click()
    card.get_by_role("button", name="Yes, release the hold").click()
    playwright.expect(messages.filter(has_text="RELEASE-ME")).to_have_text(
        re.compile(rf"The hold for RELEASE-ME at {re.escape(SUITE)} was released\.")
    )
    declare(server, suite, 5)
    playwright.expect(page.locator(f"tr[data-unit='{suite}'] [data-field=available]")).to_have_text("5 of 5 free")
    playwright.expect(messages).to_have_count(2)
    assert page.locator("#messages").get_attribute("aria-live") == "polite"
    message.get_by_role("button", name="Dismiss").click()
    playwright.expect(messages).to_have_count(1)
    playwright.expect(messages.first).to_contain_text("RELEASE-ME")
    amhp.shot("amhp-messages")
    assert amhp.errors == []


def test_countdowns_count_by_the_servers_clock_whatever_the_browsers_says(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    page.clock.set_system_time(NOW - timedelta(minutes=10))  # this computer's clock is 10 minutes slow
    page.reload()
    page.wait_for_selector("#live.on")
    hold = place_hold(server, unit_id(server, "Bristol Place of Safety"), "CLOCK-1")
    countdown = page.locator(f"article[data-hold='{hold['id']}'] .countdown")
    playwright.expect(countdown).to_have_text(re.compile(r"^(59|60):\d\d$"))  # not "1 h 10 min"
    assert amhp.errors == []


@pytest.fixture
def short_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server that follows holds a 136 suite for seconds and sweeps every second (it reads these
    from the environment when it starts)."""
    monkeypatch.setenv("CAPACITY_HOLD_SECONDS_S136_SUITE", "12")
    monkeypatch.setenv("CAPACITY_SWEEP_SECONDS", "1")


@pytest.mark.usefixtures("short_holds")  # set before `server` starts
def test_the_amhp_is_told_a_hold_is_expiring_and_then_expired(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    suite = unit_id(server, "Bristol Place of Safety")
    hold = place_hold(server, suite, "EXPIRE-ME")
    message = page.locator("#messages li").filter(has_text="EXPIRE-ME")
    playwright.expect(message).to_have_text(
        re.compile(rf"The hold for EXPIRE-ME at {re.escape(SUITE)} expires in less than a minute \(at .+\)\.")
    )
    playwright.expect(message).to_have_text(
        re.compile(rf"The hold for EXPIRE-ME at {re.escape(SUITE)} has expired; the place is no longer held\."),
        timeout=30_000,
    )
    playwright.expect(page.locator(f"article[data-hold='{hold['id']}']")).to_have_count(0)
    playwright.expect(page.locator("#messages li")).to_have_count(1)  # the expiry replaced the warning
    assert amhp.errors == []


def test_problems_are_shown_next_to_the_field_in_words(server: str, browser) -> None:
    manager, suite, row = suite_row(server, browser, "bedmanager")
    page = manager.page
    places = row.get_by_role("spinbutton", name=f"Open places at {SUITE}")
    places.fill("-1")
    row.get_by_role("button", name="Save").click()
    error = page.locator(f"[id='places-{suite}-error']")
    playwright.expect(error).to_have_text("Open places must be 0 or more.")
    playwright.expect(places).to_have_attribute("aria-invalid", "true")
    playwright.expect(places).to_have_attribute("aria-describedby", f"places-{suite}-error")
    assert "Expected" not in page.inner_text("main")
    places.fill("3")
    row.get_by_role("button", name="Save").click()
    playwright.expect(error).to_have_count(0)
    assert manager.script_errors() == []

    amhp = Page(browser, server, "amhp")
    page = amhp.page
    page.locator(f"tr[data-unit='{suite}']").get_by_role("button", name="Hold").click()
    page.fill("#h-ref", "NOT ALLOWED")  # a space: the API's pattern refuses it
    page.fill("#h-age", "35")
    page.get_by_role("button", name="Place hold").click()
    playwright.expect(page.locator("#h-ref-error")).to_have_text(
        "Person reference: use letters, digits and / _ . - only (no spaces), starting with a letter or digit."
    )
    playwright.expect(page.locator("#h-ref")).to_have_attribute("aria-invalid", "true")
    assert "Expected" not in page.inner_text("main") and "regex" not in page.inner_text("main")
    playwright.expect(page.locator("#h-ref")).to_have_value("NOT ALLOWED")  # what was typed stays
    page.fill("#h-ref", "ALLOWED-1")
    page.get_by_role("button", name="Place hold").click()
    playwright.expect(page.locator("#announce")).to_contain_text("Held a place for ALLOWED-1")
    assert len(live_holds(server, "ALLOWED-1")) == 1
    assert amhp.script_errors() == []


def test_a_lost_connection_is_said_in_words_and_clears_itself(server: str, browser) -> None:
    manager, suite, row = suite_row(server, browser, "bedmanager")
    page = manager.page
    offline = page.locator("#offline")
    playwright.expect(offline).to_be_hidden()
    manager.context.set_offline(True)
    row.get_by_role("button", name="Save").click()
    playwright.expect(offline).to_have_text("Could not reach capacity - check your connection; retrying")
    not_sent = row.get_by_role("alert")
    playwright.expect(not_sent).to_have_text(re.compile(r"^Not sent: could not reach capacity\."))
    assert "Failed to fetch" not in page.inner_text("body")
    manager.context.set_offline(False)
    playwright.expect(offline).to_be_hidden()  # no reload, no click: it retried by itself
    playwright.expect(not_sent).to_have_count(0)
    row.get_by_role("button", name="Save").click()
    playwright.expect(page.locator("#announce")).to_have_text(f"{SUITE}: saved")
    unexpected = [e for e in manager.script_errors() if "ERR_INTERNET_DISCONNECTED" not in e]
    assert unexpected == []
