"""Europe/London calendar functions for SQLite connections.

PostgreSQL speaks `AT TIME ZONE 'Europe/London'`; SQLite does not, so the report constructs of
`capacity.reports.sql` compile on SQLite to these deterministic Python functions, which
`capacity.db.engine` registers on every connection. They read the naive UTC text SQLite stores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _sqlite_london_date(text: str | None) -> str | None:
    return None if text is None else _utc(text).astimezone(LONDON).date().isoformat()


def _sqlite_london_date_before(text: str | None) -> str | None:
    if text is None:
        return None
    return (_utc(text) - timedelta(microseconds=1)).astimezone(LONDON).date().isoformat()


def _sqlite_london_hour(text: str | None) -> int | None:
    return None if text is None else _utc(text).astimezone(LONDON).hour


def _sqlite_london_isodow(text: str | None) -> int | None:
    return None if text is None else _utc(text).astimezone(LONDON).isoweekday()


def _sqlite_seconds_between(first: str | None, second: str | None) -> float | None:
    if first is None or second is None:
        return None
    return (_utc(second) - _utc(first)).total_seconds()


def _sqlite_year_before(text: str | None) -> str | None:
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    day = 28 if (value.month, value.day) == (2, 29) else value.day
    earlier = value.replace(year=value.year - 1, day=day)
    # The text form SQLAlchemy stores, so that it compares with stored times as text.
    return earlier.strftime("%Y-%m-%d %H:%M:%S.%f")


# (name, number of arguments, function): registered on every SQLite connection, deterministic.
SQLITE_FUNCTIONS = (
    ("london_date", 1, _sqlite_london_date),
    ("london_date_before", 1, _sqlite_london_date_before),
    ("london_hour", 1, _sqlite_london_hour),
    ("london_isodow", 1, _sqlite_london_isodow),
    ("seconds_between", 2, _sqlite_seconds_between),
    ("year_before", 1, _sqlite_year_before),
)
