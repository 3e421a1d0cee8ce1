"""Fan-out of committed events to every WebSocket on every instance (Litestar Channels).

In-memory by default; Redis pub/sub when CAPACITY_REDIS_URL is set, so an event made on one instance
reaches the clients of all. If Redis goes away the instance keeps serving REST, but its live stream can
no longer be trusted: the `Bus` says so, every open socket is closed 1013 ("try again later") and new
ones are refused 1013, so no dashboard shows stale figures as live. The subscription is taken up again
when Redis returns, and then clients reconnect and resync from the REST snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any

from litestar.channels import ChannelsBackend, ChannelsPlugin, Subscriber
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.channels.backends.redis import RedisChannelsPubSubBackend
from redis.asyncio import Redis
from redis.exceptions import RedisError

from capacity.events import Event, encode
from capacity.settings import Settings

log = logging.getLogger("capacity.notify")
CHANNEL = "events"


class Bus:
    """Whether this instance's live bus works now. `lost` is set when it stops working; the sockets open
    before then wait on it, and a new one is made when the bus is back, for the sockets opened after.
    `listeners` are called when it stops working (the hub closes its sockets)."""

    def __init__(self) -> None:
        self.down = False
        self.lost = asyncio.Event()
        self.listeners: list[Callable[[], None]] = []

    def went_down(self, why: object) -> None:
        if not self.down:
            log.warning("the live bus (Redis) is unavailable (%s): live sockets closed 1013 until it is back", why)
            self.down = True
            self.lost.set()
            for listener in self.listeners:
                listener()

    def came_back(self) -> None:
        if self.down:
            log.info("the live bus (Redis) is back: live sockets accepted again")
            self.down = False
            self.lost = asyncio.Event()


class ResilientRedisBackend(RedisChannelsPubSubBackend):
    """Redis pub/sub that survives Redis restarts instead of ending the plugin's workers.

    Pub/sub channels ignore Redis database numbers (a PUBLISH on db 5 reaches subscribers on db 0),
    so each channel is named after the database of CAPACITY_REDIS_URL: deployments that share one
    Redis server on different databases (staging and production, say) never hear each other's events.
    """

    retry_seconds = 0.5

    def __init__(self, *, redis: Redis, bus: Bus) -> None:
        db = redis.connection_pool.connection_kwargs.get("db", 0)
        super().__init__(redis=redis, key_prefix=f"capacity:{db}:")
        self.bus = bus

    def _wire(self, channels: Iterable[str]) -> list[str]:
        return [self._key_prefix + channel for channel in channels]

    async def subscribe(self, channels: Iterable[str]) -> None:
        await super().subscribe(self._wire(channels))

    async def unsubscribe(self, channels: Iterable[str]) -> None:
        await super().unsubscribe(self._wire(channels))

    async def publish(self, data: bytes, channels: Iterable[str]) -> None:
        try:
            await super().publish(data, self._wire(channels))
        except (RedisError, OSError) as exc:
            log.warning("event not published, Redis unavailable: %s", exc)
            self.bus.went_down(exc)

    async def stream_events(self) -> AsyncGenerator[tuple[str, Any], None]:
        """The parent's loop, also telling the bus whether each read worked: a read that fails marks it
        down, the first that works once redis-py has reconnected and re-subscribed marks it back."""
        while True:
            await self._has_subscribed.wait()
            try:
                message = await self._pub_sub.get_message(
                    ignore_subscribe_messages=True, timeout=self._stream_sleep_no_subscriptions
                )
            except (RedisError, OSError) as exc:
                self.bus.went_down(exc)
                await asyncio.sleep(self.retry_seconds)  # redis-py reconnects on the next read
                continue
            self.bus.came_back()
            if message is None:
                continue
            channel = message["channel"].decode()
            if channel.encode() in self._pub_sub.channels.keys() - self._pub_sub.pending_unsubscribe_channels:
                yield channel.removeprefix(self._key_prefix), message["data"]


class BoundedSubscriber(Subscriber):
    """A subscriber with a bounded backlog that remembers when it overflowed.

    A WebSocket client that falls this far behind is closed, and resyncs from the REST snapshot,
    rather than letting one slow client hold memory without bound.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.overflowed = asyncio.Event()

    def put_nowait(self, item: bytes | None) -> bool:
        if not super().put_nowait(item):
            self.overflowed.set()
            return False
        return True


def make_channels(settings: Settings, bus: Bus) -> ChannelsPlugin:
    backend: ChannelsBackend
    if settings.redis_url:
        backend = ResilientRedisBackend(redis=Redis.from_url(settings.redis_url), bus=bus)
    else:
        backend = MemoryChannelsBackend()
    return ChannelsPlugin(
        backend=backend,
        channels=[CHANNEL],
        subscriber_class=BoundedSubscriber,
        subscriber_max_backlog=settings.ws_max_backlog,
        subscriber_backlog_strategy="backoff",
    )


def make_publisher(channels: ChannelsPlugin) -> Callable[[list[Event]], Awaitable[None]]:
    """The function `Database.write` calls with the events of each committed transaction."""

    async def publish(events: list[Event]) -> None:
        for event in events:
            try:
                channels.publish(encode(event), CHANNEL)
            except Exception:  # the change is committed; a lost event is healed by the client's resync
                log.exception("could not publish %s", event.type)

    return publish
