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
from typing import Any, ClassVar

from sqlalchemy import Date, DateTime, Float, Integer, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement, FunctionElement, Select, SQLColumnExpression
from sqlalchemy.types import NullType, TypeEngine

from capacity.db.london import LONDON

_PG_LONDON = "'Europe/London'"


# --- constructs ---------------------------------------------------------------------------------------


class _Portable(FunctionElement[Any]):
    """A function each engine writes from its own template of the arguments: `{0}`, `{1}` by place,
    `{all}` all of them, comma-separated."""

    inherit_cache = True
    sqlite: ClassVar[str]
    postgresql: ClassVar[str]
    typed_as_first: ClassVar[bool]

    def __init__(self, *arguments: SQLColumnExpression[Any] | int) -> None:
        super().__init__(*arguments)
        if self.typed_as_first:
            self.type = self.clauses.clauses[0].type


def _portable(name: str, type_: TypeEngine[Any] | None, postgresql: str, sqlite: str | None = None) -> type[_Portable]:
    """A construct of its own class (each its own SQL cache key). Its type is `type_`, or with None the type
    of its first argument. On SQLite it is by default the Python function of SQLITE_FUNCTIONS by its name."""
    attributes = {
        "name": name,
        "type": type_ if type_ is not None else NullType(),
        "typed_as_first": type_ is None,
        "sqlite": sqlite if sqlite is not None else name + "({all})",
        "postgresql": postgresql,
        "inherit_cache": True,
    }
    return type(name, (_Portable,), attributes)


def _write(element: _Portable, template: str, compiler: SQLCompiler, **kw: Any) -> str:
    arguments = [compiler.process(argument, **kw) for argument in element.clauses]
    return template.format(*arguments, all=", ".join(arguments))


@compiles(_Portable)
def _sqlite(element: _Portable, compiler: SQLCompiler, **kw: Any) -> str:
    return _write(element, element.sqlite, compiler, **kw)


@compiles(_Portable, "postgresql")
def _postgresql(element: _Portable, compiler: SQLCompiler, **kw: Any) -> str:
    return _write(element, element.postgresql, compiler, **kw)


# The Europe/London calendar date of a UTC instant.
london_date = _portable("london_date", Date(), f"CAST(({{0}} AT TIME ZONE {_PG_LONDON}) AS DATE)")
# The Europe/London calendar date of the instant just before a UTC instant (one microsecond).
london_date_before = _portable(
    "london_date_before", Date(), f"CAST((({{0}} - INTERVAL '1 microsecond') AT TIME ZONE {_PG_LONDON}) AS DATE)"
)
# The Europe/London local hour (0-23) of a UTC instant.
london_hour = _portable(
    "london_hour", Integer(), f"CAST(EXTRACT(HOUR FROM ({{0}} AT TIME ZONE {_PG_LONDON})) AS INTEGER)"
)
# The Europe/London local ISO day of the week (1 Monday .. 7 Sunday) of a UTC instant.
london_isodow = _portable(
    "london_isodow", Integer(), f"CAST(EXTRACT(ISODOW FROM ({{0}} AT TIME ZONE {_PG_LONDON})) AS INTEGER)"
)
# Whole days from the first date to the second (negative when the second is earlier).
days_between = _portable(
    "days_between", Integer(), "({1} - {0})", sqlite="CAST(round(julianday({1}) - julianday({0})) AS INTEGER)"
)
# Seconds, with microseconds, from the first UTC instant to the second.
seconds_between = _portable("seconds_between", Float(), "CAST(EXTRACT(EPOCH FROM ({1} - {0})) AS DOUBLE PRECISION)")
# The UTC instant one calendar year earlier (29 February becomes 28 February, as PostgreSQL does); through
# UTC wall-clock time, so the session's TimeZone setting plays no part.
year_before = _portable(
    "year_before", DateTime(), "((({0} AT TIME ZONE 'UTC') - INTERVAL '1 year') AT TIME ZONE 'UTC')"
)
# The larger, and the smaller, of non-null values (scalar max() and min() on SQLite).
greatest = _portable("greatest", None, "GREATEST({all})", sqlite="max({all})")
least = _portable("least", None, "LEAST({all})", sqlite="min({all})")
# A date given by the caller (a bind parameter), typed as a date on both engines (SQLite keeps dates as
# 'YYYY-MM-DD' text).
date_value = _portable("date_value", Date(), "CAST({0} AS DATE)", sqlite="{0}")


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
    started_at: SQLColumnExpression[datetime],
    ended_at: SQLColumnExpression[datetime | None],
    first: SQLColumnExpression[date],
    after: SQLColumnExpression[date],
) -> ColumnElement[int]:
    """Nights of a stay on the local dates from `first` up to, not including, `after` (see the module's
    docstring); a stay not yet ended counts up to `after`."""
    start = greatest(london_date(started_at), first)
    end = least(func.coalesce(london_date_before(ended_at), after), after)
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
