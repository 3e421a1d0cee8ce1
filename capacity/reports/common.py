"""What every report shares: its period and areas, filters, turning database numbers into JSON ones, codes
only out of the database (`coded`), counts read in one statement (`figure`, `read_figures`), and disclosure
control (`Count`, `protect`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, SupportsFloat, SupportsInt

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Date,
    Float,
    Label,
    Row,
    Select,
    SQLColumnExpression,
    String,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from capacity.codes import Ethnicity, PersonSex, values
from capacity.db.base import UTCDateTime
from capacity.reports.sql import date_value, london_date_of, london_midnight, nearest_rank


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

    def bound(self, **more: Any) -> dict[str, Any]:
        """The values of `Period`'s bind parameters for this report (and `more` of the report's own)."""
        return {
            "period_start": self.start,
            "period_end": self.end,
            "period_first": self.first,
            "nights_after": self.nights_after,
            "now": self.now,
            "areas": list(self.areas or ()),
            **more,
        }

    def parameters(self, report: str) -> dict[str, str]:
        return {
            "report": report,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "areas": "all" if self.areas is None else " ".join(self.areas),
            "time_zone": "Europe/London",
            "generated_at": self.now.isoformat(),
        }


class Period:
    """A report's period, areas and clock as SQL bind parameters, the values of which a run gives
    (`ReportQuery.bound`). A report's statement is made from a Period once, for one list of areas or for
    all (`functools.cache`), and never sees a ReportQuery: making a statement of a report's size costs
    more Python than the database takes to run it, and no value of one run can stay in it for the next."""

    start = bindparam("period_start", type_=UTCDateTime())  # local midnight starting the first date
    end = bindparam("period_end", type_=UTCDateTime())  # local midnight after the last date
    now = bindparam("now", type_=UTCDateTime())
    first = date_value(bindparam("period_first", type_=Date()))  # the first local date
    nights_after = date_value(bindparam("nights_after", type_=Date()))  # `ReportQuery.nights_after`
    _areas: BindParameter[list[str]] = bindparam("areas", expanding=True)

    def __init__(self, all_areas: bool) -> None:
        self.all_areas = all_areas

    def in_areas(self, column: SQLColumnExpression[str | None]) -> ColumnElement[bool]:
        return true() if self.all_areas else column.in_(self._areas)

    def in_period(self, column: SQLColumnExpression[datetime | None]) -> ColumnElement[bool]:
        """The instant falls on a local date of the period."""
        return (column >= self.start) & (column < self.end)


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


ETHNIC_CATEGORIES = (*values(Ethnicity), "not_known")
SEXES = values(PersonSex)
AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
# The person characteristics reports break down by: (breakdown, column of `person_bands`, its codes).
PERSON_BREAKDOWNS = (
    ("by_ethnicity", "ethnicity", ETHNIC_CATEGORIES),
    ("by_sex", "sex", SEXES),
    ("by_age_band", "age_band", AGE_BANDS),
)


def person_bands(
    age: SQLColumnExpression[Any], sex: SQLColumnExpression[Any], ethnicity: SQLColumnExpression[Any]
) -> tuple[Label[Any], Label[Any], Label[str]]:
    """A person's NHS ethnic category (`not_known` when none), sex and age band, as codes only."""
    return (
        coded(ethnicity, ETHNIC_CATEGORIES, "not_known").label("ethnicity"),
        coded(sex, SEXES, "unknown").label("sex"),
        banded(age, (18, 25, 35, 45, 55, 65), AGE_BANDS).label("age_band"),
    )


def banded(
    value: SQLColumnExpression[Any],
    bounds: Sequence[int],
    bands: Sequence[str],
    *first: tuple[ColumnElement[bool], str | None],
) -> ColumnElement[Any]:
    """The band a value falls in: `bands[i]` below `bounds[i]`, the last band from the last bound up. The
    `first` cases (no value, say) are tried before the bounds."""
    below = [(value < bound, band) for bound, band in zip(bounds, bands[:-1], strict=True)]
    return case(*first, *below, else_=bands[-1])


def coded(column: SQLColumnExpression[str | None], codes: Iterable[str], otherwise: str) -> ColumnElement[str]:
    """The column's value when it is one of `codes`, else `otherwise`: whatever a column holds, only a
    code ever leaves the database into a report (no free text about a person, by construction)."""
    return case((column.in_(list(codes)), column), else_=literal(otherwise))


# --- figures: many counts of the same rows in one statement -------------------------------------------
#
# A report that counts the same rows many ways (totals, breakdowns, percentiles) reads them all as rows of
# one UNION ALL over a CTE of those rows, which each engine computes once: every row is a `figure`,
# (section, key, n, median, p90), e.g. ('by_sex', 'female', 3, NULL, NULL) or ('duration_hours', NULL,
# 5, 11.0, 28.0). The NULLs are typed: PostgreSQL types a UNION's columns pairwise, left to right.

MEDIAN, P90 = (1, 2), (9, 10)
Figures = dict[str, dict[Any, Row[Any]]]


def figure(
    section: str,
    n: ColumnElement[Any],
    key: str | ColumnElement[Any] | None = None,
    median: ColumnElement[Any] | None = None,
    p90: ColumnElement[Any] | None = None,
) -> Select[Any]:
    """One row of figures: a count `n` in `section`, under `key` (a name, or a grouping column)."""
    if isinstance(key, str):
        key = literal_column(f"'{key}'", String)
    return select(
        literal_column(f"'{section}'", String).label("section"),
        (cast(null(), String) if key is None else key).label("key"),
        n.label("n"),
        (cast(null(), Float) if median is None else median).label("median"),
        (cast(null(), Float) if p90 is None else p90).label("p90"),
    )


def breakdown(section: str, column: SQLColumnExpression[Any], keys: tuple[str, ...], otherwise: str) -> Select[Any]:
    """The rows counted by each code of `column` (a value outside `keys` counted as `otherwise`)."""
    key = coded(column, keys, otherwise)
    return figure(section, func.count(), key).group_by(key)


def percentiles(section: str, values: Select[Any]) -> Select[Any]:
    """How many values the single column of `values` has (NULLs left out), their median and 90th percentile."""
    ranks = nearest_rank(values, MEDIAN, P90).subquery()
    n, median, p90 = ranks.c
    return figure(section, n, median=median, p90=p90)


async def read_figures(session: AsyncSession, statement: CompoundSelect[Any], values: dict[str, Any]) -> Figures:
    """The figures of a UNION ALL of `figure` rows, by section and key."""
    found: Figures = {}
    for row in (await session.execute(statement, values)).all():
        found.setdefault(row.section, {})[row.key] = row
    return found


def counted(figures: Figures, section: str, keys: tuple[str, ...]) -> dict[str, Count]:
    """One count per code of a section, in the codes' order (0 for a code no row has)."""
    found = figures.get(section, {})
    return {key: Count(found[key].n if key in found else 0) for key in keys}


def person_figures(source: Any, prefix: str = "") -> list[Select[Any]]:
    """The breakdowns of people by ethnic category, sex and age band, of a source with `person_bands`."""
    return [
        breakdown(prefix + name, source.c[column], keys, keys[-1]).select_from(source)
        for name, column, keys in PERSON_BREAKDOWNS
    ]


def person_counts(figures: Figures, prefix: str = "") -> dict[str, dict[str, Count]]:
    return {name: counted(figures, prefix + name, keys) for name, _, keys in PERSON_BREAKDOWNS}


# --- disclosure control --------------------------------------------------------------------------------
#
# A count of people from a breakdown by a person characteristic (ethnicity, sex, age band, under 18), or
# a total or any other count of the same people that the published figures tie to it, is published as
# the MHSDS publishes: 0 as 0, 1 to 7 as "*", any other count rounded to the nearest 5. The counts of one
# population form a tree (`Count`): a count is split into cells that add up to it (a breakdown) and
# includes counts of some of the same people (at most it). An intruder who reads every "*" as 1 to 7
# and every rounded n as n-2..n+2 can narrow each count to the values the tree allows; where that pins a
# count of 1 to 7 to one value (e.g. a rounded total of 10 that is 12, split into 8 and four 1s), secondary
# suppression hides more figures as "*" (the count that frees the most, the smallest first) until none is.

SUPPRESSED = "*"
SMALLEST_SHOWN = 8  # counts of 1 to 7 are suppressed
ROUNDED_TO = 5
_UNBOUNDED = 1 << 40


def disclosed(n: int) -> int | str:
    """The MHSDS rule for one count: 0 stays 0, 1 to 7 is "*", others are rounded to the nearest 5."""
    if n == 0:
        return 0
    if n < SMALLEST_SHOWN:
        return SUPPRESSED
    return ROUNDED_TO * ((n + ROUNDED_TO // 2) // ROUNDED_TO)


def _could_be(shown: int | str) -> tuple[int, int]:
    """What a published figure tells an intruder: the least and greatest count it can be."""
    if shown == SUPPRESSED:
        return 1, SMALLEST_SHOWN - 1
    assert isinstance(shown, int)
    return (0, 0) if shown == 0 else (shown - ROUNDED_TO // 2, shown + ROUNDED_TO // 2)


class Count:
    """A count of people and how the report ties it to other counts of the same people."""

    def __init__(self, value: SupportsInt | None) -> None:
        self.value = integer(value)
        self.breakdowns: list[list[Count]] = []  # each adds up to this count
        self.subsets: list[Count] = []  # each at most this count
        self.hidden = False  # by secondary suppression

    def split(self, cells: Iterable[Count]) -> None:
        self.breakdowns.append(list(cells))

    def includes(self, *counts: Count) -> None:
        self.subsets.extend(counts)

    @property
    def shown(self) -> int | str:
        return SUPPRESSED if self.hidden else disclosed(self.value)

    def tree(self) -> Iterator[Count]:
        yield self
        for cells in self.breakdowns:
            for cell in cells:
                yield from cell.tree()
        for subset in self.subsets:
            yield from subset.tree()


def feasible(root: Count) -> dict[int, tuple[int, int]] | None:
    """For each count of the tree (by id), the least and greatest value the published figures allow, or
    None when they allow none (some "*" is not 1 to 7). Exact: the tree's sums and bounds are intervals,
    narrowed from the leaves up, then from the root down."""
    up: dict[int, tuple[int, int]] = {}

    def narrow_up(count: Count) -> tuple[int, int]:
        lo, hi = _could_be(count.shown)
        for cells in count.breakdowns:
            ranges = [narrow_up(cell) for cell in cells]
            lo, hi = max(lo, sum(r[0] for r in ranges)), min(hi, sum(r[1] for r in ranges))
        for subset in count.subsets:
            lo = max(lo, narrow_up(subset)[0])
        up[id(count)] = (lo, hi)
        return lo, hi

    found: dict[int, tuple[int, int]] = {}

    def narrow_down(count: Count, lo: int, hi: int) -> bool:
        if lo > hi:
            return False
        found[id(count)] = (lo, hi)
        for cells in count.breakdowns:
            least, most = sum(up[id(c)][0] for c in cells), sum(up[id(c)][1] for c in cells)
            for cell in cells:
                cell_lo, cell_hi = up[id(cell)]
                if not narrow_down(cell, max(cell_lo, lo - (most - cell_hi)), min(cell_hi, hi - (least - cell_lo))):
                    return False
        for subset in count.subsets:
            sub_lo, sub_hi = up[id(subset)]
            if not narrow_down(subset, sub_lo, min(sub_hi, hi)):
                return False
        return True

    return found if narrow_down(root, *narrow_up(root)) else None


def exposed(root: Count) -> list[Count]:
    """The counts of 1 to 7 in the tree that the published figures pin to one value."""
    ranges = feasible(root)
    if ranges is None:
        return []
    return [c for c in root.tree() if 0 < c.value < SMALLEST_SHOWN and ranges[id(c)][0] == ranges[id(c)][1]]


def protect(root: Count) -> Count:
    """Secondary suppression: while a count of 1 to 7 can be worked out, hide the figure that frees the
    most of them (the smallest on a tie; a zero cell only when no count of 8 or more helps)."""
    counts = list(root.tree())
    while exposed(root):
        candidates = [c for c in counts if not c.hidden and c.value >= SMALLEST_SHOWN] or [
            c for c in counts[1:] if not c.hidden and c.value == 0
        ]
        if not candidates:
            break

        def still_exposed(count: Count) -> tuple[int, int]:
            count.hidden = True
            left = len(exposed(root))
            count.hidden = False
            return left, count.value

        min(candidates, key=still_exposed).hidden = True
    return root


def share(part: int | str, whole: int | str, digits: int = 4) -> float | None:
    """A share of two published counts, from the published figures only (so it tells nothing more);
    None when either is suppressed or there is nothing to divide by."""
    if isinstance(part, str) or isinstance(whole, str) or whole == 0:
        return None
    return round(part / whole, digits)
