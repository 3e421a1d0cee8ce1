"""RFC 9457 problem details for every 4xx and 5xx, and the domain errors services raise.

Services raise `DomainError`s that speak the domain ("no place is free"); this module turns them, and
Litestar's own HTTP errors, into `application/problem+json`. Validation errors become 422 and name the
field. Nothing from a stack trace or SQL reaches a client.
"""

from __future__ import annotations

import errno
import logging
import re
import socket
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
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger("capacity")


class ServiceBusy(Exception):
    """The database stayed busy through every attempt; the client should retry shortly."""

    retry_after = 1
    slug = "busy"
    detail = "The system is busy; please try again in a moment."


class ServiceUnavailable(ServiceBusy):
    """The database cannot be reached or has no connection to spare (refused, restarting, too many
    clients, pool exhausted): 503 with Retry-After, never a 500. Nothing was retried."""

    retry_after = 2
    slug = "unavailable"
    detail = "The database is unavailable for a moment; please try again shortly."


# SQLSTATE classes and codes meaning the database, not the request, is at fault for now:
# 08 connection exception, 53 insufficient resources (53300 too many clients), 57P01-57P03 admin or
# crash shutdown and "cannot connect now" (starting up, shutting down), 57014 a statement timeout.
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57P")
# Lock timeouts, serialisation failures and deadlocks: busy (Database.write retries these first).
_PG_BUSY = {"40001", "40P01", "55P03", "57014"}
_NETWORK_ERRNOS = {
    errno.ECONNREFUSED,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ETIMEDOUT,
    errno.EADDRNOTAVAIL,
    errno.EPIPE,
}


def _sqlstate(exc: BaseException) -> str | None:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)
    return code if isinstance(code, str) else None


def _network(exc: BaseException) -> bool:
    if isinstance(exc, ConnectionError | TimeoutError | socket.gaierror):
        return True
    if isinstance(exc, OSError):
        # asyncpg trying every address of a host raises one OSError naming them all, without an errno.
        return exc.errno in _NETWORK_ERRNOS or "Connect call failed" in str(exc)
    return False


def database_fault(exc: BaseException) -> type[ServiceBusy] | None:
    """`ServiceUnavailable` or `ServiceBusy` when `exc` (or what it wraps) is a passing fault of the database
    or the way to it, rather than of the request; None for anything else."""
    if isinstance(exc, ServiceBusy):
        return type(exc)
    if isinstance(exc, PoolTimeout):
        return ServiceUnavailable  # every pooled connection is in use and none came free in time
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return ServiceUnavailable  # the connection broke under the statement (reset, terminated)
        code = _sqlstate(current)
        if code in _PG_BUSY:
            return ServiceBusy
        if code and code.startswith(_PG_UNAVAILABLE_CLASSES):
            return ServiceUnavailable
        if _network(current):
            return ServiceUnavailable
        text = str(current).lower()
        if "database is locked" in text or "database is busy" in text:
            return ServiceBusy
        if "connection is closed" in text or "connection was closed" in text:
            return ServiceUnavailable
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


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
    return _problem(503, exc.detail, slug=exc.slug, headers={"Retry-After": str(exc.retry_after)})


def _fault(kind: type[ServiceBusy], exc: BaseException) -> ProblemDetailsException:
    log.warning("answered 503 (%s): %s: %s", kind.slug, type(exc).__name__, str(exc).splitlines()[0][:200])
    return _busy(kind())


def _pool_timeout(exc: PoolTimeout) -> ProblemDetailsException:
    return _fault(ServiceUnavailable, exc)


def _os_error(exc: OSError) -> ProblemDetailsException:
    """A connection refused, reset or timed out (the database, on its way in) is a 503; any other OSError
    (a missing file, say) is the service's own fault."""
    if kind := database_fault(exc):
        return _fault(kind, exc)
    log.error("unexpected OS error", exc_info=exc)
    return _problem(500, "An internal error occurred; it has been logged.")


# SQLSTATEs that mean the client's text cannot be stored or compared at all (PostgreSQL refuses a NUL
# character in text): bad input, not a fault of the service.
_UNSTORABLE_TEXT = {"22021", "22P05"}


def _database(exc: DBAPIError) -> ProblemDetailsException:
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in _UNSTORABLE_TEXT:
        log.warning("refused input the database cannot store: %s", code)
        return _problem(422, "The input holds characters that cannot be stored (e.g. NUL).", slug="invalid-input")
    if kind := database_fault(exc):
        return _fault(kind, exc)
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
            PoolTimeout: _pool_timeout,
            OSError: _os_error,
        }
    )
)
