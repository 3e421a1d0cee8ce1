"""Logs never hold a token, a password or a person reference (API.md "Operations").

uvicorn writes every request's path with its query string to its access log, and every WebSocket's
to its error log (`"WebSocket /ws/events?token=..." [accepted]`), and the live stream takes its token
as `?token=`. Rather than trust every logger and every message format to leave them out, the log
record factory redacts them from each record as it is made, in this process, whoever logs it: any
JWT, any `Bearer` credential, and the value of any query parameter whose name mentions a token, a
password or a reference.
"""

from __future__ import annotations

import logging
import re
from typing import Any

REDACTED = "[redacted]"
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[^\s\"',;]+")
_SECRET_PARAMETER = re.compile(r"(?i)([?&;][^=&\s\"]*(?:token|password|passwd|secret|ref)[^=&\s\"]*=)[^&\s\"]*")


def redact(text: str) -> str:
    if "eyJ" in text:
        text = _JWT.sub(REDACTED, text)
    text = _BEARER.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_PARAMETER.sub(lambda m: m.group(1) + REDACTED, text)


def _clean(value: Any) -> Any:
    return redact(value) if isinstance(value, str) else value


def redact_access_log() -> None:
    """Install the redacting record factory (once per process; idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "capacity_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = current(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_clean(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _clean(v) for k, v in record.args.items()}
        return record

    factory.capacity_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
