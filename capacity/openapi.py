"""The OpenAPI document's UI and its error responses, each said once.

- `/schema` is Swagger UI from the app's own copy (static/vendor/swagger-ui, see its VERSION): no script,
  style sheet, font or icon is fetched from anywhere but this server, so the docs work offline.
- `document_errors(app)` gives every operation the RFC 9457 problem details it can really answer
  (capacity/errors.py), by one rule per status below, applied to every route when the app is built, so
  no controller lists them by hand and a new route gets them too.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Litestar, Request
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute

from capacity.auth.security import PUBLIC_PATHS

PROBLEM_JSON = "application/problem+json"
SWAGGER = "/static/vendor/swagger-ui"


class SwaggerUI(SwaggerRenderPlugin):
    """Litestar's Swagger UI page, on the vendored bundle and style sheet. Its page also loads Swagger's
    standalone preset, which it never uses (it asks for `SwaggerUIBundle.SwaggerUIStandalonePreset`, not
    the preset's global), so that tag is dropped rather than a third file vendored."""

    _UNUSED_PRESET = "/schema/swagger-ui-standalone-preset.js"

    def __init__(self) -> None:
        super().__init__(
            js_url=f"{SWAGGER}/swagger-ui-bundle.js",
            css_url=f"{SWAGGER}/swagger-ui.css",
            standalone_preset_js_url=self._UNUSED_PRESET,
            favicon='<link rel="icon" href="data:,">',  # Litestar's default icon is on a CDN
            path="/",
        )

    def render(self, request: Request, openapi_schema: dict[str, Any]) -> bytes:
        page = super().render(request, openapi_schema)
        tag = f'<script src="{self._UNUSED_PRESET}" crossorigin></script>'.encode()
        start = b"<!DOCTYPE html><html>"
        assert tag in page and page.startswith(start), "Litestar's Swagger page changed: check what it loads"
        # Its language said, for screen readers (axe-core's html-has-lang).
        return b'<!DOCTYPE html><html lang="en-GB">' + page[len(start) :].replace(tag, b"")


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="capacity",
        version="0.1.0",
        description="Live booking of mental-health crisis places in England. Every error is RFC 9457 problem "
        "details (`application/problem+json`).",
        path="/schema",  # the document stays at /schema/openapi.json
        render_plugins=[SwaggerUI()],
        components=Components(security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}),
    )


# --- the problem details every error is (capacity/errors.py) -------------------------------------------


class FieldError(msgspec.Struct):
    field: str
    message: str
    source: str | None = None


class Problem(msgspec.Struct, kw_only=True):
    """RFC 9457 problem details, as capacity/errors.py writes them."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None  # the input a 4xx is about (422: always)
    errors: list[FieldError] | None = None  # each field that is wrong, with its message


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        data_container=Problem, description=description, media_type=PROBLEM_JSON, generate_examples=False
    )


# The rules: (status, description, applies to (method, path, route, handler)).
_PUBLIC = [re.compile(p) for p in PUBLIC_PATHS]
# The login is public but refuses a wrong password (401) and throttles failed logins (429).
_LOGIN = ("POST", "/api/auth/token")
# The writes that can meet a conflicting state (409, capacity.errors.Conflict): the booking journey's (no
# place left, a hold no longer held, a detention already extended or ended, ...) and the administration of
# people and reference data (a code or username taken, an admin demoting themselves, a deactivated user's
# link). Other writes never conflict: one's own credentials, a unit's declared figures (taken as they
# are, whatever the holds), a provider's escalation level, the crisis alternatives.
_CONFLICTS = re.compile(r"^/api/(holds|placements|s136-detentions|admin/(users|units|areas|providers))(/|$)")
_WRITES = {"POST", "PUT", "PATCH", "DELETE"}
# A one-time link that is spent or expired is gone (410).
_ONE_TIME_LINKS = {("POST", "/api/auth/set-password")}
# What Litestar passes to a handler that is not the request's input.
_NOT_INPUT = {"request", "state", "scope", "socket", "headers", "cookies", "query", "body"}


def _public(path: str) -> bool:
    return any(p.match(path) for p in _PUBLIC)


def _takes_input(route: HTTPRoute, handler: Any) -> bool:
    """The operation reads a body, a query, header or path parameter: it can be invalid."""
    dependencies = set(handler.resolve_dependencies())
    names = set(handler.parsed_fn_signature.parameters) - _NOT_INPUT - dependencies
    return bool(names or route.path_parameters)


def error_responses(method: str, path: str, route: HTTPRoute, handler: Any) -> dict[int, ResponseSpec]:
    """The problem details this operation can answer, by status."""
    public = _public(path)
    signed_in = not public
    found: dict[int, ResponseSpec] = {}
    takes_input = _takes_input(route, handler)
    if takes_input:
        # Litestar documents a 400 wherever there is input; a request it cannot read at all (a body
        # nested too deep, say) is one, and it too is problem details. Invalid values are 422.
        found[400] = _problem("Bad request: the request cannot be read (e.g. a body nested deeper than 32 levels)")
    if signed_in or (method, path) == _LOGIN:
        found[401] = _problem(
            "Wrong username or password" if public else "No token, or one that is invalid, expired or revoked"
        )
    if signed_in:
        found[403] = _problem(
            "The caller's role or scope may not do this (with the session cookie: no valid CSRF token)"
        )
    if route.path_parameters:
        found[404] = _problem("No such object, or one outside the caller's scope")
    if method in _WRITES and _CONFLICTS.match(path):
        found[409] = _problem("A conflict with the current state (e.g. no place left, a hold no longer held)")
    if (method, path) in _ONE_TIME_LINKS:
        found[410] = _problem("The link was used already or has expired: ask for a new one")
    if takes_input:
        found[422] = _problem("Invalid input; `field` (and each of `errors`) names what is wrong")
    if (method, path) == _LOGIN:
        found[429] = _problem("Too many failed logins; try again after Retry-After seconds")
    if path != "/health":  # liveness alone touches neither the database nor Redis
        found[503] = _problem("Busy or unavailable for a moment (the database); try again after Retry-After seconds")
    return found


def document_errors(app: Litestar) -> None:
    """Give every documented operation its error responses (those it declares itself win)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.path)
        for handler in route.route_handlers:
            if not handler.resolve_include_in_schema():
                continue
            for method in sorted(handler.http_methods - {"OPTIONS", "HEAD"}):
                handler.responses = {**error_responses(method, path, route, handler), **(handler.responses or {})}
