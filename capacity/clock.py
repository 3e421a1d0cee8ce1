"""One clock (ARCHITECTURE rule 4): `now` is injectable so tests move time without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def wall_now() -> datetime:
    """The real time, whatever clock the service runs on: for what others check against the wall clock,
    such as a signed token's expiry (the JWT library verifies `exp` against real time)."""
    return datetime.now(UTC)


class ShiftedClock(Clock):
    """Real time, shifted so that it read `start` when made: it runs at the real rate from a chosen instant.

    For a real server under a browser test, whose page clock starts at the same instant."""

    def __init__(self, start: datetime) -> None:
        self._shift = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._shift


class FixedClock(Clock):
    """A clock that only moves when told to; for tests and benchmarks."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when
