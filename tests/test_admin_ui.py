"""The admin pages (/admin) in a real Chromium, on each engine: an admin sets up a provider, a unit and a
bed manager; the bed manager sets a password through the one-time link, logs in and opens the unit; an
AMHP sees it change live. Forms say what is wrong next to the field, in words, and keep what was typed;
destructive actions ask first; the pages fit a phone."""

from __future__ import annotations

import re

from support import browser as browser_support
from support.browser import Page, playwright

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

expect = playwright.expect
PROVIDER = "Harbourside Crisis Care (test)"
UNIT = "Harbourside Crisis House (test)"
BRISTOL = "Bristol (E06000023)"
PASSWORD = "harbour lantern drifting quietly"


def tab(page, name: str) -> None:
    page.get_by_role("navigation", name="Administration").get_by_role("link", name=name).click()
    expect(page.locator(f"#{name.lower()}")).to_be_visible()


def submit(page, section: str) -> None:
    page.locator(f"form[data-form={section}] button[type=submit]").click()


def test_admin_sets_up_a_unit_whose_bed_manager_opens_it_for_an_amhp_live(server: str, browser) -> None:
    admin = Page(browser, server, "admin")
    page = admin.page
    assert page.url == f"{server}/admin"  # admins land on their own page
    expect(page.get_by_role("link", name="Bed manager board")).to_have_attribute("href", "/bed-manager")
    # Users are listed with their areas' names, whichever list the page had first.
    expect(page.locator("#users-list li", has_text="commissioner")).to_contain_text("Bath and North East Somerset")

    # A provider.
    tab(page, "Providers")
    page.get_by_role("button", name="Add a provider").first.click()
    page.fill("#providers-f-name", PROVIDER)
    page.select_option("#providers-f-sector", "voluntary")
    page.fill("#providers-f-ods_code", "hx1")  # lower case: not an ODS code
    submit(page, "providers")
    expect(page.locator("#providers-f-ods_code-error")).to_have_text(
        "An ODS code is 3 to 10 capital letters or digits, like RVN."
    )
    page.fill("#providers-f-ods_code", "HX1")
    submit(page, "providers")
    expect(page.locator("#providers-list li", has_text=PROVIDER)).to_contain_text("ODS HX1")
    page.fill("#providers-q", "harbour")  # filtered in the page
    expect(page.locator("#providers-list li")).to_have_count(1)

    # A unit for it, in Bristol, taking people from Bristol; two mistakes first, each named at its field.
    tab(page, "Units")
    page.get_by_role("button", name="Add a unit").first.click()
    form = page.locator("form[data-form=units]")
    page.fill("#units-f-name", UNIT)
    page.select_option("#units-f-kind", "crisis_house")
    page.select_option("#units-f-provider_id", label=PROVIDER)
    page.select_option("#units-f-area_code", "E06000023")
    expect(page.locator("#units-f-lat")).not_to_have_value("")  # the area's centre, until one is typed
    page.fill("#units-f-lat", "70")
    page.fill("#units-f-min_age", "18")
    page.fill("#units-f-max_age", "16")
    form.locator("fieldset[data-field=accepts_from_areas]").get_by_label(BRISTOL).check()
    form.locator("fieldset[data-field=local_to_areas]").get_by_label(BRISTOL).check()
    submit(page, "units")
    expect(page.locator("#units-f-lat-error")).to_have_text(
        "Enter a latitude between 49 and 61 (in the UK), like 51.4545."
    )
    expect(page.locator("#units-f-lat")).to_have_attribute("aria-invalid", "true")
    page.fill("#units-f-lat", "51.4545")
    submit(page, "units")
    max_age_error = page.locator("#units-f-max_age-error")
    expect(max_age_error).to_have_text("The maximum age must not be below the minimum age.")
    expect(page.locator("#units-f-max_age")).to_have_attribute("aria-describedby", "units-f-max_age-error")
    expect(page.locator("#units-f-lat-error")).to_be_hidden()
    assert "Expected" not in form.inner_text()
    expect(page.locator("#units-f-name")).to_have_value(UNIT)  # nothing typed is lost
    page.fill("#units-f-max_age", "")
    submit(page, "units")
    item = page.locator("#units-list li", has_text=UNIT)
    expect(item.locator("[data-field=status]")).to_have_text("closed")
    unit = item.get_attribute("data-unit")
    assert unit
    page.fill("#units-q", "harbourside")  # searched by the server
    expect(page.locator("#units-list li")).to_have_count(1)

    # A bed manager for the provider: the one-time link is shown once, with a warning and a copy button.
    tab(page, "Users")
    page.get_by_role("button", name="Add a user").first.click()
    page.fill("#users-f-username", "bm.harbour")
    page.fill("#users-f-display_name", "Harbour Bed Manager")
    page.select_option("#users-f-role", "bed_manager")
    page.select_option("#users-f-provider_id", label=PROVIDER)
    submit(page, "users")
    panel = page.get_by_role("region", name="One-time link for Harbour Bed Manager (bm.harbour)")
    expect(panel).to_contain_text("only")
    link = panel.locator("#one-time-link").input_value()
    assert re.fullmatch(re.escape(server) + r"/set-password#token=[\w-]{20,}", link)
    expect(
        panel.get_by_role("button", name="Copy the one-time link for Harbour Bed Manager (bm.harbour)")
    ).to_be_visible()
    expect(page.locator("#users-list li[data-user='bm.harbour']")).to_contain_text("no password yet")
    admin.shot("admin")
    panel.get_by_role("button", name="Done: I have given it").click()
    expect(page.locator("#one-time-link")).to_have_count(0)

    # The bed manager, in a browser of their own, sets a password through the link and logs in.
    manager = Page(browser, server, None)
    manager.page.goto(link)
    manager.page.fill("#password", PASSWORD)
    manager.page.fill("#confirm", PASSWORD)
    manager.page.get_by_role("button", name="Set password").click()
    expect(manager.page.locator("#done")).to_be_visible()
    # Setting a password revokes the user's tokens by the second: a login in that same second is refused.
    manager.page.wait_for_timeout(1100)
    manager.log_in(server, "bm.harbour", PASSWORD)
    assert manager.page.url == f"{server}/bed-manager"

    # An AMHP searching for a crisis house for a Bristol resident sees it closed, then open, with no reload.
    amhp = Page(browser, server, "amhp")
    # The finder redraws its search form as its first reads land (issue 14): choose once they have.
    amhp.page.locator("section[aria-labelledby=clocks-h]").wait_for()
    amhp.page.wait_for_load_state("networkidle")
    amhp.page.select_option("#s-kind", "crisis_house")
    amhp.page.select_option("#s-home", "E06000023")
    amhp.page.select_option("#s-near", "E06000023")
    amhp.page.click("#search-form button[type=submit]")
    found = amhp.page.locator(f"section[aria-labelledby=results-h] tr[data-unit='{unit}']")
    expect(found).to_contain_text(UNIT)
    expect(found).to_contain_text("closed")

    row = manager.page.locator(f"tr[data-unit='{unit}']")
    row.get_by_role("button", name="Reopen").click()
    manager.page.wait_for_selector("#announce:has-text('saved')")
    row.get_by_role("spinbutton", name=f"Open places at {UNIT}").fill("2")
    row.get_by_role("button", name="Save").click()
    expect(row.locator("[data-field=available]")).to_have_text("2 free")
    expect(found.locator("[data-field=available]")).to_have_text("2 of 2 free")
    expect(item.locator("[data-field=status]")).to_have_text("open, 2 places")  # the admin's list, live too

    # Retiring asks first; cancelled, nothing changes; confirmed, the unit is retired.
    tab(page, "Units")
    item.get_by_role("button", name=f"Retire {UNIT}").click()
    confirm = item.get_by_role("group", name=f"Confirm: retire {UNIT}")
    expect(confirm).to_contain_text("history and reports stay")
    confirm.get_by_role("button", name="Cancel").click()
    expect(confirm).to_have_count(0)
    expect(item).not_to_contain_text("retired")
    item.get_by_role("button", name=f"Retire {UNIT}").click()
    confirm.get_by_role("button", name=f"Yes, retire {UNIT}").click()
    expect(item).to_contain_text("retired")
    expect(item.get_by_role("button", name=f"Reactivate {UNIT}")).to_be_visible()
    assert admin.script_errors() == [] and manager.errors == [] and amhp.errors == []


def test_admin_pages_fit_a_phone_and_ask_before_deactivating(server: str, browser) -> None:
    admin = Page(browser, server, "admin", width=390)
    page = admin.page
    for name in ("Users", "Providers", "Units", "Areas"):
        tab(page, name)
        page.locator(f"#{name.lower()} .section-head button").click()
        page.locator(f"form[data-form={name.lower()}]").wait_for()
        assert admin.page_width() <= 390, f"{name} is wider than a phone"
        admin.shot(f"admin-{name.lower()}-phone")

    # An open form keeps what was typed when another is asked for.
    tab(page, "Areas")
    page.fill("#areas-f-name", "Half typed")
    page.locator("#areas-list li", has_text="Bristol").get_by_role("button", name="Edit Bristol", exact=True).click()
    expect(page.locator("form[data-form=areas]")).to_contain_text("Save or cancel this form first")
    expect(page.locator("#areas-f-name")).to_have_value("Half typed")
    page.locator("form[data-form=areas]").get_by_role("button", name="Cancel").click()

    # Deactivating a user asks first, saying what it does.
    tab(page, "Users")
    page.fill("#users-q", "commiss")
    user = page.locator("#users-list li[data-user=commissioner]")
    expect(page.locator("#users-list li")).to_have_count(1)
    user.get_by_role("button", name="Deactivate").click()
    confirm = user.locator(".confirm")
    expect(confirm).to_contain_text("signed out at once")
    assert admin.page_width() <= 390
    confirm.get_by_role("button", name=re.compile("^Yes, deactivate")).click()
    expect(user).to_contain_text("deactivated")
    # An admin cannot deactivate themselves: the reason is shown by their row.
    page.fill("#users-q", "admin")
    me = page.locator("#users-list li[data-user=admin]")
    me.get_by_role("button", name="Deactivate").click()
    me.locator(".confirm").get_by_role("button", name=re.compile("^Yes, deactivate")).click()
    expect(me.locator(".error")).to_have_text("You cannot deactivate or demote yourself: another admin must do it.")
    assert admin.script_errors() == []
