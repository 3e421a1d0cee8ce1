"""Live-event fan-out: one change, N WebSocket subscribers, delivery latency and the server's memory.

Issue 4 item 8: 1,000 and 5,000 subscribers on one instance, and on two instances through Redis; one
change; delivery latency from commit to the last client (p50, p99) and the server's resident memory.
Aims (issue 15 item 4), printed as MET / NOT MET at the end: p99 at most 100 ms at 2,000 subscribers
and 300 ms at 5,000; at most 150 MB resident with 2,000 connected; and within 1.5x of the bare
broadcast measured in the same run, in p99 latency (from the change's start) and in resident memory.

What the script does
  1. prepares the database: a SQLite file in a temp dir (one instance), or the PostgreSQL database
     given (migrated and filled with the demo set ONLY if it is empty: another bench or a test run
     may share it, and anything found in it is left alone; if this run filled it, it is emptied again
     at the end, provided it still holds only the demo set);
  2. starts the real server(s) as subprocesses, `python -m uvicorn --factory capacity.app:create_app`
     (uvicorn's defaults: uvloop, httptools, and for WebSockets the `websockets` sans-I/O
     implementation with permessage-deflate), and, with --instances 2, CAPACITY_REDIS_URL so events
     travel through Redis pub/sub;
  3. in client worker processes (default 2), opens subscribers to /ws/events as the demo commissioner
     (one login, one token reused), up to each level (default 1,000, 2,000, 5,000; with two instances
     spread evenly over both), and waits for every "hello" frame;
  4. at each level makes one warm-up change and then --changes changes, spaced: PUT
     /api/units/{id}/availability as the demo bed manager on instance A, each with a new open_places,
     and waits for every subscriber's `unit.availability` frame carrying that value;
  5. reads the server's VmRSS from /proc before connecting and at each level;
  6. repeats 3-5 against a bare Litestar app on the same uvicorn (the baseline): its /ws/events sends
     a hello and registers the socket; POST /broadcast schedules one loop that sends one pre-encoded
     frame of the same shape and size to every socket (with two instances, through a Redis channel of
     its own); the ratio capacity / baseline is printed;
then prints one table.

How delivery is timed
  Each client socket has SO_TIMESTAMPNS set, so every read carries the kernel's receive timestamp:
  the moment the server's write landed in the client's socket buffer. Latencies are taken from that
  timestamp, so a client process that is slow to read (5,000 sockets on a 2-core machine) does not
  inflate them; the time the client's code got to the frame is recorded too and its lag is printed
  as the client overhead.
  Three reference points, all on the same machine clock (CLOCK_REALTIME):
    t_start  just before the PUT is sent;
    at       the event's own stamp: the service's clock read at the start of the write transaction,
             before the row lock and the commit (declare_availability takes `now` first);
    t_resp   just after the PUT's response was read; the commit precedes it, since events are
             published only after the commit and the response follows.
  So t_start < at < commit < t_resp, and latency from commit lies between
    "from response" = recv - t_resp   (lower bound; the table's main figures), and
    "from at"       = recv - at       (upper bound; the tighter of the two upper bounds), and
    "from start"    = recv - t_start  (the client-visible figure, PUT included).
  p50/p99 are over every client x change; "last" is the time to the last client of each change
  (median and worst over the changes).

    .venv/bin/python bench/fanout.py
    .venv/bin/python bench/fanout.py --instances 2 \
        --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/capacity_h2 \
        --redis-url redis://127.0.0.1:6379/6

Only 127.0.0.1 is targeted; every wait is bounded in time and every loop in count.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import resource
import shutil
import socket
import struct
import sys
import tempfile
import time
import zlib
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from _harness import (
    BENCH,
    HOST,
    ROOT,
    capacity_env,
    check_postgres_url,
    database,
    empty_postgres,
    log,
    login,
    machine_cpu,
    process_cpu,
    rss_mb,
    server,
)

SUBSCRIBER_USER = "commissioner"  # hears unit.availability and nothing about people
CHANGER_USER = "bedmanager"  # manages the demo's awp units
DEMO_PASSWORD = "demo"
UNIT_NAME = "Callington Road Acute Ward (demo)"  # an awp unit
AIM_P99_MS = {2000: 100.0, 5000: 300.0}
AIM_RSS_MB, AIM_RSS_AT = 150.0, 2000
AIM_RATIO = 1.5  # capacity / the bare broadcast, p99 latency and resident memory
BASELINE_CHANNEL = "fanout-bench-baseline"  # the baseline's own Redis channel, not the service's
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux
TS_SPACE = socket.CMSG_SPACE(16)


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------------------------------
# The client: a minimal WebSocket client on raw non-blocking sockets (RFC 6455, permessage-deflate
# as browsers offer it). A read costs one recvmsg and a header parse; inflating and JSON decoding
# wait until the change is over, so they do not delay the reading of the other sockets.
# --------------------------------------------------------------------------------------------------


class Conn:
    __slots__ = (
        "sock",
        "fd",
        "port_index",
        "buf",
        "frames",
        "inflater",
        "wbits",
        "no_takeover",
        "hello",
        "armed_at",
        "closed",
        "parsed",
        "messages",
        "last_seq",
        "gaps",
        "worker",
    )

    def __init__(self, worker: Worker, sock: socket.socket, port_index: int) -> None:
        self.worker = worker
        self.sock = sock
        self.fd = sock.fileno()
        self.port_index = port_index
        self.buf = bytearray()
        self.frames: list[tuple[float, float, bool, bytes]] = []  # kernel ts, read ts, compressed, payload
        self.inflater = None
        self.wbits = 15
        self.no_takeover = False
        self.hello: asyncio.Future | None = None
        self.armed_at = -1
        self.closed = False
        self.parsed = 0
        self.messages: list[tuple[float, float, dict]] = []
        self.last_seq = 0
        self.gaps = 0

    def on_readable(self) -> None:
        try:
            data, ancdata, _, _ = self.sock.recvmsg(262144, TS_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancdata = b"", []
        read_at = time.time()
        kernel_at = read_at
        for level, kind, raw in ancdata:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(raw) >= 16:
                sec, nsec = struct.unpack("qq", raw[:16])
                kernel_at = sec + nsec / 1e9
        if not data:
            self.close()
            return
        self.buf += data
        self.parse(kernel_at, read_at)

    def parse(self, kernel_at: float, read_at: float) -> None:
        buf = self.buf
        pos = 0
        while len(buf) - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if len(buf) - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif length == 127:
                if len(buf) - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            if len(buf) - pos < head + length:
                break
            payload = bytes(buf[pos + head : pos + head + length])
            pos += head + length
            opcode = b0 & 0x0F
            if opcode == 0x1:  # text (the server never fragments its frames)
                self.frames.append((kernel_at, read_at, bool(b0 & 0x40), payload))
                if self.hello is not None and not self.hello.done():
                    self.hello.set_result(None)
                if len(self.frames) == self.armed_at + 1:
                    self.worker.arrived()
            elif opcode == 0x9:  # ping: answer at once, as a browser does
                self.send_frame(0xA, payload)
            elif opcode == 0x8:  # close
                self.close()
                return
        del buf[:pos]

    def send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.sock.send(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)
        except OSError:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.fd)
        self.sock.close()
        if self.hello is not None and not self.hello.done():
            self.hello.set_exception(ConnectionError("closed before hello"))
        if self.armed_at >= 0 and len(self.frames) <= self.armed_at:
            self.worker.arrived()  # nothing more will come: do not keep the change waiting

    def decode_pending(self) -> None:
        """Inflate (in order: the deflate context is carried across messages) and decode new frames."""
        for kernel_at, read_at, compressed, payload in self.frames[self.parsed :]:
            if compressed:
                if self.inflater is None or self.no_takeover:
                    self.inflater = zlib.decompressobj(wbits=-self.wbits)
                payload = self.inflater.decompress(payload + b"\x00\x00\xff\xff")
            message = json.loads(payload)
            seq = message.get("seq", 0)
            if seq != self.last_seq + 1:
                self.gaps += 1
            self.last_seq = seq
            self.messages.append((kernel_at, read_at, message))
        self.parsed = len(self.frames)


class Worker:
    """One client process: holds its share of the sockets and answers the main process's commands."""

    def __init__(self, pipe) -> None:
        self.pipe = pipe
        self.conns: list[Conn] = []
        self.pending = 0
        self.armed: list[int] = []
        self.all_arrived = asyncio.Event()

    def arrived(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.all_arrived.set()

    async def open_one(self, port: int, port_index: int, path: str, deflate: bool) -> Conn:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        try:
            await loop.sock_connect(sock, (HOST, port))
            key = base64.b64encode(os.urandom(16)).decode()
            request = (
                f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            )
            if deflate:  # what browsers offer
                request += "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
            await loop.sock_sendall(sock, (request + "\r\n").encode())
            response = b""
            while b"\r\n\r\n" not in response:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk or len(response) > 65536:
                    raise ConnectionError("no upgrade response")
                response += chunk
        except BaseException:
            sock.close()
            raise
        head, _, rest = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise ConnectionError(head.split(b"\r\n", 1)[0].decode(errors="replace"))
        conn = Conn(self, sock, port_index)
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "sec-websocket-extensions":
                for param in value.split(";"):
                    param = param.strip()
                    if param.startswith("server_max_window_bits="):
                        conn.wbits = int(param.split("=", 1)[1])
                    elif param == "server_no_context_takeover":
                        conn.no_takeover = True
        conn.hello = loop.create_future()
        self.conns.append(conn)
        loop.add_reader(conn.fd, conn.on_readable)
        if rest:
            conn.buf += rest
            now = time.time()
            conn.parse(now, now)
        return conn

    async def connect(
        self, ports: list[int], first: int, count: int, path: str, deflate: bool, concurrency: int, wait: float
    ) -> dict:
        """Open `count` more subscribers, spread over `ports`, and wait for each one's hello."""
        started = time.perf_counter()
        gate = asyncio.Semaphore(concurrency)
        errors: dict[str, int] = {}

        async def one(i: int) -> None:
            index = (first + i) % len(ports)
            async with gate:
                try:
                    conn = await asyncio.wait_for(self.open_one(ports[index], index, path, deflate), wait)
                    await asyncio.wait_for(asyncio.shield(conn.hello), wait)
                except Exception as exc:  # counted and reported, never silently dropped
                    name = type(exc).__name__ + (f": {exc}" if str(exc) else "")
                    errors[name[:120]] = errors.get(name[:120], 0) + 1

        await asyncio.gather(*(one(i) for i in range(count)))
        return dict(open=sum(not c.closed for c in self.conns), errors=errors, seconds=time.perf_counter() - started)

    def arm(self) -> None:
        """Mark where the next change's frames begin on every open socket."""
        for conn in self.conns:
            conn.decode_pending()
        self.armed = [i for i, c in enumerate(self.conns) if not c.closed]
        for i in self.armed:
            self.conns[i].armed_at = len(self.conns[i].frames)
        self.pending = len(self.armed)
        self.all_arrived = asyncio.Event()
        if self.pending == 0:
            self.all_arrived.set()

    async def collect(self, unit_id: str, value: int, wait: float) -> dict:
        """Wait (bounded) for every armed socket's frame with this value; return each one's timestamps."""
        deadline = time.monotonic() + wait
        found: dict[int, tuple] = {}
        while True:
            remaining = deadline - time.monotonic()
            if remaining > 0:
                try:
                    await asyncio.wait_for(self.all_arrived.wait(), remaining)
                except TimeoutError:
                    pass
            waiting = []
            for i in self.armed:
                if i in found:
                    continue
                conn = self.conns[i]
                conn.decode_pending()
                for kernel_at, read_at, message in conn.messages[conn.armed_at :]:
                    data = message.get("data") or {}
                    if (
                        message.get("type") == "unit.availability"
                        and data.get("unit_id") == unit_id
                        and data.get("open_places") == value
                    ):
                        at = datetime.fromisoformat(message["at"]).timestamp()
                        found[i] = (conn.port_index, kernel_at, read_at, at)
                        break
                else:
                    if not conn.closed:
                        waiting.append(conn)
            if not waiting or time.monotonic() >= deadline:
                break
            # Something else arrived first (a foreign event): wait for one more frame on those sockets.
            for conn in waiting:
                conn.armed_at = len(conn.frames)
            self.pending = len(waiting)
            self.all_arrived = asyncio.Event()
        return dict(
            found=list(found.values()), missing=len(self.armed) - len(found), closed=sum(c.closed for c in self.conns)
        )

    def close_all(self) -> None:
        for conn in self.conns:
            conn.close()
        self.conns = []

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue = asyncio.Queue()
        loop.add_reader(self.pipe.fileno(), lambda: commands.put_nowait(self.pipe.recv()))
        while True:
            command, kwargs = await commands.get()
            if command == "connect":
                reply = await self.connect(**kwargs)
            elif command == "arm":
                self.arm()
                reply = "armed"
            elif command == "collect":
                reply = await self.collect(**kwargs)
                reply["gaps"] = sum(c.gaps for c in self.conns)
            elif command == "usage":
                reply = dict(cpu=process_cpu(os.getpid()), rss_mb=rss_mb(os.getpid()))
            elif command == "close":
                self.close_all()
                reply = "closed"
            elif command == "exit":
                self.close_all()
                self.pipe.send("bye")
                return
            else:
                reply = f"unknown command {command}"
            self.pipe.send(reply)


def worker_main(pipe) -> None:
    raise_fd_limit()
    asyncio.run(Worker(pipe).serve())


class Clients:
    """The main process's handle on the client worker processes."""

    def __init__(self, processes: int) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh, small interpreter per worker
        self.pipes = []
        self.procs = []
        for _ in range(processes):
            ours, theirs = context.Pipe()
            proc = context.Process(target=worker_main, args=(theirs,), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)
        self.connected = 0

    def ask(self, command: str, timeout: float = 300, **kwargs) -> list:
        for pipe in self.pipes:
            pipe.send((command, kwargs))
        replies = []
        deadline = time.monotonic() + timeout
        for pipe in self.pipes:
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise SystemExit(f"a client worker did not answer {command!r} in {timeout:.0f} s")
            replies.append(pipe.recv())
        return replies

    def connect_up_to(self, total: int, ports: list[int], path: str, deflate: bool, timeout: float) -> dict:
        more = total - self.connected
        shares = [more // len(self.pipes) + (1 if i < more % len(self.pipes) else 0) for i in range(len(self.pipes))]
        first = self.connected
        for pipe, share in zip(self.pipes, shares, strict=True):
            pipe.send(
                (
                    "connect",
                    dict(
                        ports=ports, first=first, count=share, path=path, deflate=deflate, concurrency=48, wait=timeout
                    ),
                )
            )
            first += share
        replies = [pipe.recv() for pipe in self.pipes]
        self.connected = total
        errors: dict[str, int] = {}
        for r in replies:
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        return dict(open=sum(r["open"] for r in replies), errors=errors, seconds=max(r["seconds"] for r in replies))

    def close_all(self) -> None:
        self.ask("close", timeout=60)
        self.connected = 0

    def cpu(self) -> float:
        return sum(r["cpu"] for r in self.ask("usage", timeout=30))

    def rss_mb(self) -> float:
        return sum(r["rss_mb"] for r in self.ask("usage", timeout=30))

    def stop(self) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(("exit", {}))
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def start_instances(
    stack: ExitStack, args, name: str, factory: str, env: dict[str, str], workdir: Path
) -> list[tuple[int, int]]:
    """--instances servers of one target, each one uvicorn process (its pid is the server's), stopped
    when `stack` closes; (port, pid) of each."""
    return [
        stack.enter_context(
            server(
                workdir / f"{name}-{i}.log",
                env,
                factory=factory,
                app_root=args.app_root,
                pythonpath=(args.app_root, BENCH),
                extra_args=args.uvicorn_args.split(),
            )
        )
        for i in range(args.instances)
    ]


# --------------------------------------------------------------------------------------------------
# The baseline: a bare Litestar app on the same uvicorn, broadcasting one pre-encoded frame.
# Started by uvicorn as `fanout:baseline_app` (bench/ on PYTHONPATH); imports nothing of capacity.
# --------------------------------------------------------------------------------------------------


def baseline_app():
    from contextlib import asynccontextmanager

    from litestar import Litestar, WebSocket, get, post, websocket
    from litestar.exceptions import WebSocketDisconnect

    sockets: set[WebSocket] = set()
    tasks: set[asyncio.Task] = set()
    redis_url = os.environ.get("FANOUT_BASELINE_REDIS_URL")
    state: dict = {}

    async def fan_out(frame: str) -> None:
        for ws in list(sockets):
            try:
                await ws.send_text(frame)
            except Exception:
                sockets.discard(ws)

    def spawn(coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def listen(pubsub) -> None:
        async for message in pubsub.listen():
            if message.get("type") == "message":
                await fan_out(message["data"].decode())

    @asynccontextmanager
    async def lifespan(app: Litestar):
        if redis_url:
            from redis.asyncio import Redis

            state["redis"] = Redis.from_url(redis_url)
            pubsub = state["redis"].pubsub()
            await pubsub.subscribe(BASELINE_CHANNEL)
            spawn(listen(pubsub))
        yield
        if redis_url:
            await state["redis"].aclose()

    @get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @websocket("/ws/events")
    async def events(socket: WebSocket) -> None:
        await socket.accept()
        await socket.send_text(
            json.dumps(
                {
                    "seq": 1,
                    "type": "hello",
                    "at": datetime.now().astimezone().isoformat(),
                    "data": {"username": "baseline", "role": "baseline"},
                }
            )
        )
        sockets.add(socket)
        try:
            while True:
                await socket.receive_data(mode="text")
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(socket)

    @post("/broadcast", status_code=202)
    async def broadcast(data: dict) -> None:
        frame = json.dumps(
            {
                "seq": data["seq"],
                "type": "unit.availability",
                "at": datetime.now().astimezone().isoformat(),
                "data": data["data"],
            }
        )
        if redis_url:
            await state["redis"].publish(BASELINE_CHANNEL, frame)
        else:
            spawn(fan_out(frame))

    return Litestar([health, events, broadcast], lifespan=[lifespan])


# --------------------------------------------------------------------------------------------------
# The database
# --------------------------------------------------------------------------------------------------


async def database_state(url: str) -> str:
    """'empty', 'demo' (the demo set, reusable) or 'other' (someone else's data: hands off)."""
    from sqlalchemy import text

    async with database(url) as db, db.engine.connect() as conn:
        if db.is_sqlite:
            tables = (await conn.execute(text("SELECT count(*) FROM sqlite_master WHERE type='table'"))).scalar()
        else:
            tables = (
                await conn.execute(text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"))
            ).scalar()
        if not tables:
            return "empty"
        try:
            users = set((await conn.execute(text("SELECT username FROM users"))).scalars())
            units = (await conn.execute(text("SELECT count(*) FROM units WHERE name = :n"), {"n": UNIT_NAME})).scalar()
        except Exception:
            return "other"
        demo_users = {"admin", "amhp", "bedmanager", "commissioner", "conveyance"}
        return "demo" if users == demo_users and units == 1 else "other"


async def load_demo_set(url: str) -> None:
    from capacity.clock import Clock
    from capacity.demo import load_demo

    async with database(url, demo=True) as db:
        if not await load_demo(db, Clock().now()):
            raise SystemExit("the database filled up under us: another bench is using it")


def prepare_database(url: str, reuse_demo: bool) -> bool:
    """Migrate an empty database and load the demo set into it; True if we filled it.

    A database that holds anything is someone else's (another bench or a test run may share it), and
    is left alone, unless --reuse-demo is given and it holds exactly the demo set.
    """
    from capacity.cli import migrate_to_head

    state = asyncio.run(database_state(url))
    if state == "demo" and reuse_demo:
        log("the database holds the demo set: reusing it (--reuse-demo)")
        return False
    if state != "empty":
        raise SystemExit(
            f"the database is not empty ({'the demo set' if state == 'demo' else 'other data'}): "
            "another bench or test may be using it. This bench loads the demo set only into an "
            "empty database; run again when it is free (or pass --reuse-demo if the demo set in it "
            "is yours)."
        )
    migrate_to_head(url)
    asyncio.run(load_demo_set(url))
    log("migrated the empty database to head and loaded the demo set")
    return True


# --------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """Percentile of the values, nan when there are none. Not the harness's nearest-rank `percentile`:
    when p% of the count is an odd whole number this takes the next value up (round() rounds half to
    even), and keeping it keeps the figures comparable with earlier runs of this bench."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


@dataclass
class Level:
    target: str  # "capacity" or "baseline"
    subscribers: int
    connected: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    connect_seconds: float = 0.0
    from_resp: list[float] = field(default_factory=list)  # seconds, every client x change
    from_at: list[float] = field(default_factory=list)
    from_start: list[float] = field(default_factory=list)
    read_lag: list[float] = field(default_factory=list)  # client's read time - kernel time
    last_resp: list[float] = field(default_factory=list)  # per change
    last_start: list[float] = field(default_factory=list)
    put_ms: list[float] = field(default_factory=list)
    missing: int = 0
    closed: int = 0
    gaps: int = 0
    by_instance: dict[int, list[float]] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)  # per instance, after the changes
    server_cpu_per_frame_us: float = float("nan")
    client_cpu_per_frame_us: float = float("nan")
    other_load_cores: float = float("nan")

    def ms(self, values: list[float], p: float) -> float:
        return pct(values, p) * 1000


class Changer:
    """Makes the change: PUT availability on the service, or POST /broadcast on the baseline."""

    def __init__(self, target: str, port: int, bed_token: str | None, unit_id: str | None, sample_data: dict) -> None:
        import httpx

        self.target = target
        self.client = httpx.Client(
            base_url=f"http://{HOST}:{port}",
            timeout=30,
            headers={"Authorization": f"Bearer {bed_token}"} if bed_token else {},
        )
        self.unit_id = unit_id or sample_data["unit_id"]
        self.sample = sample_data
        self.seq = 1

    def change(self, value: int) -> tuple[float, float]:
        if self.target == "capacity":
            body = {"open_places": value, "status": "open", "note": "bench/fanout.py"}
            started = time.time()
            response = self.client.put(f"/api/units/{self.unit_id}/availability", json=body)
            finished = time.time()
            if response.status_code != 200:
                raise SystemExit(f"PUT availability answered {response.status_code}: {response.text[:300]}")
            return started, finished
        self.seq += 1
        body = {"seq": self.seq, "data": dict(self.sample, open_places=value)}
        started = time.time()
        response = self.client.post("/broadcast", json=body)
        finished = time.time()
        if response.status_code != 202:
            raise SystemExit(f"POST /broadcast answered {response.status_code}: {response.text[:300]}")
        return started, finished

    def close(self) -> None:
        self.client.close()


def run_level(
    level: Level,
    clients: Clients,
    changer: Changer,
    server_pids: list[int],
    changes: int,
    spacing: float,
    values,
    timeout: float,
) -> None:
    def one_change(record: bool) -> None:
        value = next(values)
        clients.ask("arm", timeout=60)
        started, finished = changer.change(value)
        replies = clients.ask("collect", timeout=timeout + 60, unit_id=changer.unit_id, value=value, wait=timeout)
        if not record:
            return
        found = [f for r in replies for f in r["found"]]
        level.missing += sum(r["missing"] for r in replies)
        level.closed = sum(r["closed"] for r in replies)
        level.gaps = sum(r["gaps"] for r in replies)
        level.put_ms.append((finished - started) * 1000)
        if not found:
            return
        for port_index, kernel_at, read_at, at in found:
            level.from_resp.append(kernel_at - finished)
            level.from_at.append(kernel_at - at)
            level.from_start.append(kernel_at - started)
            level.read_lag.append(read_at - kernel_at)
            level.by_instance.setdefault(port_index, []).append(kernel_at - finished)
        last = max(f[1] for f in found)
        level.last_resp.append(last - finished)
        level.last_start.append(last - started)

    one_change(record=False)  # warm-up: not counted
    time.sleep(spacing)
    server_cpu = sum(process_cpu(p) for p in server_pids)
    client_cpu = clients.cpu()
    busy = sum(machine_cpu())  # busy and steal: all the machine's time that was not idle
    wall = time.monotonic()
    main_cpu = time.process_time()
    for _ in range(changes):
        one_change(record=True)
        time.sleep(spacing)
    wall = time.monotonic() - wall
    server_used = sum(process_cpu(p) for p in server_pids) - server_cpu
    client_used = clients.cpu() - client_cpu
    main_used = time.process_time() - main_cpu
    frames = len(level.from_resp) or float("nan")
    level.server_cpu_per_frame_us = server_used / frames * 1e6
    level.client_cpu_per_frame_us = client_used / frames * 1e6
    # Everything busy on the machine that was none of ours (another bench, say), in cores.
    level.other_load_cores = max(0.0, (sum(machine_cpu()) - busy - server_used - client_used - main_used) / wall)
    level.rss_mb = [rss_mb(p) for p in server_pids]


def find_unit(port: int, token: str) -> dict:
    import httpx

    response = httpx.get(f"http://{HOST}:{port}/api/units", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    for unit in response.json():
        if unit["name"] == UNIT_NAME:
            return unit
    raise SystemExit(f"no unit named {UNIT_NAME!r}")


def run_target(
    args, target: str, ports: list[int], pids: list[int], clients: Clients, values, sample: dict | None
) -> tuple[list[Level], dict, list[float]]:
    """All levels against one target (the service or the baseline); returns levels, sample data, idle RSS."""
    bed_token = unit = None
    if target == "capacity":
        sub_token = login(ports[0], SUBSCRIBER_USER, DEMO_PASSWORD)
        bed_token = login(ports[0], CHANGER_USER, DEMO_PASSWORD)
        unit = find_unit(ports[0], bed_token)
        sample = {
            k: unit[k] for k in ("status", "open_places", "held", "occupied", "available", "last_confirmed_at", "stale")
        }
        sample = dict(unit_id=unit["id"], **sample)
        path = f"/ws/events?token={sub_token}"
        changer = Changer(target, ports[0], bed_token, unit["id"], sample)
        changer.change(next(values))  # warm the write path before the idle reading
    else:
        path = "/ws/events?token=baseline"
        changer = Changer(target, ports[0], None, None, sample or {})
    idle_rss = [rss_mb(p) for p in pids]
    levels = []
    try:
        for n in args.levels:
            level = Level(target, n)
            log(f"{target}: connecting up to {n} subscribers over {len(ports)} instance(s)")
            result = clients.connect_up_to(n, ports, path, not args.no_deflate, timeout=args.connect_timeout)
            level.connected, level.connect_errors, level.connect_seconds = (
                result["open"],
                result["errors"],
                result["seconds"],
            )
            if result["errors"]:
                log(f"  connect errors: {result['errors']}")
            log(f"  {result['open']} open ({result['seconds']:.1f} s); {args.changes} changes")
            run_level(level, clients, changer, pids, args.changes, args.spacing, values, args.change_timeout)
            log(
                f"  p50 {level.ms(level.from_resp, 50):.1f} ms, p99 {level.ms(level.from_resp, 99):.1f} ms, "
                f"last {max(level.last_resp, default=float('nan')) * 1000:.1f} ms, "
                f"RSS {'/'.join(f'{r:.0f}' for r in level.rss_mb)} MB, missing {level.missing}"
            )
            levels.append(level)
    finally:
        changer.close()
        clients.close_all()
    return levels, sample, idle_rss


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds == seconds else "-"


def level_aims(args, lv: Level, base: Level | None) -> list[tuple[str, str]]:
    """(aim, MET / NOT MET and the figure) for one level of the service. The p99 aim is MET only when
    both bounds of 'from commit' are within it (the lower bound alone meeting it is said)."""

    def verdict(ok: bool, figure: str) -> str:
        return f"{'MET' if ok else 'NOT MET'} ({figure})"

    aims = []
    aim = AIM_P99_MS.get(lv.subscribers)
    if aim is not None:
        lower, upper = lv.ms(lv.from_resp, 99), lv.ms(lv.from_at, 99)
        figure = f"{lower:.1f} to {upper:.1f} ms" + ("; the lower bound meets it" if lower <= aim < upper else "")
        aims.append((f"p99 <= {aim:.0f} ms from commit", verdict(upper <= aim, figure)))
    if lv.subscribers == AIM_RSS_AT and args.instances == 1:
        aims.append((f"RSS <= {AIM_RSS_MB:.0f} MB", verdict(max(lv.rss_mb) <= AIM_RSS_MB, f"{max(lv.rss_mb):.0f} MB")))
    if base is not None and base.from_start and lv.from_start:
        latency = pct(lv.from_start, 99) / pct(base.from_start, 99)
        aims.append((f"p99 <= {AIM_RATIO}x the bare broadcast's", verdict(latency <= AIM_RATIO, f"x{latency:.2f}")))
        memory = sum(lv.rss_mb) / sum(base.rss_mb)
        aims.append((f"RSS <= {AIM_RATIO}x the bare broadcast's", verdict(memory <= AIM_RATIO, f"x{memory:.2f}")))
    return aims


def report(args, capacity: list[Level], baseline: list[Level], idle: dict, machine: dict) -> None:
    engine = (
        "PostgreSQL"
        if args.database_url
        else "SQLite (one file shared by the instances)"
        if args.instances == 2
        else "SQLite"
    )
    mode = (
        f"{args.instances} instances through Redis ({args.redis_url}), {engine}"
        if args.instances == 2
        else f"1 instance, {engine}"
    )
    w = print
    w("")
    w(f"Fan-out of one change to N WebSocket subscribers: {mode}")
    w(
        f"machine: {machine['cores']} cores (server, clients and the PUT all share them), load average "
        f"{machine['load']}; Python {sys.version.split()[0]}; uvicorn {machine['uvicorn']} (uvloop, httptools, "
        f"ws=websockets sans-I/O {machine['websockets']}); permessage-deflate "
        f"{'offered by the clients, as browsers do' if not args.no_deflate else 'NOT offered (--no-deflate)'}"
    )
    w(
        f"clients: {args.client_procs} worker processes, raw sockets, fd limit {machine['fd_limit']}; subscribers "
        f"as '{SUBSCRIBER_USER}'; change = PUT /api/units/{{id}}/availability as '{CHANGER_USER}' on instance A; "
        f"{args.changes} changes per level (+1 warm-up), {args.spacing:.2f} s apart"
    )
    w(f"server RSS before connecting: capacity {idle['capacity']} MB, baseline {idle['baseline']} MB")
    busy = max((lv.other_load_cores for lv in capacity + baseline), default=0.0)
    if busy > 0.25:
        w(
            f"WARNING: other processes kept up to {busy:.1f} of the {machine['cores']} cores busy during the changes: "
            "latencies include waiting for a core; CPU/chg and RSS are the steadier figures."
        )
    w("")
    w("Latency (ms) from the kernel's receive timestamp of each client's unit.availability frame:")
    w("  resp  = minus the PUT response's arrival (commit precedes it: LOWER bound of 'from commit')")
    w("  at    = minus the event's `at` (clock read at transaction start, before commit: UPPER bound)")
    w("  start = minus the PUT's start (what the changer sees end to end)")
    w("  last  = time to the last client of a change, from resp: median / worst of the changes")
    w("")
    header = (
        f"{'target':<9} {'inst':>4} {'subs':>5} {'p50 resp':>9} {'p99 resp':>9} {'p99 at':>7} "
        f"{'p99 start':>9} {'last resp':>13} {'PUT':>6} {'lost':>5} {'RSS MB':>11} {'CPU/chg':>7}"
    )
    w(header)
    w("-" * len(header))
    by_n = {b.subscribers: b for b in baseline}
    for lv in capacity + baseline:
        last = f"{fmt_ms(pct(lv.last_resp, 50))}/{fmt_ms(max(lv.last_resp, default=float('nan')))}"
        lost = lv.missing + (lv.subscribers - lv.connected)
        w(
            f"{lv.target:<9} {args.instances:>4} {lv.subscribers:>5} {lv.ms(lv.from_resp, 50):>9.1f} "
            f"{lv.ms(lv.from_resp, 99):>9.1f} "
            f"{lv.ms(lv.from_at, 99) if lv.target == 'capacity' else float('nan'):>7.1f} "
            f"{lv.ms(lv.from_start, 99):>9.1f} {last:>13} {pct(lv.put_ms, 50):>6.1f} {lost:>5} "
            f"{'/'.join(f'{r:.0f}' for r in lv.rss_mb):>11} {lv.server_cpu_per_frame_us * lv.subscribers / 1000:>7.0f}"
        )
    w("")
    if baseline:
        w(
            "capacity / baseline, same N, same clients, same uvicorn (latencies from the change's start, as "
            "'resp' can be negative: a client may get its frame before the changer reads its response):"
        )
    for lv in capacity:
        b = by_n.get(lv.subscribers)
        if not b or not b.from_start or not lv.from_start:
            continue

        def ratio(ours: float, theirs: float) -> str:
            return f"x{ours / theirs:.1f}" if ours > 0 and theirs > 0 else "n/a"

        w(
            f"  {lv.subscribers:>5} subscribers: p50 {ratio(pct(lv.from_start, 50), pct(b.from_start, 50))}, "
            f"p99 {ratio(pct(lv.from_start, 99), pct(b.from_start, 99))}, "
            f"last {ratio(pct(lv.last_start, 50), pct(b.last_start, 50))}, "
            f"server CPU per frame {ratio(lv.server_cpu_per_frame_us, b.server_cpu_per_frame_us)} "
            f"({lv.server_cpu_per_frame_us:.0f} vs {b.server_cpu_per_frame_us:.0f} us), "
            f"RSS {'/'.join(f'{r:.0f}' for r in lv.rss_mb)} vs {'/'.join(f'{r:.0f}' for r in b.rss_mb)} MB"
        )
    w("")
    w("aims (issue 15 item 4):")
    for lv in capacity:
        for name, verdict in level_aims(args, lv, by_n.get(lv.subscribers)):
            w(f"  {lv.subscribers:>5} subscribers: {name:<38} {verdict}")
    w("")
    w("client overhead and conditions:")
    for lv in capacity + baseline:
        extra = ""
        if len(lv.by_instance) > 1:
            extra = "; p99 by instance " + ", ".join(
                f"{'AB'[i]} {pct(v, 99) * 1000:.1f}" for i, v in sorted(lv.by_instance.items())
            )
        errors = f"; connect errors {lv.connect_errors}" if lv.connect_errors else ""
        gaps = f"; seq gaps {lv.gaps}" if lv.target == "capacity" else ""
        w(
            f"  {lv.target:<9} {lv.subscribers:>5}: client read lag p50 {lv.ms(lv.read_lag, 50):.1f} / p99 "
            f"{lv.ms(lv.read_lag, 99):.1f} ms (not in the latencies), client CPU {lv.client_cpu_per_frame_us:.0f} "
            f"us/frame, other load on the machine {lv.other_load_cores:.2f} cores, connected in "
            f"{lv.connect_seconds:.1f} s{gaps}{extra}{errors}"
        )
    w("")
    w(
        "CPU/chg = server CPU ms (user+sys, all instances) per change = per delivered frame x N, which includes the "
        "PUT, the sweep and keep-alive pings: on one idle core the last client cannot be served sooner. "
        f"lost = not connected + frames not delivered within {args.change_timeout:.0f} s. PUT = median PUT ms."
    )


# --------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------


def main(args) -> None:
    sys.path.insert(0, str(args.app_root))
    import uvicorn
    import websockets

    fd_limit = raise_fd_limit()
    need = max(args.levels) // args.client_procs + 64
    if fd_limit < need:
        raise SystemExit(f"file descriptor limit {fd_limit} is below the {need} each client worker needs")
    machine = dict(
        cores=os.cpu_count(),
        load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        uvicorn=uvicorn.__version__,
        websockets=websockets.__version__,
        fd_limit=fd_limit,
    )
    log(f"{machine['cores']} cores; load average {machine['load']}")
    if args.instances == 2 and not args.redis_url:
        raise SystemExit("two instances need --redis-url (and should have --database-url, PostgreSQL)")
    if args.redis_url:
        from urllib.parse import urlsplit

        if urlsplit(args.redis_url).hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit("the bench only talks to a local Redis (127.0.0.1)")
    workdir = Path(tempfile.mkdtemp(prefix="capacity-fanout-"))
    filled_pg = False
    values = iter(range(21, 21 + 10_000))  # a new open_places for every change: 21, 22, ...
    try:
        if args.database_url:
            check_postgres_url(args.database_url)
            url = args.database_url
        else:
            url = f"sqlite+aiosqlite:///{workdir / 'fanout.db'}"
        filled = prepare_database(url, args.reuse_demo)
        filled_pg = filled and not url.startswith("sqlite")
        env = capacity_env(url)
        if args.redis_url:
            env["CAPACITY_REDIS_URL"] = args.redis_url
        clients = Clients(args.client_procs)
        try:
            with ExitStack() as stack:
                servers = start_instances(stack, args, "capacity", "capacity.app:create_app", env, workdir)
                log(f"capacity: {args.instances} instance(s) on ports {[p for p, _ in servers]}")
                capacity, sample, idle_capacity = run_target(
                    args, "capacity", [p for p, _ in servers], [pid for _, pid in servers], clients, values, None
                )
            base_env = {"FANOUT_BASELINE_REDIS_URL": args.redis_url} if args.instances == 2 else {}
            baseline, idle_baseline = [], []
            if not args.no_baseline:
                with ExitStack() as stack:
                    servers = start_instances(stack, args, "baseline", "fanout:baseline_app", base_env, workdir)
                    log(f"baseline: {args.instances} bare Litestar instance(s)")
                    baseline, _, idle_baseline = run_target(
                        args, "baseline", [p for p, _ in servers], [pid for _, pid in servers], clients, values, sample
                    )
        finally:
            clients.stop()
        idle = dict(
            capacity="/".join(f"{r:.0f}" for r in idle_capacity),
            baseline="/".join(f"{r:.0f}" for r in idle_baseline) or "-",
        )
        machine["load"] += f" at start, {' '.join(f'{x:.2f}' for x in os.getloadavg())} at end"
        report(args, capacity, baseline, idle, machine)
    finally:
        if filled_pg and asyncio.run(database_state(args.database_url)) == "demo":
            asyncio.run(empty_postgres(args.database_url))
            log("emptied the PostgreSQL database again, as it was found")
        shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, choices=(1, 2), default=1)
    parser.add_argument(
        "--database-url",
        help="PostgreSQL (postgresql+asyncpg://...) instead of a temp SQLite file;"
        " loaded with the demo set only if empty",
    )
    parser.add_argument(
        "--reuse-demo",
        action="store_true",
        help="use a database that already holds exactly the demo set (yours) instead of refusing",
    )
    parser.add_argument("--redis-url", help="Redis for the events (needed with --instances 2)")
    parser.add_argument(
        "--levels",
        default="1000,2000,5000",
        help="subscriber counts, ascending, comma-separated (default 1000,2000,5000)",
    )
    parser.add_argument("--changes", type=int, default=10, help="measured changes per level (default 10)")
    parser.add_argument("--spacing", type=float, default=0.5, help="seconds between changes (default 0.5)")
    parser.add_argument("--client-procs", type=int, default=2, help="client worker processes (default 2)")
    parser.add_argument(
        "--no-deflate", action="store_true", help="clients do not offer permessage-deflate (browsers do)"
    )
    parser.add_argument(
        "--uvicorn-args",
        default="",
        help="extra uvicorn arguments for every server, e.g. '--ws-per-message-deflate false'",
    )
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="directory holding the capacity package to serve (default: this repo); "
        "point it at a scratch copy to measure a change",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare Litestar baseline")
    parser.add_argument("--connect-timeout", type=float, default=60)
    parser.add_argument(
        "--change-timeout",
        type=float,
        default=15,
        help="longest wait for one change to reach every client (default 15 s)",
    )
    args = parser.parse_args(argv)
    args.levels = sorted(int(n) for n in args.levels.split(","))
    if not 1 <= args.changes <= 1000 or not 1 <= args.client_procs <= 16 or max(args.levels) > 20_000:
        parser.error("keep --changes in 1..1000, --client-procs in 1..16, levels at most 20,000")
    args.app_root = args.app_root.resolve()
    return args


if __name__ == "__main__":
    main(parse_args())
