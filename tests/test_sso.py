"""Single sign-on (issue 12 item 6) end to end in a real Chromium, against a real OpenID provider
(panva's oidc-provider, OpenID Certified, tests/oidc_provider/) that the test starts on loopback.

A person the provider signs in comes into capacity only as a user an admin made, matched by the subject
or the verified e-mail address the admin recorded: roles and scope stay capacity's, an unknown or
inactive person is refused in words, and nobody is created."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from support import browser as browser_support
from support.browser import Page, demo_database, playwright, running_server, wait_until_answering
from support.live_server import free_port

browser = browser_support.browser
expect = playwright.expect

PROVIDER_DIR = Path(__file__).resolve().parent / "oidc_provider"
NODE, NPM = shutil.which("node"), shutil.which("npm")
if not (NODE and NPM):
    if os.environ.get("CI") == "true":
        raise RuntimeError("CI must run the single sign-on tests: install Node.js and npm")
    pytest.skip("Node.js is not installed: no OpenID provider to sign in at", allow_module_level=True)

CLIENT_ID, CLIENT_SECRET = "capacity", "capacity-test-client-secret"
# The people the provider knows: subject -> the claims it asserts about them.
ACCOUNTS = {
    "cis2-amhp-0001": {"email": "A.Hale@nhs.net", "email_verified": True},  # matched by e-mail (any case)
    "cis2-bm-0002": {},  # no e-mail at all: matched by the subject an admin recorded
    "cis2-unverified": {"email": "a.hale@nhs.net", "email_verified": False},  # the AMHP's address, unproven
    "cis2-stranger": {"email": "stranger@nhs.net", "email_verified": True},  # no capacity account
    "cis2-leaver": {"email": "leaver@nhs.net", "email_verified": True},  # an account, deactivated
}


@contextmanager
def openid_provider(redirect_uri: str) -> Iterator[str]:
    """The provider on a free loopback port, its one client being capacity at `redirect_uri`."""
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").exists():
        subprocess.run([NPM, "ci", "--no-audit", "--no-fund"], cwd=PROVIDER_DIR, check=True, capture_output=True)
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_URI": redirect_uri,
        "ACCOUNTS": json.dumps(ACCOUNTS),
    }
    process = subprocess.Popen([NODE, "server.mjs"], cwd=PROVIDER_DIR, env=env, stdout=subprocess.PIPE, text=True)
    issuer = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{issuer}/.well-known/openid-configuration", process, "the OpenID provider")
        yield issuer
    finally:
        process.terminate()
        process.wait(timeout=10)


def admin_token(base: str) -> dict[str, str]:
    token = httpx.post(f"{base}/api/auth/token", json={"username": "admin", "password": "demo"}).json()
    return {"Authorization": f"Bearer {token['access_token']}"}


def record(base: str, username: str, **fields: object) -> None:
    """What an admin records on a user for single sign-on, through the admin API."""
    answer = httpx.patch(f"{base}/api/admin/users/{username}", json=fields, headers=admin_token(base))
    assert answer.status_code == 200, answer.text


@pytest.fixture(params=browser_support.ENGINES)
def sso(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """capacity, with single sign-on at a provider of the test's own; the demo's AMHP recorded by e-mail,
    its bed manager by subject and the conveyance user (deactivated) by e-mail."""
    url = demo_database(request, tmp_path)
    port = free_port()
    with openid_provider(f"http://127.0.0.1:{port}/login/oidc/callback") as issuer:
        settings = {
            "CAPACITY_OIDC_ISSUER": issuer,
            "CAPACITY_OIDC_CLIENT_ID": CLIENT_ID,
            "CAPACITY_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
        with running_server(url, port, **settings) as base:
            record(base, "amhp", email="a.hale@nhs.net")
            record(base, "bedmanager", oidc_subject="cis2-bm-0002")
            record(base, "conveyance", email="leaver@nhs.net", active=False)
            yield base


def sign_in(visitor: Page, base: str, subject: str) -> None:
    """Through capacity's login page to the provider's sign-in and consent, and back."""
    page = visitor.page
    page.goto(f"{base}/")
    page.get_by_role("link", name="Sign in with single sign-on").click()
    page.fill("input[name=login]", subject)
    page.fill("input[name=password]", "anything")  # the provider's development login takes any
    page.get_by_role("button", name="Sign-in").click()
    consent = page.get_by_role("button", name="Continue")
    consent.wait_for()
    page.wait_for_load_state("load")
    visitor.errors.clear()  # the provider's own pages ask the internet for fonts: not capacity's errors
    consent.click()  # consent to share the e-mail address
    page.wait_for_url(f"{base}/**")


def me(page) -> dict:
    return page.evaluate("fetch('/api/me').then((r) => r.json())")


def test_a_person_is_matched_by_verified_email_or_recorded_subject_and_keeps_their_capacity_role(
    sso: str, browser
) -> None:
    amhp = Page(browser, sso, None)
    sign_in(amhp, sso, "cis2-amhp-0001")
    assert amhp.page.url == f"{sso}/amhp"
    amhp.page.wait_for_selector("#live.on")  # the session works for the API and the live stream
    assert {k: me(amhp.page)[k] for k in ("username", "role")} == {"username": "amhp", "role": "amhp"}

    manager = Page(browser, sso, None)
    sign_in(manager, sso, "cis2-bm-0002")
    assert manager.page.url == f"{sso}/bed-manager"
    manager.page.wait_for_selector("#live.on")
    assert me(manager.page)["username"] == "bedmanager"
    assert not amhp.script_errors() and not manager.script_errors()


@pytest.mark.parametrize(
    ("subject", "says"),
    [
        ("cis2-stranger", "there is no capacity account for you (stranger@nhs.net)"),
        ("cis2-unverified", "there is no capacity account for you"),  # an unproven address matches nobody
        ("cis2-leaver", "your capacity account is not active"),
    ],
)
def test_an_unknown_unverified_or_inactive_person_is_refused_in_words_and_nobody_is_created(
    sso: str, browser, subject: str, says: str
) -> None:
    visitor = Page(browser, sso, None)
    sign_in(visitor, sso, subject)
    page = visitor.page
    assert urlsplit(page.url).path == "/login/oidc/callback"
    expect(page.locator("#sso-error")).to_contain_text(says)
    assert me(page).get("status") == 401  # no session was made
    users = httpx.get(f"{sso}/api/admin/users", headers=admin_token(sso)).json()
    assert {u["username"] for u in users} == {"admin", "amhp", "bedmanager", "commissioner", "conveyance"}


def test_a_provider_answer_that_did_not_start_in_this_browser_is_refused(sso: str, browser) -> None:
    """Login CSRF: a callback URL carried to another browser (or replayed) never makes a session there."""
    visitor = Page(browser, sso, None)
    page = visitor.page
    answers: list[str] = []
    page.on("request", lambda r: answers.append(r.url) if "/login/oidc/callback" in r.url else None)
    sign_in(visitor, sso, "cis2-amhp-0001")
    assert page.url == f"{sso}/amhp"
    callback = answers[0]
    assert parse_qs(urlsplit(callback).query)["state"]

    replayed = page.context.new_page()
    replayed.goto(callback)  # the same browser again: its attempt was spent by the first use
    expect(replayed.locator("#sso-error")).to_contain_text("start again")

    elsewhere = Page(browser, sso, None).page
    answer = elsewhere.goto(callback)
    assert answer is not None and answer.status == 403
    assert me(elsewhere).get("status") == 401


def test_without_single_sign_on_set_up_there_is_no_button_and_no_route(server: str) -> None:
    assert "single sign-on" not in httpx.get(f"{server}/").text
    assert httpx.get(f"{server}/login/oidc").status_code == 404


server = browser_support.server
