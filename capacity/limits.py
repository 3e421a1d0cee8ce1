"""Bounds on what a request may make the service do before any handler runs.

A JSON body nested deeper than `MAX_BODY_DEPTH` levels is refused with 400 (problem details) before it
is decoded: a decoder recursing a thousand levels deep fails with a RecursionError, which would be a
500. The WebSocket's own bounds (message size, subscribe lists) are in `capacity.notify.ws`.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import ClientException

MAX_BODY_DEPTH = 32
# A JSON string (skipped whole, so that brackets inside strings do not count), or one bracket.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.S)
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS"})


def too_deep(body: bytes, limit: int = MAX_BODY_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest more than `limit` levels deep."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: the usual case, decided in C
    depth = 0
    for token in _TOKENS.finditer(body):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif char in (b"]", b"}"):
            depth -= 1
    return False


async def check_body_depth(request: Request[Any, Any, Any]) -> None:
    """Litestar `before_request` hook: a body nested too deeply is 400, on every route (login included)."""
    if request.method in _BODILESS:
        return None
    body = await request.body()  # Litestar keeps it for the handler's own parsing
    if body and too_deep(body):
        raise ClientException(f"the request body is nested more than {MAX_BODY_DEPTH} levels deep")
    return None
