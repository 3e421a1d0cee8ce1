"""Every task has a page (issue 14 items 4 and 5): releasing, declining and discharging ask first, naming
the person and the unit, with no reason chosen for the user. In the system Chromium against a real server,
on each engine, with the fixtures tests/test_ui.py uses."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import cache

import httpx

from support import browser as browser_support
from support.browser import LONDON, NOW, Page, playwright, unit_id
from support.browser import token as log_in

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

SUITE = "Bristol Place of Safety (136 suite, demo)"
PERSON = {"age": 30, "sex": "female", "home_area": "E06000023"}


def typed(instant: datetime) -> str:
    """An instant as a person types it: London time, "01 Dec 2026, 09:10"."""
    return instant.astimezone(LONDON).strftime("%d %b %Y, %H:%M")


def shown(instant: datetime) -> str:
    """An instant as the pages show a time of day: London time, "01 Dec, 09:10"."""
    return instant.astimezone(LONDON).strftime("%d %b, %H:%M")


def utc(instant: datetime) -> str:
    """An instant to the minute as the API answers it: "2026-12-01T09:10:00Z"."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:00Z")


@cache
def token(base: str, username: str) -> dict[str, str]:
    """One login per user and server: each checks a password hash, slow on a loaded machine."""
    return log_in(base, username)


def place_hold(base: str, unit: str, ref: str) -> dict:
    body = {"unit_id": unit, "purpose": "s136", "person": {"ref": ref, **PERSON}}
    response = httpx.post(f"{base}/api/holds", headers=token(base, "amhp"), json=body)
    assert response.status_code == 201, response.text
    return response.json()


def hold_status(base: str, hold: dict) -> dict:
    response = httpx.get(f"{base}/api/holds/{hold['id']}", headers=token(base, "amhp"))
    assert response.status_code == 200, response.text
    return response.json()


def test_release_decline_and_discharge_ask_first_with_no_reason_chosen(server: str, browser) -> None:
    suite = unit_id(server, "Bristol Place of Safety")
    released, declined, stays = (place_hold(server, suite, ref) for ref in ("REL-1", "DEC-1", "DIS-1"))
    arrived = httpx.post(f"{server}/api/holds/{stays['id']}/arrive", headers=token(server, "amhp"), json={})
    assert arrived.status_code == 201, arrived.text
    placement = arrived.json()

    amhp = Page(browser, server, "amhp")
    card = amhp.page.locator(f"article[data-hold='{released['id']}']")
    card.get_by_role("button", name=f"Release the hold for REL-1 at {SUITE}").click()
    playwright.expect(card.locator(".confirm")).to_contain_text(f"Release the hold for REL-1 at {SUITE}?")
    card.get_by_role("button", name="Cancel").click()
    playwright.expect(card.locator(".confirm")).to_have_count(0)
    assert hold_status(server, released)["status"] == "held"  # Cancel did nothing
    card.get_by_role("button", name=f"Release the hold for REL-1 at {SUITE}").click()
    card.get_by_role("button", name="Yes, release the hold").click()
    playwright.expect(card).to_have_count(0)
    assert hold_status(server, released)["status"] == "released"

    manager = Page(browser, server, "bedmanager")
    row = manager.page.locator(f"tr[data-hold='{declined['id']}']")
    row.get_by_role("button", name=f"Decline the hold for DEC-1 at {SUITE}").click()
    playwright.expect(row.locator(".confirm")).to_contain_text(f"Decline the hold for DEC-1 at {SUITE}?")
    reason = row.get_by_label("Reason for declining")
    playwright.expect(reason).to_have_value("")  # nothing is chosen for the bed manager
    row.get_by_role("button", name="Yes, decline the hold").click()
    playwright.expect(row.locator(".field-error")).to_have_text("Choose the reason for declining first.")
    playwright.expect(reason).to_have_attribute("aria-invalid", "true")
    assert hold_status(server, declined)["status"] == "held"  # nothing was sent
    row.get_by_role("button", name="Cancel").click()
    playwright.expect(row.locator(".confirm")).to_have_count(0)
    assert hold_status(server, declined)["status"] == "held"
    row.get_by_role("button", name=f"Decline the hold for DEC-1 at {SUITE}").click()
    row.get_by_label("Reason for declining").select_option("staffing")
    row.get_by_role("button", name="Yes, decline the hold").click()
    playwright.expect(row).to_have_count(0)
    ended = hold_status(server, declined)
    assert (ended["status"], ended["decline_reason"]) == ("declined", "staffing")

    stay = manager.page.locator(f"tr[data-placement='{placement['id']}']")
    stay.get_by_role("button", name=f"Discharge DIS-1 from {SUITE}").click()
    playwright.expect(stay.locator(".confirm")).to_contain_text(f"Discharge DIS-1 from {SUITE}?")
    playwright.expect(stay.get_by_label("Outcome")).to_have_value("")
    stay.get_by_role("button", name="Yes, discharge").click()
    playwright.expect(stay.locator(".field-error")).to_have_text("Choose the outcome of the stay first.")
    stay.get_by_role("button", name="Cancel").click()
    playwright.expect(stay.locator(".confirm")).to_have_count(0)
    stay.get_by_role("button", name=f"Discharge DIS-1 from {SUITE}").click()
    stay.get_by_label("Outcome").select_option("detained_s2")
    stay.get_by_role("button", name="Yes, discharge").click()
    playwright.expect(stay).to_have_count(0)
    after = httpx.get(f"{server}/api/placements/{placement['id']}", headers=token(server, "bedmanager")).json()
    assert after["outcome"] == "detained_s2" and after["ended_at"]
    assert amhp.script_errors() == [] and manager.script_errors() == []


def test_a_london_time_is_typed_the_same_way_whatever_the_browsers_locale(server: str, browser) -> None:
    # A browser set up in New York in US English: the page still reads and writes London, 24-hour.
    amhp = Page(browser, server, "amhp", locale="en-US", timezone_id="America/New_York")
    page = amhp.page
    hold = place_hold(server, unit_id(server, "Bristol Place of Safety"), "TIME-1")
    card = page.locator(f"article[data-hold='{hold['id']}']")
    requested = card.get_by_label("Requested")
    save = card.get_by_role("button", name="Save conveyance for TIME-1")

    def sent(typed: str) -> dict:
        requested.fill(typed)
        with page.expect_response(lambda r: r.url.endswith("/conveyance") and r.request.method == "PUT") as answer:
            save.click()
        return answer.value.request.post_data_json

    assert sent("03 Dec 2026, 14:05")["requested_at"] == "2026-12-03T14:05:00Z"  # GMT
    assert sent("3 jul 2026 14:05")["requested_at"] == "2026-07-03T13:05:00Z"  # BST
    requested_at = NOW - timedelta(minutes=25)
    saved = sent(typed(requested_at))
    assert saved["requested_at"] == utc(requested_at)
    card.get_by_text("Ambulance response").wait_for()  # the server took it
    playwright.expect(requested).to_have_value(typed(requested_at))  # shown back the same way

    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    requested.fill("12/03/2026 2:05 PM")
    save.click()
    error = card.locator(f"#c-requested_at-{hold['id']}-error")
    playwright.expect(error).to_have_text(
        "Requested: write the date and time like 03 Dec 2026, 14:05 (London time, 24-hour clock)."
    )
    playwright.expect(requested).to_have_attribute("aria-invalid", "true")
    requested.fill("31 Feb 2026, 10:00")
    save.click()
    playwright.expect(error).to_contain_text("is not a date and time that exists")
    assert puts == []  # nothing was sent
    assert amhp.script_errors() == []


def test_the_conveyance_crew_lands_on_its_page_saves_an_eta_and_sees_others_live(server: str, browser) -> None:
    hold = place_hold(server, unit_id(server, "Bristol Place of Safety"), "CONVEY-1")
    crew = Page(browser, server, "conveyance")
    page = crew.page
    assert page.url.endswith("/conveyance")
    card = page.locator(f"article[data-hold='{hold['id']}']")
    playwright.expect(card.locator("h3")).to_have_text(f"CONVEY-1 → {SUITE}")
    card.get_by_label("Mode").select_option("ambulance")
    eta, later = NOW + timedelta(minutes=45), NOW + timedelta(minutes=55)
    card.get_by_label("ETA").fill(typed(eta))
    card.get_by_role("button", name="Save conveyance for CONVEY-1").click()
    playwright.expect(card.locator("[data-field=eta]")).to_have_text(f"ETA {shown(eta)}")
    saved = hold_status(server, hold)["conveyance"]
    assert (saved["mode"], saved["eta"]) == ("ambulance", utc(eta))

    # The AMHP changes the ETA elsewhere: the crew's page shows it without a reload.
    body = {"mode": "ambulance", "eta": utc(later)}
    response = httpx.put(f"{server}/api/holds/{hold['id']}/conveyance", headers=token(server, "amhp"), json=body)
    assert response.status_code == 200, response.text
    playwright.expect(card.locator("[data-field=eta]")).to_have_text(f"ETA {shown(later)}")
    playwright.expect(card.get_by_label("ETA")).to_have_value(typed(later))
    assert "conveyance.updated" in crew.events

    released = httpx.post(f"{server}/api/holds/{hold['id']}/release", headers=token(server, "amhp"))
    assert released.status_code == 200, released.text
    playwright.expect(card).to_have_count(0)
    playwright.expect(page.locator("#announce")).to_have_text(f"The hold for CONVEY-1 at {SUITE} was released.")
    assert crew.script_errors() == []


def test_a_bed_manager_closes_a_unit_only_for_a_reason_chosen_then_reopens_it(server: str, browser) -> None:
    """An open unit reads "open", not a reason; closing asks why each time (nothing is assumed or sent
    until it is chosen), and the reason shows, on a colleague's board too, until the unit reopens."""
    suite = unit_id(server, "Bristol Place of Safety")
    manager, colleague = Page(browser, server, "bedmanager"), Page(browser, server, "bedmanager")
    page = manager.page
    row = page.locator(f"tr[data-unit='{suite}']")
    playwright.expect(row.locator(".badge.ok", has_text="open")).to_be_visible()
    puts: list[str] = []
    page.on("request", lambda r: puts.append(r.url) if r.method == "PUT" else None)
    row.get_by_role("button", name=f"Close {SUITE}").click()
    playwright.expect(row.get_by_role("alert")).to_have_text("Choose the reason for closing first.")
    assert puts == []
    row.get_by_label(f"Reason to close {SUITE}").select_option("maintenance")
    row.get_by_role("button", name=f"Close {SUITE}").click()
    playwright.expect(row.locator(".badge.bad", has_text="closed")).to_have_text("closed: maintenance")
    seen = colleague.page.locator(f"tr[data-unit='{suite}'] .badge.bad", has_text="closed")
    playwright.expect(seen).to_have_text("closed: maintenance")  # from the live event alone
    closed = httpx.get(f"{server}/api/units/{suite}", headers=token(server, "bedmanager")).json()
    assert (closed["status"], closed["closed_reason"]) == ("closed", "maintenance")
    row.get_by_role("button", name=f"Reopen {SUITE}").click()
    playwright.expect(row.locator(".badge.ok", has_text="open")).to_be_visible()
    assert httpx.get(f"{server}/api/units/{suite}", headers=token(server, "bedmanager")).json()["status"] == "open"
    assert manager.script_errors() == colleague.script_errors() == []


def test_a_bed_manager_admits_directly_without_a_hold(server: str, browser) -> None:
    suite = unit_id(server, "Bristol Place of Safety")
    manager = Page(browser, server, "bedmanager")
    page = manager.page
    form = page.locator("#admit-form")
    form.get_by_label("Unit").select_option(suite)
    form.get_by_label("Person reference").fill("ADMIT-1")
    form.get_by_label("Age").fill("40")
    form.get_by_label("Sex").select_option("male")
    form.get_by_label("Home area").select_option("E06000023")
    form.get_by_label("Legal basis").select_option("s136")
    admitted_at = NOW - timedelta(minutes=20)
    form.get_by_label("Admitted at (blank: now)").fill(typed(admitted_at))
    form.get_by_role("button", name="Admit").click()
    playwright.expect(page.locator("#announce")).to_have_text(f"Admitted ADMIT-1 to {SUITE}.")
    row = page.locator("tr[data-placement]").filter(has_text="ADMIT-1")
    playwright.expect(row).to_contain_text(f"since {shown(admitted_at)}")
    playwright.expect(row.locator(".countdown")).to_have_text(re.compile(r"23 h [34]\d min"))  # started 20 min ago
    playwright.expect(form.get_by_label("Person reference")).to_have_value("")  # ready for the next one
    placed = httpx.get(f"{server}/api/placements", params={"active": "true"}, headers=token(server, "bedmanager"))
    [admitted] = [p for p in placed.json() if p["person"]["ref"] == "ADMIT-1"]
    assert (admitted["unit_id"], admitted["legal_basis"], admitted["hold_id"]) == (suite, "s136", None)
    assert admitted["started_at"] == utc(admitted_at)
    assert admitted["s136_deadline"] == utc(admitted_at + timedelta(hours=24))
    assert manager.script_errors() == []


def record_detention(form, place: str, clock_started: str, ref: str, age: int, sex: str) -> None:
    """Fill in the AMHP's detention form for a person from Bristol, and send it."""
    form.get_by_label("Place", exact=True).select_option(place)
    form.get_by_label("Clock started (arrival at the place)").fill(clock_started)
    form.get_by_label("Person reference").fill(ref)
    form.get_by_label("Age").fill(str(age))
    form.get_by_label("Sex").select_option(sex)
    form.get_by_label("Home area").select_option("E06000023")
    form.get_by_role("button", name="Record detention").click()


def test_an_amhp_records_a_detention_at_an_ed_extends_it_and_a_hold_continues_its_clock(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    form = page.locator("#detention-form")
    form.get_by_label("Name of the place").fill("Bristol Royal Infirmary ED")
    detained_at = NOW - timedelta(hours=8)
    record_detention(form, "emergency_department", typed(detained_at), "ED-1", 34, "female")
    card = page.locator("article[data-detention]").filter(has_text="ED-1")
    playwright.expect(card.locator("h3")).to_have_text(
        f"ED-1 at emergency department (Bristol Royal Infirmary ED), since {typed(detained_at)}"
    )
    playwright.expect(card.locator(".countdown")).to_have_text(re.compile(r"1[56] h \d\d min"))  # 24 h from 8 h ago
    playwright.expect(card).to_contain_text(f"deadline {shown(detained_at + timedelta(hours=24))}")

    card.get_by_role("button", name="Extend the detention of ED-1").click()
    card.get_by_label("Hours (1 to 12)").fill("8")
    card.get_by_label("Authorised by (doctor)").fill("Dr A Registrar")
    card.get_by_label("Reason").select_option("condition_of_person")
    card.get_by_role("button", name="Record the extension").click()
    deadline = detained_at + timedelta(hours=32)
    playwright.expect(card).to_contain_text(f"deadline {shown(deadline)} · extended 8 h (Dr A Registrar)")
    detention_id = card.get_attribute("data-detention")
    detention = httpx.get(f"{server}/api/s136-detentions/{detention_id}", headers=token(server, "amhp")).json()
    assert (detention["detained_at"], detention["deadline"]) == (utc(detained_at), utc(deadline))

    # Moved on to the suite: the hold names the detention, and the person is the detention's.
    suite = unit_id(server, "Bristol Place of Safety")
    page.locator(f"tr[data-unit='{suite}']").get_by_role("button", name="Hold").click()
    page.select_option("#h-detention", detention["detention_id"])
    playwright.expect(page.locator("#h-ref")).to_have_value("ED-1")
    page.get_by_role("button", name="Place hold").click()
    hold_card = page.locator("article[data-hold]").filter(has_text="ED-1")
    hold_card.get_by_role("button", name=f"Arrived: ED-1 at {SUITE}").click()
    clock = page.locator("section[aria-labelledby=clocks-h] tr[data-placement]").filter(has_text="ED-1")
    playwright.expect(clock).to_contain_text(shown(detained_at))  # the ED's clock, never restarted
    playwright.expect(clock).to_contain_text("+8 h (Dr A Registrar)")
    placed = httpx.get(f"{server}/api/placements", params={"active": "true"}, headers=token(server, "amhp")).json()
    [placement] = [p for p in placed if p["person"]["ref"] == "ED-1"]
    assert placement["detention_id"] == detention["detention_id"]
    assert placement["s136_deadline"] == utc(deadline)
    ended = httpx.get(f"{server}/api/s136-detentions/{detention_id}", headers=token(server, "amhp")).json()
    assert ended["outcome"] == "transferred"
    assert amhp.script_errors() == []


def test_a_detention_recorded_and_ended_on_one_page_comes_and_goes_on_another(server: str, browser) -> None:
    """Two AMHPs' pages: one records a detention and later ends it with its outcome (the clock stops);
    the other sees it appear and go without a reload. A move onwards is not an outcome typed here."""
    recorder, colleague = Page(browser, server, "amhp"), Page(browser, server, "amhp")
    detained_at, ended_at = NOW - timedelta(hours=6), NOW - timedelta(minutes=30)
    form = recorder.page.locator("#detention-form")
    record_detention(form, "emergency_department", typed(detained_at), "ED-2", 41, "male")
    seen = colleague.page.locator("article[data-detention]").filter(has_text="ED-2")
    playwright.expect(seen.locator("h3")).to_have_text(f"ED-2 at emergency department, since {typed(detained_at)}")
    playwright.expect(seen).to_contain_text("deadline")

    card = recorder.page.locator("article[data-detention]").filter(has_text="ED-2")
    card.get_by_role("button", name="End the detention of ED-2", exact=True).click()
    outcome = card.get_by_label("Outcome")
    assert "transferred" not in outcome.locator("option").evaluate_all("options => options.map((o) => o.value)")
    card.get_by_role("button", name="Yes, end the detention").click()
    playwright.expect(card).to_contain_text("Choose the outcome of the detention first.")  # nothing was sent
    outcome.select_option("admitted_informal")
    card.get_by_label("Ended at (if earlier)").fill(typed(ended_at))
    card.get_by_role("button", name="Yes, end the detention").click()
    playwright.expect(card).to_have_count(0)
    playwright.expect(recorder.page.locator("#announce")).to_have_text("Detention ended: ED-2, admitted informally.")
    playwright.expect(seen).to_have_count(0)
    [ended] = [
        d
        for d in httpx.get(f"{server}/api/s136-detentions", headers=token(server, "amhp")).json()
        if d["person"]["ref"] == "ED-2"
    ]
    assert (ended["outcome"], ended["ended_at"]) == ("admitted_informal", utc(ended_at))
    assert recorder.script_errors() == colleague.script_errors() == []


def test_a_hold_typed_for_someone_detained_elsewhere_offers_to_continue_their_clock(server: str, browser) -> None:
    """An AMHP types the reference of a person already detained at an ED instead of choosing the detention:
    the form says so, and one click makes the hold continue that detention, so no second clock starts."""
    amhp = Page(browser, server, "amhp")
    page = amhp.page
    detained_at = typed(NOW - timedelta(hours=3))
    record_detention(page.locator("#detention-form"), "emergency_department", detained_at, "ED-3", 52, "female")
    page.locator("article[data-detention]").filter(has_text="ED-3").wait_for()
    suite = unit_id(server, "Bristol Place of Safety")
    page.locator(f"tr[data-unit='{suite}']").get_by_role("button", name="Hold").click()
    warning = page.locator(".hold-form .warning")
    page.locator("#h-ref").fill("ED-")
    playwright.expect(warning).to_have_count(0)
    page.locator("#h-ref").fill("ED-3")
    playwright.expect(warning).to_contain_text(f"Open detention: ED-3 at emergency department, since {detained_at}.")
    warning.get_by_role("button", name="Continue that detention").click()
    playwright.expect(warning).to_have_count(0)
    [detention] = [
        d
        for d in httpx.get(f"{server}/api/s136-detentions", headers=token(server, "amhp")).json()
        if d["person"]["ref"] == "ED-3"
    ]
    playwright.expect(page.locator("#h-detention")).to_have_value(detention["detention_id"])
    playwright.expect(page.locator("#h-age")).to_have_value("52")
    with page.expect_response(lambda r: r.url.endswith("/api/holds") and r.request.method == "POST") as answer:
        page.get_by_role("button", name="Place hold").click()
    assert answer.value.status == 201
    assert answer.value.json()["detention_id"] == detention["detention_id"]
    assert amhp.script_errors() == []


def test_a_child_in_a_police_station_is_recorded_only_as_an_acknowledged_never_event(server: str, browser) -> None:
    amhp = Page(browser, server, "amhp")
    form = amhp.page.locator("#detention-form")
    record_detention(form, "police_station", typed(NOW - timedelta(hours=1)), "CHILD-1", 16, "male")
    refused = form.locator("#d-place-error")
    playwright.expect(refused).to_contain_text("never be a place of safety for a person under 18")
    form.get_by_label("It has happened: record it as a never event").check()
    form.get_by_label("What happened (required)").fill("No suite could be reached")
    form.get_by_role("button", name="Record detention").click()
    card = amhp.page.locator("article[data-detention]").filter(has_text="CHILD-1")
    playwright.expect(card).to_contain_text("Never event: a child kept in a police station.")
    # At a police station the extension needs a superintendent too.
    card.get_by_role("button", name="Extend the detention of CHILD-1").click()
    playwright.expect(card.get_by_label("Superintendent")).to_be_visible()
    recorded = httpx.get(f"{server}/api/s136-detentions", headers=token(server, "amhp")).json()
    [child] = [d for d in recorded if d["person"]["ref"] == "CHILD-1"]
    assert (child["place_type"], child["never_event_acknowledged"]) == ("police_station", True)
    assert amhp.script_errors() == []
