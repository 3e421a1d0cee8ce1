"""CSRF protection for browser sessions only.

A browser authenticates with the session cookie, which it sends by itself, so an unsafe request that
carries that cookie must also carry the CSRF token (Litestar's double-submit CSRF middleware), and so
must the browser's login form. An API client that sends its own `Authorization: Bearer` header, and no
session cookie, has no ambient credential to abuse, so the check is not asked of it.
"""

from __future__ import annotations

from litestar.config.csrf import CSRFConfig
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from capacity.auth.security import SESSION_COOKIE


class BrowserCSRFMiddleware:
    def __init__(self, app: ASGIApp, config: CSRFConfig) -> None:
        self.app = app
        self.csrf = CSRFMiddleware(app, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (scope["path"] in BROWSER_FORMS or _has_session_cookie(scope)):
            await self.csrf(scope, receive, send)
        else:
            await self.app(scope, receive, send)


BROWSER_FORMS = frozenset({"/", "/login", "/logout"})


def _has_session_cookie(scope: Scope) -> bool:
    cookie = next((value for name, value in scope["headers"] if name == b"cookie"), b"")
    return f"{SESSION_COOKIE}=".encode() in cookie


def csrf_config(secret: str, secure: bool) -> CSRFConfig:
    # The page's script reads this cookie and echoes it in the x-csrftoken header, so it is not HttpOnly.
    return CSRFConfig(
        secret=secret,
        cookie_name="capacity_csrf",
        header_name="x-csrftoken",
        cookie_samesite="strict",
        cookie_secure=secure,
    )
