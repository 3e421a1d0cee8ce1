"""The commissioner's page on the demo data: time from login to the trend chart drawn, in Chromium.

The script
  1. makes a SQLite database under a scratch directory, migrated to head, with the demo data set loaded
     now (as `capacity serve --demo` would), and serves it (uvicorn, capacity.app:create_app);
  2. opens Debian's Chromium (Playwright, /usr/bin/chromium) --loads times, each in a fresh browser context
     (no cache, no cookies): the login page, the commissioner's username and password typed, then the
     clock starts at the click on "Log in" and stops when the 12-month trend chart is drawn (uPlot's
     `#trend .u-wrap` in the page, with the chart's data table);
  3. counts, for each load, the report requests the page made (GET /api/reports/...) and how many of those
     were for the trend;
then prints the times (median, slowest; from the click, and from the login's answer, i.e. after the
password check), the report requests per load, and MET/NOT MET for "draws within 1 s" (the slowest
load). Every load is bounded (30 s); the server and browser stop by themselves.

    .venv/bin/python bench/commissioner_page.py [--loads 5] [--js-from REV]

--js-from REV also times commissioner.js as it was at git revision REV (served in its place through the
browser), its loads interleaved with today's: a before/after on the same machine in the same run; the
rest of the app is today's.
The machine is shared (2 cores, other work running): figures are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import HOST, ROOT, capacity_env, database, fresh_database, log, scratch, server  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
AIM_SECONDS = 1.0
TIMEOUT_MS = 30_000
USERNAME, PASSWORD = "commissioner", "demo"


async def demo_database(url: str) -> None:
    from capacity.demo import load_demo

    await fresh_database(url)
    async with database(url) as db:
        assert await load_demo(db, db.clock.now())


def one_load(browser, base: str, old_js: str | None) -> tuple[float, float, float, list[str]]:
    """Seconds from the click on "Log in" to the chart drawn, from the login's answer (the password
    checked, the session cookie set) to the chart drawn, from the click to all four reports shown, and
    the report requests made."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")
    try:
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        if old_js is not None:
            page.route(
                "**/static/js/commissioner.js",
                lambda route: route.fulfill(body=old_js, content_type="text/javascript"),
            )
        reports: list[str] = []
        page.on("request", lambda r: reports.append(r.url) if "/api/reports/" in r.url else None)
        answered: list[float] = []
        page.on(
            "response",
            lambda r: (
                answered.append(time.perf_counter())
                if r.request.method == "POST" and r.url.endswith("/login")
                else None
            ),
        )
        page.goto(f"{base}/")
        page.fill("input[name=username]", USERNAME)
        page.fill("input[type=password]", PASSWORD)
        started = time.perf_counter()
        page.click("button[type=submit]")
        page.wait_for_selector("#trend .u-wrap", state="attached")
        page.wait_for_selector("#trend table", state="attached")
        drawn = time.perf_counter()
        # Then all four reports shown (a section still loading carries aria-busy; older pages have none).
        page.wait_for_function("document.querySelectorAll('section[data-report]:not([aria-busy])').length === 4")
        whole = time.perf_counter()
        assert page.url.endswith("/commissioner"), page.url
        assert len(answered) == 1, answered
        return drawn - started, drawn - answered[0], whole - started, reports
    finally:
        context.close()


@dataclass
class Figures:
    """What the loads of one version of the page measured."""

    name: str
    script: str | None  # None: the file as served
    from_click: list[float] = field(default_factory=list)
    from_login: list[float] = field(default_factory=list)
    whole_page: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    paths: Counter[str] = field(default_factory=Counter)

    def add(self, from_click: float, from_login: float, whole_page: float, reports: list[str]) -> None:
        self.from_click.append(from_click)
        self.whole_page.append(whole_page)
        self.from_login.append(from_login)
        self.requests.append(len(reports))
        self.paths.update(urlsplit(u).path.removeprefix("/api/reports/") for u in reports)

    def print(self) -> None:
        loads = len(self.requests)
        print(f"  {self.name}, {loads} loads:")
        for label, seconds in (("the click on Log in", self.from_click), ("the login's answer", self.from_login)):
            verdict = "MET" if max(seconds) <= AIM_SECONDS else "NOT MET"
            print(
                f"    from {label} to chart drawn: median {statistics.median(seconds) * 1000:.0f} ms, "
                f"slowest {max(seconds) * 1000:.0f} ms, fastest {min(seconds) * 1000:.0f} ms; "
                f"draws within {AIM_SECONDS:.0f} s (slowest load): {verdict}"
            )
        print(
            f"    from the click to all four reports shown: median {statistics.median(self.whole_page) * 1000:.0f} ms, "
            f"slowest {max(self.whole_page) * 1000:.0f} ms"
        )
        per_load = ", ".join(f"{name} {n / loads:g}" for name, n in sorted(self.paths.items()))
        print(f"    report requests per load: {statistics.mean(self.requests):g} ({per_load})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=5, help="page loads to time, of each version (default 5)")
    parser.add_argument("--js-from", metavar="REV", help="also time commissioner.js as at this git revision")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()
    if not 1 <= args.loads <= 50:
        raise SystemExit("--loads is 1 to 50")
    versions = [Figures("commissioner.js as it is", None)]
    if args.js_from:
        old = subprocess.run(
            ["git", "show", f"{args.js_from}:capacity/web/static/js/commissioner.js"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        versions.append(Figures(f"commissioner.js as at {args.js_from}", old))

    from playwright.sync_api import sync_playwright

    with scratch("commissioner-page-", args.keep) as work:
        url = f"sqlite+aiosqlite:///{work / 'demo.db'}"
        log("loading the demo data")
        asyncio.run(demo_database(url))
        env = {**capacity_env(url), "CAPACITY_SECURE_COOKIES": "false"}
        with server(work / "server.log", env) as (port, _pid), sync_playwright() as p:
            base = f"http://{HOST}:{port}"
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                log("one load of each to warm the server up (not counted)")
                for version in versions:
                    one_load(browser, base, version.script)
                for i in range(args.loads):  # interleaved, so that the machine's noise falls on each alike
                    for version in versions:
                        from_click, from_login, whole_page, reports = one_load(browser, base, version.script)
                        version.add(from_click, from_login, whole_page, reports)
                        log(
                            f"{version.name}, load {i + 1}: {from_click * 1000:.0f} ms from the click, "
                            f"{from_login * 1000:.0f} ms from the login's answer, {len(reports)} report requests"
                        )
            finally:
                browser.close()

    print("Commissioner page on the demo data (SQLite, one server process), Debian's Chromium")
    for version in versions:
        version.print()


if __name__ == "__main__":
    main()
