"""What every report shares: its period and areas, filters, and turning database numbers into JSON ones."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import SupportsFloat, SupportsInt

from sqlalchemy import ColumnElement, SQLColumnExpression, true

from capacity.reports.sql import london_date_of, london_midnight


@dataclass(frozen=True)
class ReportQuery:
    """A report's parameters: local dates `first`..`last` inclusive, and the home areas (None: all)."""

    first: date
    last: date
    areas: tuple[str, ...] | None
    now: datetime

    @property
    def start(self) -> datetime:
        """The UTC instant the period starts: local midnight starting `first`."""
        return london_midnight(self.first)

    @property
    def end(self) -> datetime:
        """The UTC instant the period ends (exclusive): local midnight starting the day after `last`."""
        return london_midnight(self.last + timedelta(days=1))

    @property
    def nights_after(self) -> date:
        """The first local date whose night is not counted: the day after `last`, or, while the period is
        not over, the date of the next local midnight from now (a night counts once it has passed)."""
        today = london_date_of(self.now - timedelta(microseconds=1))
        return min(self.last + timedelta(days=1), max(today, self.first))

    def in_areas(self, column: SQLColumnExpression[str | None]) -> ColumnElement[bool]:
        return true() if self.areas is None else column.in_(self.areas)

    def in_period(self, column: SQLColumnExpression[datetime | None]) -> ColumnElement[bool]:
        """The instant falls on a local date of the period."""
        return (column >= self.start) & (column < self.end)

    def parameters(self, report: str) -> dict[str, str]:
        return {
            "report": report,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "areas": "all" if self.areas is None else " ".join(self.areas),
            "time_zone": "Europe/London",
            "generated_at": self.now.isoformat(),
        }


def integer(value: SupportsInt | None) -> int:
    return int(value or 0)


def money(value: SupportsFloat | None) -> float:
    return round(float(value or 0), 2)


def ratio(part: SupportsFloat | None, whole: SupportsFloat | None, digits: int = 4) -> float | None:
    """part / whole, rounded; None when there is nothing to divide by."""
    whole = float(whole or 0)
    return None if whole == 0 else round(float(part or 0) / whole, digits)


def number(value: SupportsFloat | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)
