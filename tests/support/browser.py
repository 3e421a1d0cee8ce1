"""What the browser tests share: a real server on a fresh demo database with its clock started at NOW, the
system Chromium through Playwright, and a logged-in page that records every JavaScript error it sees.

A test module takes the fixtures by importing them: `from support.browser import browser, server`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from capacity.cli import migrate_to_head
from support.demo import PG_URL, load_demo, reset_postgres
from support.live_server import free_port
from support.processes import uvicorn_command

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must run the browser tests: install Debian's chromium")
    pytest.skip("the system Chromium is not installed", allow_module_level=True)

SHOTS = Path(__file__).resolve().parent.parent.parent / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 10_000
LONDON = ZoneInfo("Europe/London")
# The instant the server's clock and every page's clock start at: pages show dates, periods and
# countdowns, so the tests must not depend on the day they run. Any instant can be tried, e.g.
# CAPACITY_TEST_NOW=2026-03-29T00:30:00+00:00 (a clock-change Sunday) or the 12th of a month.
NOW = datetime.fromisoformat(os.environ.get("CAPACITY_TEST_NOW", "2026-12-01T09:30:00+00:00")).astimezone(UTC)


def demo_database(request: pytest.FixtureRequest, tmp_path: Path, now: datetime = NOW) -> str:
    """A fresh demo database confirmed at `now`, on the engine the test is parametrised with."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'ui.db'}"
        migrate_to_head(url)
        asyncio.run(load_demo(url, now))
        return url
    url = request.getfixturevalue("postgres_url")
    asyncio.run(reset_postgres(url, demo_at=now))
    return url


ENGINES = ["sqlite"] + (["postgres"] if PG_URL else [])


@contextmanager
def running_server(url: str, port: int | None = None, now: datetime = NOW, **settings: str) -> Iterator[str]:
    """A real server on `url`, its clock started at `now`, with any further CAPACITY_* settings. Its public
    URL is its own address, so the one-time links it makes open on it."""
    port = port or free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "CAPACITY_DATABASE_URL": url,
        "CAPACITY_SECRET_KEY": "ui-test-key-" + "x" * 40,
        "CAPACITY_SECURE_COOKIES": "false",
        "CAPACITY_PUBLIC_URL": base,
        "CAPACITY_TEST_NOW": now.isoformat(),
        **settings,
    }
    env.pop("CAPACITY_REDIS_URL", None)
    tests = str(Path(__file__).resolve().parent.parent)  # where support.page_server is found
    process = subprocess.Popen(uvicorn_command("support.page_server:create_app", port, "--app-dir", tests), env=env)
    try:
        # A minute: on a loaded machine (2 cores, several test runs) starting the app alone takes 15 s.
        wait_until_answering(f"{base}/health", process, "the server", seconds=60)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=10)


def wait_until_answering(url: str, process: subprocess.Popen, what: str, seconds: float = 20) -> None:
    """Until `url` answers 200; a RuntimeError if `process` ends first or it takes longer."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.1)


@pytest.fixture(params=ENGINES)
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A real server on a fresh demo database confirmed at NOW, its clock started at NOW."""
    with running_server(demo_database(request, tmp_path)) as base:
        yield base


@pytest.fixture
def browser() -> Iterator:
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Page:
    """A page in a fresh browser context (UK locale, its clock started at `now`, NOW unless said) that
    records every JavaScript error it sees and the type of every live event it is sent; logged in as
    `username` unless that is None. `locale` and `timezone_id` try a browser set up elsewhere."""

    def __init__(
        self,
        browser,
        base: str,
        username: str | None,
        width: int = 1280,
        password: str = "demo",
        locale: str = "en-GB",
        timezone_id: str = "Europe/London",
        now: datetime = NOW,
    ) -> None:
        self.context = browser.new_context(
            viewport={"width": width, "height": 900}, locale=locale, timezone_id=timezone_id
        )
        self.page = self.context.new_page()
        self.page.clock.install(time=now)  # then it runs at the real rate, as the server's does
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.events: list[str] = []
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._event))
        if username is not None:
            self.log_in(base, username, password)

    def log_in(self, base: str, username: str, password: str = "demo") -> None:
        self.page.goto(f"{base}/")
        self.page.fill("input[name=username]", username)
        self.page.fill("input[type=password]", password)
        self.page.click("button[type=submit]")
        self.page.wait_for_selector("#live.on")

    def _event(self, payload: str | bytes) -> None:
        self.events.append(json.loads(payload)["type"])

    def shot(self, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def script_errors(self) -> list[str]:
        """The errors, less Chromium's console line for each answer of 409 or 422 that a page asked for and
        shows in words (a form's mistake)."""
        expected = re.compile(r"Failed to load resource: the server responded with a status of (409|422)\b")
        return [e for e in self.errors if not expected.match(e)]

    def page_width(self) -> int:
        """How wide the page is drawn: wider than the viewport means horizontal scrolling."""
        return self.page.evaluate("document.documentElement.scrollWidth")


def token(base: str, username: str, password: str = "demo") -> dict[str, str]:
    # A login checks a password hash: slow on a loaded machine, hence more than httpx's 5 s.
    response = httpx.post(f"{base}/api/auth/token", json={"username": username, "password": password}, timeout=60)
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def unit_id(base: str, name_start: str) -> str:
    units = httpx.get(f"{base}/api/units", headers=token(base, "admin")).json()
    return next(u["id"] for u in units if u["name"].startswith(name_start))
