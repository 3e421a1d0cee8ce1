"""The browser UI in a real Chromium (Playwright driving the system's /usr/bin/chromium), against a real
server on each engine: the journeys of the bed manager, the AMHP and the commissioner, live updates
without reloads, and no JavaScript errors. Screenshots of each page go to artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from support import browser as browser_support
from support.browser import LONDON, NOW, WAIT_MS, Page, playwright, token, unit_id

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take


def test_the_login_form_refuses_a_wrong_password(server: str, browser) -> None:
    page = browser.new_page()
    page.goto(f"{server}/")
    assert page.get_attribute("input[name=username]", "name") == "username"
    page.fill("input[name=username]", "amhp")
    page.fill("input[type=password]", "wrong")
    page.click("button[type=submit]")
    playwright.expect(page.locator("#login-error")).to_have_text("Wrong username or password.")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert "capacity_session" not in cookies


def test_bed_manager_changes_figures_and_the_amhp_sees_them_live(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    suite = unit_id(server, "Bristol Place of Safety")
    availability = amhp.page.locator(f"tr[data-unit='{suite}'] [data-field=available]")
    playwright.expect(availability).to_have_text("4 of 4 free")

    manager = Page(browser, server, "bedmanager")
    session = next(c for c in manager.context.cookies() if c["name"] == "capacity_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    row = manager.page.locator(f"tr[data-unit='{suite}']")
    row.get_by_role("button", name="One fewer place at Bristol Place of Safety (136 suite, demo)").click()
    row.get_by_role("button", name="Save").click()
    manager.page.wait_for_selector("#announce:has-text('saved')")
    # No reload: the AMHP's row changes by itself.
    playwright.expect(availability).to_have_text("3 of 3 free")
    row.get_by_role("button", name="Figures are current").click()
    manager.page.wait_for_selector("#announce:has-text('confirmed')")
    manager.shot("bed-manager")
    assert manager.errors == [] and amhp.errors == []


def test_amhp_searches_holds_conveys_and_records_arrival(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    page.select_option("#s-kind", "s136_suite")
    page.fill("#s-age", "17")
    page.select_option("#s-home", "E06000023")
    page.select_option("#s-near", "E06000023")
    page.click("#search-form button[type=submit]")
    results = page.locator("section[aria-labelledby=results-h] tbody tr")
    playwright.expect(results).to_have_count(1)
    playwright.expect(results.first).to_contain_text("Bristol Place of Safety")
    page.get_by_text("not eligible for this person").click()
    assert page.get_by_text("Taunton 136 Suite (demo): takes ages 18+").is_visible()

    results.first.get_by_role("button", name="Hold").click()
    page.fill("#h-ref", "UI-TEST-0001")
    page.select_option("#h-sex", "male")
    page.get_by_role("button", name="Place hold").click()
    card = page.locator("article[data-hold]")
    card.wait_for()
    assert re.fullmatch(r"(59|60):\d\d|1 h 00 min", card.locator(".countdown").inner_text())
    first = card.locator(".countdown").inner_text()
    playwright.expect(card.locator(".countdown")).not_to_have_text(first, timeout=5000)  # it counts down live

    card.locator("select[id^=c-mode]").select_option("ambulance")
    card.locator("input[id^=c-requested_at]").fill(NOW.astimezone(LONDON).strftime("%d %b %Y, %H:%M"))
    card.get_by_role("button", name="Save conveyance").click()
    card.get_by_text("Ambulance response").wait_for()
    amhp.shot("amhp")

    card.get_by_role("button", name="Arrived").click()
    page.locator("section[aria-labelledby=clocks-h] tbody tr").first.wait_for()
    assert "UI-TEST-0001" in page.locator("section[aria-labelledby=clocks-h]").inner_text()
    assert page.locator("article[data-hold]").count() == 0
    assert amhp.errors == []


def test_a_hold_placed_elsewhere_appears_on_the_board_without_reload(server: str, browser) -> None:
    manager = Page(browser, server, "bedmanager", width=820)  # tablet width
    suite = unit_id(server, "Bristol Place of Safety")
    hold = httpx.post(
        f"{server}/api/holds",
        headers=token(server, "amhp"),
        json={
            "unit_id": suite,
            "purpose": "s136",
            "person": {"ref": "ELSEWHERE-1", "age": 30, "sex": "female", "home_area": "E06000023"},
        },
    )
    assert hold.status_code == 201, hold.text
    row = manager.page.locator(f"tr[data-hold='{hold.json()['id']}']")
    row.wait_for()
    assert "ELSEWHERE-1" in row.inner_text()
    manager.page.wait_for_selector(f"tr[data-unit='{suite}'] [data-field=available]:has-text('3 free')")
    row.get_by_role("button", name="Decline").click()
    row.get_by_label("Reason for declining").select_option("staffing")
    row.get_by_role("button", name="Yes, decline the hold").click()
    row.wait_for(state="detached")
    manager.shot("bed-manager-tablet")
    assert manager.errors == []


def audit_ids(base: str, admin: dict[str, str], username: str, action: str) -> list[int]:
    response = httpx.get(
        f"{base}/api/audit", params={"username": username, "action": action, "limit": 1000}, headers=admin
    )
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()]


def test_live_changes_patch_the_board_without_an_audited_read_each(server: str, browser) -> None:
    """Every read of holds or placements writes an audit entry. The board once re-read both lists for each
    hold or placement event; it now patches itself from the events, so a burst of changes made elsewhere
    costs it at most a coalesced read or two, not one per event: only a hold still live when the events
    settle is re-read, for the risk flags its event lacks."""
    admin, amhp = token(server, "admin"), token(server, "amhp")
    suite = unit_id(server, "Bristol Place of Safety")
    manager = Page(browser, server, "bedmanager")
    availability = manager.page.locator(f"tr[data-unit='{suite}'] [data-field=available]")
    playwright.expect(availability).to_have_text("4 free")
    # The page has loaded once the reads of its resync are in the log.
    deadline = time.monotonic() + WAIT_MS / 1000
    while not (
        audit_ids(server, admin, "bedmanager", "hold.list") and audit_ids(server, admin, "bedmanager", "placement.list")
    ):
        assert time.monotonic() < deadline, "the board never read its holds and placements"
        time.sleep(0.1)
    loaded = max(
        audit_ids(server, admin, "bedmanager", "hold.list") + audit_ids(server, admin, "bedmanager", "placement.list")
    )
    seen = len(manager.events)

    def place_hold(ref: str, risks: list[str]) -> str:
        person = {"ref": ref, "age": 30, "sex": "female", "home_area": "E06000023"}
        body = {"unit_id": suite, "purpose": "s136", "person": person, "risk_flags": risks}
        hold = httpx.post(f"{server}/api/holds", headers=amhp, json=body)
        assert hold.status_code == 201, hold.text
        return hold.json()["id"]

    changes = 0
    for i in range(3):
        released = httpx.post(f"{server}/api/holds/{place_hold(f'BURST-{i}', [])}/release", headers=amhp)
        assert released.status_code == 200, released.text
        changes += 2
    for places in (3, 2):
        declared = httpx.put(
            f"{server}/api/units/{suite}/availability", headers=admin, json={"open_places": places, "status": "open"}
        )
        assert declared.status_code == 200, declared.text
        changes += 1
    last = place_hold("BURST-LAST", ["violence"])
    changes += 1
    # The last change shows at once from its event, and its risk flags after the one coalesced read.
    row = manager.page.locator(f"tr[data-hold='{last}']")
    playwright.expect(row).to_contain_text("risks: violence")
    playwright.expect(availability).to_have_text("1 free")
    assert manager.page.locator("tr[data-hold]").count() == 1
    manager.page.wait_for_timeout(2500)  # time for any other coalesced read to start and land in the log

    reads = {
        action: [i for i in audit_ids(server, admin, "bedmanager", action) if i > loaded]
        for action in ("hold.list", "placement.list", "hold.read")
    }
    # The control: the events that once made the board re-read both lists, one read of each per event.
    rereading = [t for t in manager.events[seen:] if t.startswith(("hold.", "placement.")) or t == "unit.stale"]
    assert len(rereading) >= 7 and changes == 9
    counts = {action: len(ids) for action, ids in reads.items()}
    print(f"\n{len(rereading)} hold events: the old board read {len(rereading)} of each list; now {counts}")
    assert counts["hold.list"] + counts["placement.list"] <= 2 < 2 * len(rereading)
    assert counts["hold.read"] == 0
    assert manager.page.locator("tr[data-hold]").count() == 1
    assert manager.errors == []


def day_text(iso_date: str) -> str:
    """A day as the commissioner's period shows it: 01 Nov 2026."""
    return date.fromisoformat(iso_date).strftime("%d %b %Y")


def last_complete_month(now: datetime) -> tuple[str, str]:
    first_of_this = now.astimezone(LONDON).date().replace(day=1)
    last = first_of_this - timedelta(days=1)
    return last.replace(day=1).isoformat(), last.isoformat()


def test_commissioner_changes_the_period_and_downloads_csv(server: str, browser) -> None:
    commissioner = Page(browser, server, "commissioner")
    page = commissioner.page
    oap = page.locator("section[data-report=out-of-area]")
    # The page opens on the last complete calendar month, what commissioners report on.
    first, last = last_complete_month(NOW)
    playwright.expect(page.locator("#p-from")).to_have_value(day_text(first))
    playwright.expect(page.locator("#p-to")).to_have_value(day_text(last))
    page.locator("#trend .u-wrap").wait_for()
    page.fill("#p-from", "1 jan 2025")  # days are typed the UK way, whatever the browser's locale
    page.fill("#p-to", "31 Feb 2025")
    page.get_by_role("button", name="Show").click()
    playwright.expect(page.locator("#p-to-error")).to_have_text("To: 31 Feb 2025 is not a date that exists.")
    page.fill("#p-to", "31 Jan 2025")
    page.get_by_role("button", name="Show").click()
    csv_link = oap.get_by_role("link", name="Download CSV")
    playwright.expect(csv_link).to_have_attribute("href", re.compile("from=2025-01-01&to=2025-01-31"))
    playwright.expect(oap.locator("[data-metric=started]").first).to_have_text("0")
    with page.expect_download() as download:
        csv_link.click()
    path = download.value.path()
    text = Path(path).read_text()
    assert text.splitlines()[0].startswith("section,")
    assert "2025-01-01" in text and "2025-01-31" in text
    assert download.value.suggested_filename.endswith(".csv")
    # The demo places one person from Bath and North East Somerset at the distant private hospital,
    # 12 days before the demo's instant.
    today = NOW.astimezone(LONDON).date()
    page.fill("#p-from", (today - timedelta(days=20)).strftime("%d %b %Y"))
    page.fill("#p-to", today.strftime("%d %b %Y"))
    page.get_by_role("button", name="Show").click()
    playwright.expect(oap.locator("[data-metric=started]").first).to_have_text("1")
    # Codes are shown by their labels (GET /api/codes), never as the codes themselves.
    s136, equality = page.locator("section[data-report=s136]"), page.locator("section[data-report=equality]")
    playwright.expect(s136.get_by_role("cell", name="no ambulance available", exact=True)).to_be_visible()
    playwright.expect(s136.get_by_role("rowheader", name="admitted informally", exact=True)).to_be_visible()
    playwright.expect(equality.get_by_role("rowheader", name="A White - British", exact=True).first).to_be_visible()
    commissioner.shot("commissioner")
    assert commissioner.errors == []
