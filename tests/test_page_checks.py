"""Every page on a phone, a tablet and a desktop (issue 14 items 3 and 9), in the system Chromium against a
real server on each engine, with the demo data and a live update drawn: no sideways scrolling at 390 px
(the page no wider than the screen, no element past its right edge, no box scrolling sideways) nor at
768 or 1280 px; every visible control at least 44 by 44 px on a phone; no serious or critical axe-core
violation (tests/vendor/axe-core, run by the tests only: never served); and a screenshot of each page at
each width in artifacts/screenshots/<page>-<width>.png.

The pages are the app's own: every page WebController serves, each as the role that lands on it (or an
admin), each admin section, and /schema, so a page added later is checked without a change here.
CAPACITY_DOCS_SCREENSHOTS=1 also saves each page's first screen on a phone to docs/screenshots/phone/ for the README."""

from __future__ import annotations

import itertools
import os
import re
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from litestar.handlers import HTTPRouteHandler
from litestar.response import Template

from capacity.auth.security import SESSION_COOKIE
from capacity.web.controllers import PAGES, WebController
from support import browser as browser_support
from support.browser import SHOTS, WAIT_MS, Page, playwright, token, unit_id
from support.demo import DEMO_USERS

server, browser = browser_support.server, browser_support.browser  # the fixtures the tests take

PHONE, TABLET, DESKTOP = 390, 768, 1280
WIDTHS = (PHONE, TABLET, DESKTOP)
REPO = Path(__file__).resolve().parent.parent
AXE = REPO / "tests" / "vendor" / "axe-core" / "axe.min.js"
DOCS_SHOTS = REPO / "docs" / "screenshots" / "phone"
# Pages for someone not logged in: the rest are opened as the role that lands on them, or as an admin.
ANONYMOUS = {"/", "/set-password"}
SUITE = "Bristol Place of Safety"


@dataclass
class View:
    """One page in one state: opened at `path` as the demo user of `role` (None: logged out), then `prepare`d."""

    name: str
    path: str
    role: str | None
    prepare: Callable[[Page], None] = field(default=lambda page: None)
    # axe-core rules this view breaks in markup that is not ours, each said below.
    not_ours: frozenset[str] = frozenset()

    @property
    def username(self) -> str | None:
        return None if self.role is None else next(u for u in DEMO_USERS if u == self.role.replace("_", ""))


def app_pages() -> Iterator[tuple[str, str | None]]:
    """(path, role) for every page WebController serves (a GET answered with a Template)."""
    landing: dict[str, str] = {}
    for role, (path, _) in PAGES.items():
        landing.setdefault(path, role)
    for handler in vars(WebController).values():
        if isinstance(handler, HTTPRouteHandler) and typing.get_type_hints(handler.fn).get("return") is Template:
            for path in sorted(handler.paths):
                yield path, None if path in ANONYMOUS else landing.get(path, "admin")


def page_name(path: str) -> str:
    return path.strip("/").replace("/", "-") or "login"


def open_form(section: str) -> Callable[[Page], None]:
    def prepare(page: Page) -> None:
        page.page.goto(f"{page.page.url.split('#')[0]}#{section}")
        page.page.locator(f"#{section} .section-head button").click()
        page.page.locator(f"form[data-form={section}]").wait_for()

    return prepare


def open_hold_form(page: Page) -> None:
    """The AMHP's Hold form open under a result, as when they are about to hold a place."""
    page.page.locator("section[aria-labelledby=results-h] tbody tr button", has_text="Hold").first.click()
    page.page.locator("form.hold-form").wait_for()


def views(base: str) -> list[View]:
    """Every page, each admin section with its form open, and the API documentation."""
    found = []
    for path, role in app_pages():
        if path == "/admin":
            sections = re.findall(r'data-tab="([\w-]+)"', httpx.get(f"{base}/admin").text)
            assert sections, "the admin page names no section"
            found += [View(f"admin-{s}", path, role, open_form(s)) for s in sections]
        elif path == "/amhp":
            found.append(View("amhp", path, role, open_hold_form))
        else:
            found.append(View(page_name(path), path, role))
    docs = View("schema", "/schema", None, lambda page: page.page.locator(".opblock-tag").first.wait_for(), SWAGGER_UI)
    return [*found, docs]


# Swagger UI 5's own markup on /schema, the developers' API documentation (vendored, drawn by its bundle):
# its method badges' colours, a button inside its operation headers' button, its unnamed servers list.
SWAGGER_UI = frozenset({"color-contrast", "nested-interactive", "select-name"})


FIGURES = itertools.count(5)


def hold_on_the_suite(base: str) -> None:
    """A live hold, so the AMHP's page shows its card and the bed manager's board its row."""
    person = {"ref": "CHECK-0001", "age": 30, "sex": "female", "home_area": "E06000023"}
    body = {"unit_id": unit_id(base, SUITE), "purpose": "s136", "person": person}
    response = httpx.post(f"{base}/api/holds", headers=token(base, "amhp"), json=body)
    assert response.status_code == 201, response.text


def live_update(base: str, page: Page) -> None:
    """A bed manager elsewhere declares the suite's places; the page is sent the event and draws it."""
    seen = page.events.count("unit.availability")
    places = next(FIGURES)
    body = {"open_places": places, "status": "open"}
    response = httpx.put(
        f"{base}/api/units/{unit_id(base, SUITE)}/availability", headers=token(base, "bedmanager"), json=body
    )
    assert response.status_code == 200, response.text
    for _ in range(WAIT_MS // 50):
        if page.events.count("unit.availability") > seen:
            break
        page.page.wait_for_timeout(50)
    else:
        raise AssertionError(f"{page.page.url} was not sent the live update")
    # What the pages that show the suite's figure draw of it.
    shows = {
        "/bed-manager": f"tr[data-unit] [data-field=available]:has-text('{places - 1} free')",
        "/amhp": f"tr[data-unit] [data-field=available]:has-text('of {places} free')",
        "/region": f"tr[data-kind=s136_suite] [data-field=open_places]:text-is('{places + 2}')",
        "/admin": f"#units-list [data-field=status]:has-text('open, {places} places')",
    }
    selector = shows.get(page.page.url.removeprefix(base).split("#")[0])
    if selector:
        page.page.locator(selector).first.wait_for(state="attached")


def settled(page: Page) -> None:
    """Until the page has drawn what it reads: no request running, no report loading."""
    page.page.wait_for_load_state("networkidle")
    page.page.wait_for_function("!document.querySelector('[aria-busy=true]')")
    page.page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def open_view(page: Page, base: str, view: View) -> None:
    """The view loaded afresh at the page's width: logged in, prepared, a live update drawn."""
    if view.username is not None and SESSION_COOKIE not in {c["name"] for c in page.context.cookies()}:
        page.log_in(base, view.username)
    page.page.goto(f"{base}{view.path}", wait_until="domcontentloaded", timeout=3 * WAIT_MS)  # a busy machine
    if view.role is not None:
        page.page.wait_for_selector("#live.on")
    view.prepare(page)
    if view.role is not None:
        live_update(base, page)
    settled(page)


# The checks run in the page. An element is named by its tag, id, classes, data- attributes and text.
NAME_JS = """
const nameOf = (e) => {
  let s = e.tagName.toLowerCase() + (e.id ? `#${e.id}` : "") + [...e.classList].map((c) => `.${c}`).join("");
  for (const a of e.attributes) {
    if (a.name.startsWith("data-") || a.name === "aria-label") s += `[${a.name}="${a.value}"]`;
  }
  const text = (e.innerText || e.value || "").trim().replace(/\\s+/g, " ").slice(0, 40);
  return text ? `${s} "${text}"` : s;
};
"""

# Elements past the viewport's right edge (the outermost of each), and boxes that scroll sideways.
OVERFLOW_JS = (
    "() => {"
    + NAME_JS
    + """
  const width = document.documentElement.clientWidth;
  const clipped = (e) => {
    for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
      if (getComputedStyle(p).overflowX !== "visible") return true;
    }
    return false;
  };
  const wide = [], scrolling = [];
  for (const e of document.body.querySelectorAll("*")) {
    const r = e.getBoundingClientRect();
    const style = getComputedStyle(e);
    if (["auto", "scroll"].includes(style.overflowX) && e.scrollWidth > e.clientWidth + 1 && e.tagName !== "PRE") {
      scrolling.push(`${nameOf(e)} scrolls sideways (${e.scrollWidth} px in ${e.clientWidth} px)`);
    }
    if (!r.width || !r.height || r.right <= width + 0.5 || style.visibility === "hidden" || clipped(e)) continue;
    if (wide.some((w) => w.contains(e))) continue;
    wide.push(e);
  }
  return { scrollWidth: document.documentElement.scrollWidth, width,
    problems: [...wide.map((e) => `${nameOf(e)} reaches ${Math.round(e.getBoundingClientRect().right)} px`),
      ...scrolling] };
}"""
)

# Visible controls smaller than 44 x 44 px: a checkbox or radio button by its label; a link inside a
# sentence is text, not a control.
TARGETS_JS = (
    "() => {"
    + NAME_JS
    + """
  const inSentence = (a) => [...a.parentElement.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  const small = [];
  const controls = "button, a[href], select, input:not([type=hidden]), textarea, summary, [role=button]";
  for (const e of document.querySelectorAll(controls)) {
    if (!e.checkVisibility({ visibilityProperty: true })) continue;
    if (e.tagName === "A" && inSentence(e)) continue;
    const target = e.matches("[type=checkbox], [type=radio]") ? e.closest("label") || e.labels?.[0] || e : e;
    const r = target.getBoundingClientRect();
    if (r.width < 2 || r.height < 2 || r.right <= 0) continue;  // off screen until focused (the skip link)
    const size = `${Math.round(r.width)}x${Math.round(r.height)} px`;
    if (r.width < 43.5 || r.height < 43.5) small.push(`${nameOf(e)} is ${size}`);
  }
  return small;
}"""
)


# Buttons in rows, cards and list items (a unit's, a hold's, a user's) that share one accessible name: each
# of several "Hold" or "Decline" buttons must say which unit or hold it acts on.
SAME_NAMES_JS = (
    "() => {"
    + NAME_JS
    + """
  const named = new Map();
  for (const e of document.querySelectorAll(":is(tr, li, article) button")) {
    if (!e.checkVisibility({ visibilityProperty: true })) continue;
    const by = e.getAttribute("aria-labelledby");
    const name = (e.getAttribute("aria-label") || (by && document.getElementById(by)?.textContent)
      || [...(e.labels || [])].map((l) => l.textContent).join(" ") || e.textContent || "").trim().replace(/\\s+/g, " ");
    named.set(name, [...(named.get(name) || []), e]);
  }
  return [...named].filter(([, all]) => all.length > 1)
    .map(([name, all]) => `${all.length} controls are all called "${name}": ${all.slice(0, 3).map(nameOf).join(", ")}`);
}"""
)


def overflow(page: Page) -> list[str]:
    found = page.page.evaluate(OVERFLOW_JS)
    problems = found["problems"]
    if found["scrollWidth"] > found["width"]:
        problems.insert(0, f"the page is {found['scrollWidth']} px wide")
    return problems


def axe_violations(page: Page, not_ours: frozenset[str] = frozenset()) -> list[str]:
    """axe-core's serious and critical violations: each rule, what it says and the elements it found."""
    if not page.page.evaluate("typeof window.axe !== 'undefined'"):
        page.page.add_script_tag(path=str(AXE))
    results = page.page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}: {v['help']}): {', '.join(' '.join(n['target']) for n in v['nodes'][:8])}"
        for v in results["violations"]
        if v["impact"] in ("serious", "critical") and v["id"] not in not_ours
    ]


def check_every_view(server: str, browser, widths, check: Callable[[Page, View, int], list[str]]) -> None:
    """Each view at each width, every problem `check` finds collected, then all of them said at once."""
    hold_on_the_suite(server)
    failures = []
    for view in views(server):
        page = Page(browser, server, None, width=widths[0])
        for width in widths:  # one login per view: the page is loaded again at each width
            page.page.set_viewport_size({"width": width, "height": 900})
            try:
                open_view(page, server, view)
            except playwright.Error as e:
                failures.append(f"{view.name} at {width} px: did not open: {e.message.splitlines()[0]}")
            else:
                failures += [f"{view.name} at {width} px: {p}" for p in check(page, view, width)]
        failures += [f"{view.name}: script error {e}" for e in page.script_errors()]
        page.context.close()
    assert not failures, "\n".join(failures)


def test_no_page_scrolls_sideways_and_every_control_is_a_finger_wide_on_a_phone(server: str, browser) -> None:
    def check(page: Page, view: View, width: int) -> list[str]:
        problems = overflow(page)
        if width == PHONE and not view.not_ours:  # Swagger UI's controls are its own size
            problems += page.page.evaluate(TARGETS_JS)
        return problems

    check_every_view(server, browser, WIDTHS, check)


def test_no_page_has_a_serious_accessibility_violation_and_each_control_says_what_it_acts_on(
    server: str, browser
) -> None:
    def check(page: Page, view: View, width: int) -> list[str]:
        same = [] if view.not_ours else page.page.evaluate(SAME_NAMES_JS)  # not Swagger UI's
        return axe_violations(page, view.not_ours) + same

    check_every_view(server, browser, (PHONE, DESKTOP), check)


def test_a_screenshot_of_every_page_at_every_width(server: str, browser) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    docs = os.environ.get("CAPACITY_DOCS_SCREENSHOTS") == "1"

    def shoot(page: Page, view: View, width: int) -> list[str]:
        path = SHOTS / f"{view.name}-{width}.png"
        page.page.screenshot(path=str(path), full_page=True)
        if docs and width == PHONE:  # the README's: the first screen of each, to keep them small
            DOCS_SHOTS.mkdir(parents=True, exist_ok=True)
            page.page.evaluate("window.scrollTo(0, 0)")
            page.page.screenshot(path=str(DOCS_SHOTS / f"{view.name}.png"))
        return [] if path.stat().st_size > 0 else [f"no screenshot in {path}"]

    check_every_view(server, browser, WIDTHS, shoot)
    assert {p.name for p in SHOTS.glob("*-390.png")} >= {f"{v.name}-390.png" for v in views(server)}
