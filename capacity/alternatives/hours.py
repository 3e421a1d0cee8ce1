"""Opening hours in Europe/London, by weekday, with England's bank holidays.

Hours are `{"mon": [{"opens": "18:00", "closes": "23:00"}], ..., "bank_holidays": None}`: each day's
intervals in local wall-clock time, so 09:00 is 09:00 in GMT and in BST alike. An interval that closes at
or before it opens runs past midnight into the next day, and belongs to the day it opens (Friday's
22:00-02:00 is open at 01:00 on Saturday). `bank_holidays` None keeps the weekday's hours on a bank
holiday, [] closes then, and a list of intervals is the special hours for every bank holiday.

England's bank holidays, substitute days included, come from the `holidays` package (maintained), not
from a list kept here.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    import holidays

LONDON = ZoneInfo("Europe/London")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
BANK_HOLIDAYS = "bank_holidays"


@functools.cache
def _england() -> holidays.HolidayBase:
    """England (subdivision ENG of GB), years computed as they are first asked for. Loaded at the first
    question, not at start: the package and its calendars cost every process 11 MB."""
    import holidays

    return holidays.country_holidays("GB", subdiv="ENG")


def is_bank_holiday(day: date) -> bool:
    return day in _england()


def _clock(text: str) -> time | None:
    """A time of day from HH:MM; 24:00 (only ever a closing time) is None, the end of the day."""
    return None if text == "24:00" else time.fromisoformat(text)


def _intervals_of(hours: dict[str, Any], day: date) -> list[dict[str, str]]:
    special = hours.get(BANK_HOLIDAYS)
    if special is not None and is_bank_holiday(day):
        return list(special)
    return list(hours.get(DAYS[day.weekday()], []))


def is_open(hours: dict[str, Any], at: datetime) -> bool:
    """Whether these hours are open at the instant `at` (aware), read in Europe/London."""
    local = at.astimezone(LONDON).replace(tzinfo=None)
    for day in (local.date(), local.date() - timedelta(days=1)):  # yesterday's overnight hours too
        for interval in _intervals_of(hours, day):
            opens = datetime.combine(day, _clock(interval["opens"]) or time())
            closes_at = _clock(interval["closes"])
            closes = datetime.combine(day, closes_at or time())
            if closes_at is None or closes <= opens:  # 24:00, or past midnight
                closes += timedelta(days=1)
            if opens <= local < closes:
                return True
    return False


def problem(hours: dict[str, Any]) -> tuple[str, str] | None:
    """(field, message) for hours that cannot be meant: an interval opening at 24:00 or closing as it opens."""
    for key in (*DAYS, BANK_HOLIDAYS):
        for index, interval in enumerate(hours.get(key) or []):
            if interval["opens"] == "24:00":
                return f"opening_hours.{key}[{index}].opens", "a day's hours open by 23:59; 24:00 only closes"
            if interval["opens"] == interval["closes"]:
                return f"opening_hours.{key}[{index}].closes", "closes as it opens: use 00:00-24:00 for all day"
    return None


# --- the CSV's words for hours: "mon-fri 09:00-17:00 18:00-23:00; sat,sun 10:00-16:00; bank_holidays closed"

_RANGE = re.compile(r"^(\d{2}:\d{2})-(\d{2}:\d{2})$")


def _days(text: str) -> list[str]:
    days: list[str] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        if first == BANK_HOLIDAYS and not last:
            days.append(BANK_HOLIDAYS)
            continue
        if first not in DAYS or (last and last not in DAYS):
            raise ValueError(f"{part!r} is not a day: mon, tue, wed, thu, fri, sat, sun, bank_holidays or a range")
        start, end = DAYS.index(first), DAYS.index(last or first)
        if end < start:
            raise ValueError(f"{part!r} runs backwards")
        days.extend(DAYS[start : end + 1])
    return days


def parse(text: str) -> dict[str, Any]:
    """The hours a CSV cell says, as the API takes them ("daily" is every weekday; "closed" none)."""
    hours: dict[str, Any] = {}
    for clause in filter(None, (c.strip() for c in text.split(";"))):
        days_text, *ranges = clause.split()
        days = list(DAYS) if days_text == "daily" else _days(days_text)
        if not ranges:
            raise ValueError(f"{clause!r} gives no hours (HH:MM-HH:MM, or closed)")
        intervals = []
        if ranges != ["closed"]:
            for text_range in ranges:
                if (found := _RANGE.match(text_range)) is None:
                    raise ValueError(f"{text_range!r} is not HH:MM-HH:MM")
                intervals.append({"opens": found[1], "closes": found[2]})
        for day in days:
            if day in hours:
                raise ValueError(f"{day} is given twice")
            hours[day] = intervals
    return hours
