"""Bookings during a login flood: `GET /api/units` p50, quiet and while 32 clients send bogus logins.

Issue 11: 32 concurrent bogus logins (argon2 each) once took `/api/units` from a 37 ms median to 2 s.
Password checks now run `CAPACITY_LOGIN_CONCURRENCY` at a time in low-priority threads, with a bounded
queue (capacity/auth/throttle.py). The script
  1. makes a SQLite database in a temporary directory, migrated to head and holding the demo set;
  2. starts the real server (uvicorn, capacity.app:create_app) with the failed-login limits raised out
     of reach, so that every bogus login costs a full argon2 check (the worst case: an attacker spread
     over many addresses, whom throttling by address does not stop); `--throttled` keeps the defaults;
  3. as the demo AMHP, sends `GET /api/units` one after another (a short pause between) for
     `--seconds`, quiet; then again while 32 clients (`--clients`) each post bogus logins
     (a new username each time, a wrong password) back to back;
then prints both medians, their ratio (the aim: within 2x), the logins answered and the server's memory.

    .venv/bin/python bench/login_flood.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from _harness import (
    ROOT,
    Connection,
    capacity_env,
    database,
    fresh_database,
    log,
    login,
    percentile,
    rss_mb,
    run_main,
    scratch,
    server,
)

sys.path.insert(0, str(ROOT))


async def prepare(url: str) -> None:
    from capacity.demo import load_demo

    await fresh_database(url)
    async with database(url) as db:
        assert await load_demo(db, db.clock.now())


async def measure(port: int, token: str, seconds: float, pause: float = 0.02) -> list[float]:
    """Latencies (s) of GET /api/units sent one after another for `seconds`."""
    conn = Connection(port, token, timeout=30)
    latencies: list[float] = []
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            started = time.perf_counter()
            status, _ = await conn.get("/api/units")
            if status != 200:
                raise SystemExit(f"GET /api/units answered {status}")
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(pause)
    finally:
        conn.close()
    return latencies


async def flood_client(port: int, stop: asyncio.Event, statuses: Counter[int]) -> None:
    conn = Connection(port, timeout=60)
    try:
        while not stop.is_set():
            body = json.dumps({"username": f"bogus-{uuid.uuid4().hex[:12]}", "password": "not-the-password"})
            status, _ = await conn.post("/api/auth/token", body.encode())
            statuses[status] += 1
            if status == 503:
                await asyncio.sleep(0.05)  # as a client told Retry-After would, roughly
    finally:
        conn.close()


async def run(args: argparse.Namespace, port: int, pid: int) -> dict[str, float | int | str]:
    token = await asyncio.to_thread(login, port, "amhp", "demo")
    await measure(port, token, 1.0)  # warm up
    quiet = await measure(port, token, args.seconds)
    stop = asyncio.Event()
    statuses: Counter[int] = Counter()
    flooders = [asyncio.create_task(flood_client(port, stop, statuses)) for _ in range(args.clients)]
    await asyncio.sleep(1.0)  # let the flood build up
    flooded = await measure(port, token, args.seconds)
    rss = rss_mb(pid)
    stop.set()
    await asyncio.gather(*flooders)
    quiet_p50, flood_p50 = percentile(quiet, 50) * 1000, percentile(flooded, 50) * 1000
    return {
        "quiet_p50_ms": quiet_p50,
        "flood_p50_ms": flood_p50,
        "ratio": flood_p50 / quiet_p50,
        "quiet_requests": len(quiet),
        "flood_requests": len(flooded),
        "logins": ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items())),
        "server_rss_mb": rss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each measurement")
    parser.add_argument("--clients", type=int, default=32, help="concurrent bogus-login clients")
    parser.add_argument("--throttled", action="store_true", help="keep the failed-login limits (most are 429)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    with scratch("capacity-login-flood-", args.keep) as tmp:
        url = f"sqlite+aiosqlite:///{tmp / 'flood.db'}"
        log("preparing the demo database")
        run_main(prepare(url))
        env = capacity_env(url)
        if not args.throttled:
            out_of_reach = "1000000000"
            env["CAPACITY_LOGIN_MAX_FAILURES"] = env["CAPACITY_LOGIN_MAX_FAILURES_PER_ADDRESS"] = out_of_reach
        with server(Path(tmp) / "server.log", env) as (port, pid):
            log(f"measuring for {args.seconds:.0f} s quiet, then {args.seconds:.0f} s under {args.clients} clients")
            figures = run_main(run(args, port, pid))
    mode = "limits kept (--throttled)" if args.throttled else "every login checked (limits out of reach)"
    print(f"login flood: {args.clients} clients, {mode}")
    print(f"  GET /api/units p50 quiet      {figures['quiet_p50_ms']:8.1f} ms  ({figures['quiet_requests']} requests)")
    print(f"  GET /api/units p50 in flood   {figures['flood_p50_ms']:8.1f} ms  ({figures['flood_requests']} requests)")
    ratio = float(figures["ratio"])
    print(f"  ratio                         {ratio:8.2f} x   (aim: within 2x: {'met' if ratio <= 2 else 'NOT met'})")
    print(f"  logins answered               {figures['logins']}")
    print(f"  server memory at the end      {figures['server_rss_mb']:8.0f} MB")


if __name__ == "__main__":
    main()
