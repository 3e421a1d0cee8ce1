"""A graceful stop: on SIGTERM (or Ctrl-C) every live socket is closed 1001 first, so dashboards know to
reconnect (to another instance) and resync; then uvicorn stops accepting, finishes the requests in
flight and runs the lifespan's shutdown. uvicorn would end the sockets itself with 1012, a moment later
and without a word to the app; the app's own close says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from capacity.notify.hub import Hub

# The longest the sockets' closing may hold back the rest of the stop.
GRACE_SECONDS = 2.0
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def close_sockets_first(hub: Hub) -> Callable[[], None]:
    """Put a handler in front of the signal handlers the server installed (uvicorn's, which start its
    stop): it closes the sockets, then hands the signal on. Returns what puts the server's back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only (a server in a test's thread)
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in SIGNALS}
    stopping: set[asyncio.Task[None]] = set()

    def hand_on(signum: int, frame: FrameType | None) -> None:
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)

    async def close_then_stop(signum: int, frame: FrameType | None) -> None:
        hub.go_away()
        if hub.streams:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hub.emptied.wait(), GRACE_SECONDS)
        hand_on(signum, frame)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if hub.going_away:  # a second signal: no more waiting
            hand_on(signum, frame)
            return

        def start() -> None:
            task = asyncio.ensure_future(close_then_stop(signum, frame))
            stopping.add(task)
            task.add_done_callback(stopping.discard)

        loop.call_soon_threadsafe(start)

    for sig in SIGNALS:
        signal.signal(sig, on_signal)

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
