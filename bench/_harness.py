"""What the four benches share: the server they start, the client they log in and measure with, the
percentiles they print, where the machine's CPU went, and the databases they prepare.

One copy, so that a fix to how the server is started, or to how a core is counted, reaches every
bench at once, and so that their figures stay comparable with each other.

Only the standard library is imported at the top: fanout.py's bare baseline server and its client
worker processes import this module too, and their memory is measured, so SQLAlchemy and capacity are
imported inside the functions that need them (after the bench has put its app on sys.path).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent  # the repository: the capacity package the benches serve
BENCH = ROOT / "bench"
HOST = "127.0.0.1"  # every bench talks to this machine only
# The servers' signing key: the benches log in through the API, so any fixed key will do.
SECRET_KEY = "bench-signing-key-" + "b" * 40


def log(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run_main(main: Coroutine[Any, Any, Any]) -> Any:
    """Run a bench's main coroutine on uvloop when it is installed, the loop uvicorn gives the server."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


@contextmanager
def scratch(prefix: str, keep: bool = False, kept: str = "kept {}") -> Iterator[Path]:
    """A temporary directory for a bench's SQLite files and server logs, removed at the end unless
    `keep` (--keep), when the `kept` message says where it is."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            log(kept.format(path))
        else:
            shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until GET /health answers 200 (bounded: a server that never comes up fails the bench)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), timeout=1) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not answer /health in time")


def capacity_env(url: str) -> dict[str, str]:
    """The settings the service reads from its environment: the bench's database and signing key."""
    return {"CAPACITY_DATABASE_URL": url, "CAPACITY_SECRET_KEY": SECRET_KEY}


@contextmanager
def server(
    log_path: Path,
    env: Mapping[str, str],
    *,
    factory: str = "capacity.app:create_app",
    app_root: Path = ROOT,
    pythonpath: Sequence[Path] | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 60,
) -> Iterator[tuple[int, int]]:
    """uvicorn serving `factory` on a free port of 127.0.0.1; yields (port, pid) once /health answers.

    One process unless `extra_args` ask for workers, and the access log off (it would cost the server
    CPU). Its output goes to `log_path`, whose last lines are shown if anything fails; the server is
    stopped on the way out, whatever happened."""
    port = free_port()
    # The server runs the capacity package under `app_root` (this repository unless told otherwise).
    path = os.pathsep.join(str(p) for p in (pythonpath or (app_root,)))
    cmd = [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", HOST, "--port", str(port)]
    # As `capacity serve` runs it: X-Forwarded-For is the app's to judge (CAPACITY_TRUSTED_PROXIES).
    cmd += ["--log-level", "warning", "--no-access-log", "--no-proxy-headers", *extra_args]
    with open(log_path, "wb") as server_log:
        proc = subprocess.Popen(
            cmd, cwd=app_root, env=dict(os.environ, PYTHONPATH=path, **env), stdout=server_log, stderr=subprocess.STDOUT
        )
    try:
        wait_until_up(port, proc, timeout)
        yield port, proc.pid
    except BaseException:
        log(f"server output ({log_path}), last lines:\n" + "\n".join(log_path.read_text().splitlines()[-30:]))
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


# --------------------------------------------------------------------------------------------------
# A small HTTP/1.1 keep-alive client: far less CPU per request than a general client, which matters
# because the client shares the machine's cores with the server it measures.
# --------------------------------------------------------------------------------------------------


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while size := int((await reader.readline()).split(b";")[0], 16):
            chunks.append((await reader.readexactly(size + 2))[:-2])  # each chunk ends in CRLF
        await reader.readline()  # the CRLF after the last, empty chunk
        body = b"".join(chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


class Connection:
    """One keep-alive HTTP/1.1 connection to the server, opened on first use, as the token's holder.

    `timeout` bounds each response (none by default: the caller bounds the whole run)."""

    def __init__(self, port: int, token: str | None = None, timeout: float | None = None) -> None:
        self.port = port
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.head = f"Host: {HOST}\r\nContent-Type: application/json\r\n{auth}".encode()
        self.timeout = timeout
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.request(b"GET", path)

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self.request(b"POST", path, body)

    async def request(self, method: bytes, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        self.writer.write(
            method
            + b" "
            + path.encode()
            + b" HTTP/1.1\r\n"
            + self.head
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        try:
            answer = read_response(self.reader)
            status, data, keep = await (answer if self.timeout is None else asyncio.wait_for(answer, self.timeout))
        except BaseException:
            self.close()
            raise
        if not keep:
            self.close()
        return status, data

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def login(port: int, username: str, password: str) -> str:
    """A bearer token from POST /api/auth/token (once, before any timing: a plain blocking request)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        body = json.dumps({"username": username, "password": password})
        conn.request("POST", "/api/auth/token", body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status != 200:
        raise SystemExit(f"login as {username} failed: {response.status} {data[:200]!r}")
    return json.loads(data)["access_token"]


# --------------------------------------------------------------------------------------------------
# Percentiles
# --------------------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float, count: int | None = None) -> float:
    """Nearest-rank percentile (`p` from 0 to 100) of `values`, in their unit; nan when there are none.

    `count`, when given, is how many there should have been: the missing ones (failed or unanswered
    requests) rank as slower than any value, so a percentile that falls among them is inf."""
    count = len(values) if count is None else count
    if not count:
        return math.nan
    rank = max(1, math.ceil(p / 100 * count))
    return sorted(values)[rank - 1] if rank <= len(values) else math.inf


class LatencyPercentiles:
    """p50 and p99, in ms, of a run record's `latencies` (seconds) for its report."""

    latencies: list[float]
    expected: int | None = None  # how many latencies there should be: see `percentile`

    def pct(self, p: float) -> float:
        return percentile(self.latencies, p, self.expected) * 1000

    @property
    def p50(self) -> float:
        return self.pct(50)

    @property
    def p99(self) -> float:
        return self.pct(99)


# --------------------------------------------------------------------------------------------------
# Where the machine's CPU went, from /proc (Linux): the server, this process, the PostgreSQL backends
# of the bench's database, everything else, and time stolen by the hypervisor. On a shared machine the
# "everything else" figure says how much a run was disturbed by other work.
# --------------------------------------------------------------------------------------------------

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """(command name, the fields after it) from /proc/PID/stat; OSError once the process is gone."""
    with open(f"/proc/{pid}/stat") as f:
        head, tail = f.read().rsplit(")", 1)
    return head.split("(", 1)[1], tail.split()


def process_cpu(pid: int | str) -> float:
    """User plus system CPU seconds of a process (all its threads)."""
    fields = _stat(pid)[1]
    return (int(fields[11]) + int(fields[12])) / TICK


def process_tree_cpu(pid: int) -> float:
    """The same for a process and its live children (uvicorn --workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            _, fields = _stat(entry)
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICK
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, all cores; busy leaves steal out."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in f.readline().split()[1:9])
    return (user + nice + system + irq + softirq) / TICK, steal / TICK


def rss_mb(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def backend_cpu(pids: Iterable[int | str]) -> dict[str, float]:
    """CPU seconds of each of these processes still alive (backends come and go: compared pid by pid)."""
    found: dict[str, float] = {}
    for pid in pids:
        try:
            found[str(pid)] = process_cpu(pid)
        except OSError:
            continue  # gone meanwhile
    return found


def postgres_backend_cpu(database: str) -> dict[str, float]:
    """CPU seconds of each backend serving `database`, found by process title without a connection.

    A backend's title, in its cmdline, reads `postgres: 15/main: USER DATABASE HOST(PORT) STATE`: other
    databases' backends on the same cluster, and the shared background processes, are not counted."""
    found: dict[str, float] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            name, fields = _stat(pid)
            if name != "postgres":
                continue
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if len(title) >= 4 and title[3] == database:
            found[pid] = (int(fields[11]) + int(fields[12])) / TICK
    return found


@dataclass
class Cores:
    """Cores in use during a run (1.0 = one core busy throughout), by whom."""

    server: float  # the server process and its children
    client: float  # this process: the load generator, or the workers of a run without HTTP
    postgres: float  # the backends of the bench's database (0 on SQLite, which works in its caller)
    busy: float  # the whole machine, steal left out
    steal: float  # taken by the hypervisor

    @property
    def other(self) -> float:
        """Everything else busy on the machine: other people's jobs, the OS."""
        return max(0.0, self.busy - self.server - self.client - self.postgres)

    @property
    def not_ours(self) -> float:
        """`other` with the hypervisor's steal: all the machine's busy time that was not the bench's."""
        return max(0.0, self.busy + self.steal - self.server - self.client - self.postgres)


class CpuMeter:
    """Where the machine's CPU went between `start` and `stop` (or over a `with` block).

    The PostgreSQL backends counted are those whose title names `database`, or the pids passed to
    `start` and `stop`. A backend that exited during the run is missed (an undercount), one that
    started is counted whole."""

    def __init__(self, server_pid: int | None = None, database: str | None = None) -> None:
        self.server_pid = server_pid
        self.database = database
        self.started = 0.0
        self.cores: Cores | None = None

    def _sample(self, backend_pids: Iterable[int] | None) -> dict[str, Any]:
        busy, steal = machine_cpu()
        if backend_pids is not None:
            backends = backend_cpu(backend_pids)
        else:
            backends = postgres_backend_cpu(self.database) if self.database else {}
        server = process_tree_cpu(self.server_pid) if self.server_pid else 0.0
        return dict(busy=busy, steal=steal, server=server, client=time.process_time(), backends=backends)

    def start(self, backend_pids: Iterable[int] | None = None) -> CpuMeter:
        self.started = time.perf_counter()
        self.first = self._sample(backend_pids)
        return self

    def stop(self, backend_pids: Iterable[int] | None = None) -> Cores:
        end = self._sample(backend_pids)
        wall = (time.perf_counter() - self.started) or 1e-9
        first = self.first
        backends = sum(seconds - first["backends"].get(pid, 0.0) for pid, seconds in end["backends"].items())
        share = {k: (end[k] - first[k]) / wall for k in ("busy", "steal", "server", "client")}
        self.cores = Cores(share["server"], share["client"], backends / wall, share["busy"], share["steal"])
        return self.cores

    def __enter__(self) -> CpuMeter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Databases. On PostgreSQL the benches drop and rebuild the public schema of the database they are
# given, so they refuse shared databases and anything not on this machine.
# --------------------------------------------------------------------------------------------------


def user_row(user_id: str, username: str, password: str, role: str, now: Any) -> dict[str, Any]:
    """A users row the bench can log in as, its password hashed as the service hashes it."""
    from capacity.auth.passwords import hash_password

    return dict(
        id=user_id,
        username=username,
        password_hash=hash_password(password),
        role=role,
        provider_id=None,
        active=True,
        created_at=now,
    )


def check_postgres_url(url: str) -> None:
    """The public schema is dropped: refuse shared databases and anything not local."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.database in (None, "", "test", "postgres", "template0", "template1"):
        raise SystemExit(f"refusing to wipe the database {parsed.database!r}: give the bench a database of its own")
    if parsed.host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("the bench only runs against a local database")
    if not parsed.drivername.endswith("asyncpg"):
        raise SystemExit("give a postgresql+asyncpg:// URL")


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """--db and --database-url, for a bench that runs on one engine: SQLite on a temp file, or the
    PostgreSQL database given (see check_database_options)."""
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--database-url", help="PostgreSQL URL (postgresql+asyncpg://...): its public schema is dropped and rebuilt"
    )


def check_database_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--db postgres needs a --database-url the bench may wipe (check_postgres_url); SQLite needs none."""
    if args.db == "postgres":
        if not args.database_url:
            parser.error("--db postgres needs --database-url")
        check_postgres_url(args.database_url)
    elif args.database_url:
        parser.error("--database-url is for --db postgres; SQLite runs on a temp file")


def postgres_database(url: str) -> str | None:
    """The database name of a PostgreSQL URL (whose backends a CpuMeter counts); None for SQLite."""
    from sqlalchemy.engine import make_url

    return None if url.startswith("sqlite") else make_url(url).database


def settings(url: str, **overrides: Any):
    """The service's settings for the bench's database, as the server gets them."""
    from capacity.settings import Settings

    return Settings(database_url=url, secret_key=SECRET_KEY, **overrides)


@asynccontextmanager
async def database(url: str, **overrides: Any) -> AsyncIterator[Any]:
    """A capacity `Database` on `url`, disposed of on the way out."""
    from capacity.db.engine import Database

    db = Database(settings(url, **overrides))
    try:
        yield db
    finally:
        await db.dispose()


async def empty_postgres(url: str) -> None:
    """Drop and recreate the public schema: nothing left, not even the migrations' table."""
    from sqlalchemy import text

    async with database(url) as db, db.engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))


def remove_sqlite_files(url: str) -> None:
    """The SQLite database file and the -wal and -shm files beside it, if there are any."""
    from sqlalchemy.engine import make_url

    for suffix in ("", "-wal", "-shm"):
        Path(f"{make_url(url).database}{suffix}").unlink(missing_ok=True)


async def fresh_database(url: str) -> None:
    """An empty database migrated to head: the SQLite files removed, or the PostgreSQL public schema
    emptied; then `alembic upgrade head`."""
    from capacity.cli import migrate_to_head

    if url.startswith("sqlite"):
        remove_sqlite_files(url)
    else:
        await empty_postgres(url)
    await asyncio.to_thread(migrate_to_head, url)  # Alembic runs its own event loop


async def engine_version(url: str) -> str:
    """'SQLite 3.x' or 'PostgreSQL 15.x', for the report's heading."""
    from sqlalchemy import text

    async with database(url) as db, db.engine.connect() as conn:
        if db.is_sqlite:
            return "SQLite " + (await conn.execute(text("select sqlite_version()"))).scalar_one()
        return "PostgreSQL " + (await conn.execute(text("show server_version"))).scalar_one()
