"""SQL that means the same on SQLite and PostgreSQL: Europe/London dates and hours, date and time arithmetic.

Reports aggregate in the database. Their calendar is Europe/London local time (API.md), which PostgreSQL
speaks natively (`AT TIME ZONE 'Europe/London'`) and SQLite does not: on SQLite each construct here
compiles to a small deterministic Python function, registered on every connection by
`capacity.db.engine` (`capacity.db.london.SQLITE_FUNCTIONS`). SQLite keeps times as naive UTC text
('2026-03-29 00:30:00.000000', `capacity.db.base.UTCDateTime`) and dates as 'YYYY-MM-DD' text, which
compare in time order as text; PostgreSQL keeps `timestamptz` and `date`.

Nights: a placement is there on the night of local date D when it started on or before D and had not
ended by local midnight starting D+1 (API.md). Its nights are therefore the dates D with
`london_date(started_at) <= D < london_date_before(ended_at)`, where `london_date_before(t)` is the local
date of the instant just before t (so a stay ending exactly at midnight does not count that night). A
stay not yet ended counts up to the date a report gives (`ReportQuery.nights_after`): the day after the
period, or while the period is still running, up to the last local midnight that has passed.

Percentiles are by the nearest-rank method: the p-th percentile of n ordered values is the value at
rank ceil(p * n), i.e. the smallest rank r with r >= p * n; the median is the 50th percentile (for an
even n, the lower of the two middle values). Computed with `row_number()` and `count(*) over ()`, which
both engines have.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import Date, DateTime, Float, Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, Select, SQLColumnExpression, bindparam

from capacity.db.london import LONDON

_PG_LONDON = "'Europe/London'"


# --- constructs ---------------------------------------------------------------------------------------


class london_date(FunctionElement[date]):
    """The Europe/London calendar date of a UTC instant."""

    type = Date()
    name = "london_date"
    inherit_cache = True


class london_date_before(FunctionElement[date]):
    """The Europe/London calendar date of the instant just before a UTC instant (one microsecond)."""

    type = Date()
    name = "london_date_before"
    inherit_cache = True


class london_hour(FunctionElement[int]):
    """The Europe/London local hour (0-23) of a UTC instant."""

    type = Integer()
    name = "london_hour"
    inherit_cache = True


class london_isodow(FunctionElement[int]):
    """The Europe/London local ISO day of the week (1 Monday .. 7 Sunday) of a UTC instant."""

    type = Integer()
    name = "london_isodow"
    inherit_cache = True


class days_between(FunctionElement[int]):
    """Whole days from the first date to the second (negative when the second is earlier)."""

    type = Integer()
    name = "days_between"
    inherit_cache = True


class seconds_between(FunctionElement[float]):
    """Seconds, with microseconds, from the first UTC instant to the second."""

    type = Float()
    name = "seconds_between"
    inherit_cache = True


class year_before(FunctionElement[datetime]):
    """The UTC instant one calendar year earlier (29 February becomes 28 February, as PostgreSQL does)."""

    type = DateTime()
    name = "year_before"
    inherit_cache = True


class greatest(FunctionElement[Any]):
    """The larger of two non-null values (GREATEST on PostgreSQL, scalar max() on SQLite)."""

    name = "greatest"
    inherit_cache = True

    def __init__(self, first: ColumnElement[Any], *others: ColumnElement[Any] | int) -> None:
        super().__init__(first, *others)
        self.type = first.type


class least(FunctionElement[Any]):
    """The smaller of two non-null values (LEAST on PostgreSQL, scalar min() on SQLite)."""

    name = "least"
    inherit_cache = True

    def __init__(self, first: ColumnElement[Any], *others: ColumnElement[Any] | int) -> None:
        super().__init__(first, *others)
        self.type = first.type


class date_value(FunctionElement[date]):
    """A date given by the caller, typed as a date on both engines."""

    type = Date()
    name = "date_value"
    inherit_cache = True


def sql_date(value: date, name: str) -> date_value:
    return date_value(bindparam(name, value, type_=Date(), unique=True))


def _args(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> list[str]:
    return [compiler.process(arg, **kw) for arg in element.clauses]


@compiles(london_date)
@compiles(london_date_before)
@compiles(london_hour)
@compiles(london_isodow)
@compiles(seconds_between)
@compiles(year_before)
def _sqlite_function(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    # The Python functions of SQLITE_FUNCTIONS, by the same names.
    return f"{element.name}({', '.join(_args(element, compiler, **kw))})"


@compiles(london_date, "postgresql")
def _pg_london_date(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"CAST(({value} AT TIME ZONE {_PG_LONDON}) AS DATE)"


@compiles(london_date_before, "postgresql")
def _pg_london_date_before(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"CAST((({value} - INTERVAL '1 microsecond') AT TIME ZONE {_PG_LONDON}) AS DATE)"


@compiles(london_hour, "postgresql")
def _pg_london_hour(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"CAST(EXTRACT(HOUR FROM ({value} AT TIME ZONE {_PG_LONDON})) AS INTEGER)"


@compiles(london_isodow, "postgresql")
def _pg_london_isodow(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"CAST(EXTRACT(ISODOW FROM ({value} AT TIME ZONE {_PG_LONDON})) AS INTEGER)"


@compiles(days_between)
def _sqlite_days_between(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    first, second = _args(element, compiler, **kw)
    return f"CAST(round(julianday({second}) - julianday({first})) AS INTEGER)"


@compiles(days_between, "postgresql")
def _pg_days_between(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    first, second = _args(element, compiler, **kw)
    return f"({second} - {first})"


@compiles(seconds_between, "postgresql")
def _pg_seconds_between(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    first, second = _args(element, compiler, **kw)
    return f"CAST(EXTRACT(EPOCH FROM ({second} - {first})) AS DOUBLE PRECISION)"


@compiles(year_before, "postgresql")
def _pg_year_before(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    # Through UTC wall-clock time, so the session's TimeZone setting plays no part.
    return f"((({value} AT TIME ZONE 'UTC') - INTERVAL '1 year') AT TIME ZONE 'UTC')"


@compiles(greatest)
def _sqlite_greatest(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f"max({', '.join(_args(element, compiler, **kw))})"


@compiles(greatest, "postgresql")
def _pg_greatest(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f"GREATEST({', '.join(_args(element, compiler, **kw))})"


@compiles(least)
def _sqlite_least(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f"min({', '.join(_args(element, compiler, **kw))})"


@compiles(least, "postgresql")
def _pg_least(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    return f"LEAST({', '.join(_args(element, compiler, **kw))})"


@compiles(date_value)
def _sqlite_date_value(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return value  # already 'YYYY-MM-DD' text, as SQLite keeps dates


@compiles(date_value, "postgresql")
def _pg_date_value(element: FunctionElement[Any], compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = _args(element, compiler, **kw)
    return f"CAST({value} AS DATE)"


# --- helpers the reports share ------------------------------------------------------------------------


def london_midnight(day: date) -> datetime:
    """The UTC instant of local midnight starting `day` in Europe/London."""
    return datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC)


def london_date_of(instant: datetime) -> date:
    return instant.astimezone(LONDON).date()


def count_if(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """How many rows meet the condition (0, never NULL, over no rows)."""
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def total(value: SQLColumnExpression[Any]) -> ColumnElement[Any]:
    """The sum of a column, 0 over no rows."""
    return func.coalesce(func.sum(value), 0)


def nights_in(
    started_at: SQLColumnExpression[datetime], ended_at: SQLColumnExpression[datetime | None], first: date, after: date
) -> ColumnElement[int]:
    """Nights of a stay on the local dates from `first` up to, not including, `after` (see the module's
    docstring); a stay not yet ended counts up to `after`."""
    start = greatest(london_date(started_at), sql_date(first, "nights_first"))
    stop = sql_date(after, "nights_after")
    end = least(func.coalesce(london_date_before(ended_at), stop), stop)
    return greatest(days_between(start, end), 0)


def stay_nights(
    started_at: SQLColumnExpression[datetime], ended_at: SQLColumnExpression[datetime | None]
) -> ColumnElement[int]:
    """All nights of an ended stay."""
    return greatest(days_between(london_date(started_at), london_date_before(ended_at)), 0)


def nearest_rank(values: Select, *fractions: tuple[int, int]) -> Select:
    """count(*) and, for each fraction (p, q), the (p/q)-th nearest-rank percentile of the single
    column of `values` (NULLs left out): the value at the smallest rank r with r * q >= p * n."""
    inner = values.subquery("percentile_values")
    value = inner.c[0]
    ranked = (
        select(value.label("v"), func.row_number().over(order_by=value).label("rn"), func.count().over().label("n"))
        .where(value.is_not(None))
        .subquery("ranked")
    )
    columns: list[ColumnElement[Any]] = [func.coalesce(func.max(ranked.c.n), 0)]
    for p, q in fractions:
        columns.append(func.min(case((ranked.c.rn * q >= ranked.c.n * p, ranked.c.v))))
    return select(*columns)
