"""The API docs at /schema in a real Chromium with every request not to the test server aborted: Swagger UI
from the app's own files draws every operation, and the page asks for nothing from anywhere else."""

from __future__ import annotations

from urllib.parse import urlsplit

from support import browser as browser_support
from support.browser import SHOTS, WAIT_MS, playwright

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

expect = playwright.expect


def test_the_docs_draw_with_the_network_blocked(server: str, browser) -> None:
    own = urlsplit(server).netloc
    asked: list[str] = []
    aborted: list[str] = []
    failed: list[str] = []

    def route(r) -> None:
        url = r.request.url
        asked.append(url)
        if urlsplit(url).netloc == own or url.startswith("data:"):
            r.continue_()
        else:
            aborted.append(url)
            r.abort()

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.route("**/*", route)

    page.goto(f"{server}/schema")
    # The operations are drawn: a tag, a path and an operation's summary.
    expect(page.locator(".opblock-tag", has_text="Reports").first).to_be_visible()
    expect(page.locator(".opblock-summary-path", has_text="/api/holds/{hold_id}/release").first).to_be_visible()
    expect(page.get_by_text("Out-of-area placements: started, ended").first).to_be_visible()
    # Open one: its error responses are listed, as problem details.
    page.locator(".opblock-summary-path", has_text="/api/holds/{hold_id}/release").first.click()
    block = page.locator(".opblock.is-open")
    for status in ("401", "403", "404", "409", "422", "503"):
        expect(block.locator(f"tr.response[data-code='{status}']")).to_be_visible()
    expect(block.locator("tr.response[data-code='409'] select").first).to_have_value("application/problem+json")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "schema.png"))

    assert aborted == [], f"the docs asked for something from elsewhere: {aborted}"
    assert failed == [], failed
    assert errors == [], errors
    paths = {urlsplit(u).path for u in asked}
    assert {
        "/schema",
        "/static/vendor/swagger-ui/swagger-ui-bundle.js",
        "/static/vendor/swagger-ui/swagger-ui.css",
    } <= (paths)
    context.close()
