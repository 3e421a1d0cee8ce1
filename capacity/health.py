"""`GET /health` (the process is alive) and `GET /health/ready` (it can serve: API.md "Operations").

Ready means the database answers, its schema is at the Alembic head this code was built for, and Redis
answers where CAPACITY_REDIS_URL is set. Otherwise `503` (problem details, with `Retry-After`) naming
each failing part in `failing` and what was seen in `checks`. Each check is bounded, so a database that
hangs makes the answer slow by seconds at most, never for ever.
"""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any

import msgspec
from litestar import Request, Response, get
from sqlalchemy import text

log = logging.getLogger("capacity")
CHECK_SECONDS = 3.0
ALEMBIC_INI = Path(__file__).resolve().parent / "alembic.ini"


@lru_cache(maxsize=1)
def _scripts() -> tuple[frozenset[str], frozenset[str]]:
    """The head revision(s) of the migrations shipped with this code, and every revision it knows."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(Config(str(ALEMBIC_INI)))
    return frozenset(scripts.get_heads()), frozenset(s.revision for s in scripts.walk_revisions())


def schema_heads() -> frozenset[str]:
    return _scripts()[0]


async def _database(state: Any) -> dict[str, str]:
    """{"database": ..., "schema": ...}: whether the database answers, and at which revision it stands."""
    try:
        async with asyncio.timeout(CHECK_SECONDS), state.db.autocommit_engine.connect() as conn:
            try:
                found = set((await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars())
            except Exception as exc:
                # Connected, but the query failed: no alembic_version table (never migrated), or the
                # connection died under it; ask once more whether the database answers at all.
                await conn.rollback()
                await conn.execute(text("SELECT 1"))
                log.warning("readiness: no schema version: %s", type(exc).__name__)
                return {"database": "ok", "schema": "not migrated"}
    except Exception as exc:  # refused, timed out, too many clients, pool exhausted: all "not ready"
        log.warning("readiness: database unavailable: %s: %s", type(exc).__name__, str(exc).splitlines()[0][:200])
        return {"database": "unavailable", "schema": "unknown"}
    heads, known = _scripts()
    if found == heads:
        return {"database": "ok", "schema": "ok"}
    at = ", ".join(sorted(found)) or "no revision"
    if found - known:
        return {"database": "ok", "schema": f"at {at}, newer than this code"}
    return {"database": "ok", "schema": f"at {at}, behind head {', '.join(sorted(heads))}"}


async def _redis(state: Any) -> str:
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            await state.redis.ping()
    except Exception as exc:
        log.warning("readiness: Redis unavailable: %s", type(exc).__name__)
        return "unavailable"
    return "ok"


async def readiness(state: Any) -> dict[str, str]:
    """Each part's state: "ok", or what is wrong with it."""
    checks: dict[str, Any] = {}
    if state.redis is not None:
        database, redis = await asyncio.gather(_database(state), _redis(state))
        checks.update(database, redis=redis)
    else:
        checks.update(await _database(state))
    return checks


@get("/health", summary="Liveness", tags=["Service"])
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/health/ready",
    summary="Readiness: the database answers, its schema is at head, and Redis answers where configured",
    tags=["Service"],
)
async def ready(request: Request[Any, Any, Any]) -> Response[bytes]:
    checks = await readiness(request.app.state)
    failing = [part for part, state in checks.items() if state != "ok"]
    if not failing:
        return Response(msgspec.json.encode({"status": "ready", "checks": checks}), media_type="application/json")
    problem = {
        "type": "/problems/not-ready",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "Not ready: " + "; ".join(f"{part} {checks[part]}" for part in failing),
        "failing": failing,
        "checks": checks,
    }
    return Response(
        msgspec.json.encode(problem),
        status_code=503,
        media_type="application/problem+json",
        headers={"Retry-After": "5"},
    )
