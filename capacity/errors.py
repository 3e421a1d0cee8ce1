"""RFC 9457 problem details for every 4xx and 5xx, and the domain errors services raise.

Services raise `DomainError`s that speak the domain ("no place is free"); this module turns them, and
Litestar's own HTTP errors, into `application/problem+json`. Validation errors become 422 and name the
field. Nothing from a stack trace or SQL reaches a client.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from sqlalchemy.exc import DBAPIError

log = logging.getLogger("capacity")


class ServiceBusy(Exception):
    """The database stayed busy through every attempt; the client should retry shortly."""

    retry_after = 1


class DomainError(Exception):
    status = 400
    slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(DomainError):
    status, slug = 404, "not-found"


class Forbidden(DomainError):
    status, slug = 403, "forbidden"


class Conflict(DomainError):
    status, slug = 409, "conflict"


class Gone(DomainError):
    """Something that existed and is no longer usable: a spent or expired one-time link."""

    status, slug = 410, "gone"


class Invalid(DomainError):
    """Input that is well-formed but breaks a rule; `field` names what is wrong."""

    status, slug = 422, "invalid-input"


def _problem(
    status: int, detail: str, *, slug: str | None = None, headers: dict[str, str] | None = None, **extra: Any
) -> ProblemDetailsException:
    title = HTTPStatus(status).phrase
    return ProblemDetailsException(
        status_code=status,
        type_=f"/problems/{slug or title.lower().replace(' ', '-')}",
        title=title,
        detail=detail,
        headers=headers,
        extra={k: v for k, v in extra.items() if v is not None} or None,
    )


def _domain(exc: DomainError) -> ProblemDetailsException:
    errors = [{"field": exc.field, "message": exc.detail}] if exc.field else None
    return _problem(exc.status, exc.detail, slug=exc.slug, field=exc.field, errors=errors, **exc.extra)


_PATH = re.compile(r"at `\$\.?([^`]*)`")
# msgspec names the field itself, not its path, when one is missing or unexpected.
_NAMED = re.compile(r"(?:missing required field|unknown field) `([^`]+)`")
# Litestar names a missing query, header or cookie parameter only in its message.
_MISSING_PARAMETER = re.compile(r"Missing required (?:query|header|cookie|path) parameter '([^']+)'")


def _field_of(error: dict[str, Any]) -> str:
    """The dotted field a Litestar/msgspec validation error is about, e.g. `person.age`."""
    key = error.get("key")
    message = str(error.get("message", ""))
    # Litestar reports an error about the body as a whole under its parameter name, `data`.
    if key == "data" and error.get("source") == "body":
        key = None
    if missing := _MISSING_PARAMETER.search(message):
        return missing.group(1)
    named = _NAMED.search(message)
    if key and key not in ("body",):
        return f"{key}.{named.group(1)}" if named else str(key)
    if named:
        return named.group(1)
    match = _PATH.search(message)
    if match and match.group(1):
        return match.group(1).replace("[", ".").replace("]", "")
    return "body"


def _validation(exc: ValidationException) -> ProblemDetailsException:
    raw = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"field": _field_of(e), "source": e.get("source"), "message": str(e.get("message", ""))}
        for e in raw
        if isinstance(e, dict)
    ] or [{"field": _field_of({"message": str(exc.detail)}), "message": str(exc.detail)}]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return _problem(422, detail, slug="validation-error", field=errors[0]["field"], errors=errors)


def _http(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ValidationException):
        return _validation(exc)
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    return _problem(exc.status_code, str(exc.detail), headers=exc.headers, **extra)


def _busy(exc: ServiceBusy) -> ProblemDetailsException:
    return _problem(
        503,
        "The system is busy; please try again in a moment.",
        slug="busy",
        headers={"Retry-After": str(exc.retry_after)},
    )


# SQLSTATEs that mean the client's text cannot be stored or compared at all (PostgreSQL refuses a NUL
# character in text): bad input, not a fault of the service.
_UNSTORABLE_TEXT = {"22021", "22P05"}


def _database(exc: DBAPIError) -> ProblemDetailsException:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in _UNSTORABLE_TEXT:
        log.warning("refused input the database cannot store: %s", code)
        return _problem(422, "The input holds characters that cannot be stored (e.g. NUL).", slug="invalid-input")
    log.error("database error", exc_info=exc)
    return _problem(500, "An internal error occurred; it has been logged.")


def internal_error_handler(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _problem(500, "An internal error occurred; it has been logged.").to_response(request)


problem_details = ProblemDetailsPlugin(
    ProblemDetailsConfig(
        exception_to_problem_detail_map={
            HTTPException: _http,
            DomainError: _domain,
            ServiceBusy: _busy,
            DBAPIError: _database,
        }
    )
)
