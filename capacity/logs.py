"""Logging: one configuration for every logger, a request id on every line, no secret in any line.

`configure(format)` sends every record (the service's `capacity.*` loggers, uvicorn's error and access
logs, APScheduler's, anything through the standard library or structlog) to one stderr handler whose
structlog `ProcessorFormatter` renders it as one JSON object per line (`json`, production) or as a
readable line (`console`, demo and local runs), after the same processors: the time, the level, the
logger's name, any `extra=` fields, and the request id bound in this context.

The request id (`request_ids`, the app's outermost ASGI wrapper) is the client's or proxy's
`X-Request-ID` when it is a short token of safe characters, else a new one; it is sent back in the
response's `X-Request-ID` and bound to every line written while the request is handled, uvicorn's
access line included (uvicorn writes it while the app sends its response). The events a request's
transaction publishes are logged under its id (capacity.db.engine); each run of a scheduled job gets an
id of its own (`with_run_id`).

Logs never hold a token, a password or a person reference (API.md "Operations"). uvicorn writes every
request's path with its query string, and every WebSocket's (`"WebSocket /ws/events?token=..."`), and
the live stream takes its token as `?token=`. Rather than trust every logger and every message format
to leave them out, the processor before the renderer redacts every record, whoever logged it, in all
its text (message, traceback and fields): any JWT, any `Bearer` credential, and the value of any
query parameter whose name mentions a token, a password or a reference.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import IO, Any, ParamSpec, TypeVar

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REDACTED = "[redacted]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_SECRET_PARAMETER = re.compile(r"(?i)([?&;][^=&\s\"]*(?:token|password|passwd|secret|ref)[^=&\s\"]*=)[^&\s\"]*")

FORMATS = ("json", "console")
REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Loggers that others (uvicorn's default config, Litestar's) give handlers of their own: here they
# propagate to the one root handler instead.
_ROUTED = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "litestar")
_HANDLER_NAME = "capacity"

P = ParamSpec("P")
T = TypeVar("T")


def redact(text: str) -> str:
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + REDACTED, text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _redact(_logger: Any, _method: str, event: Any) -> Any:
    """Every text of the record, its message, traceback and fields alike, just before it is rendered."""
    return {key: _clean(value) for key, value in event.items()}


def _drop_copies(_logger: Any, _method: str, event: Any) -> Any:
    # uvicorn's `extra=` repeats its message with colour codes; `message` is the message again when an
    # earlier handler formatted the record.
    event.pop("color_message", None)
    event.pop("message", None)
    return event


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    structlog.stdlib.ExtraAdder(),
    _drop_copies,
]


def configure(log_format: str = "json", *, stream: IO[str] | None = None, level: int = logging.INFO) -> None:
    """Send every log record to one handler on `stream` (stderr), rendered as `log_format`; idempotent."""
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, not {log_format!r}")
    renderer = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.name = _HANDLER_NAME
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,  # a plain traceback, as text to redact
                _redact,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.name == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _ROUTED:
        routed = logging.getLogger(name)
        routed.handlers.clear()
        routed.propagate = True
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def new_request_id(prefix: str = "") -> str:
    return prefix + uuid.uuid4().hex


def request_ids(app: ASGIApp) -> ASGIApp:
    """Wrap the app's whole handler: each request's id bound while it is handled and sent back."""

    async def identified(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = given if _SANE_REQUEST_ID.fullmatch(given) else new_request_id()
        header = (b"x-request-id", request_id.encode())

        async def sending(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                message = {**message, "headers": [*message.get("headers", ()), header]}  # type: ignore[assignment]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await app(scope, receive, sending)

    return identified


def with_run_id(job: Callable[P, Awaitable[T]], prefix: str) -> Callable[P, Awaitable[T]]:
    """`job` with an id of its own bound to each run (`sweep-...`), as a request has."""

    @functools.wraps(job)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        with structlog.contextvars.bound_contextvars(request_id=new_request_id(prefix + "-")):
            return await job(*args, **kwargs)

    return run
