"""Reports as CSV and XLSX, derived from the JSON so that every format carries the same figures.

CSV: one table with the columns `section,key,metric,value`. `section` is the report's top-level key;
a figure nested in a dict is named by its path (`key` the outer names, `metric` the last), and a figure of
a list of records by the record's first field (`key`, e.g. the reason code or provider id) and its own
name (`metric`). For example `totals,,bed_days,42`, `by_reason,10,cost,4200.0` and
`detentions,by_ethnicity,A,*`.

XLSX: one sheet per section, a header row, numbers as numbers, dates as dates: a list of records is a
table with a column per field; any other section lists `key` (when any), `metric` and `value`.

Formula-like text (OWASP "CSV injection"): a cell whose text begins with `=`, `+`, `-`, `@`, a tab or a
carriage return is written as text, never as a formula: in CSV with a leading `'`; in XLSX as a string
cell (never a formula cell) marked with Excel's own quote prefix. Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from typing import Any

CSV_MEDIA_TYPE = "text/csv"  # Litestar adds "; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _formula_like(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def _csv_text(value: Any) -> Any:
    return f"'{value}" if _formula_like(value) else value


def _scalar(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return value


def _walk(path: list[str], value: Any) -> Iterator[tuple[str, str, Any]]:
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _walk([*path, str(name)], inner)
    elif isinstance(value, list) and not value:
        return  # an empty table: no figures
    elif isinstance(value, list) and all(isinstance(item, dict) for item in value):
        for record in value:
            fields = list(record.items())
            key = str(fields[0][1])
            for name, inner in fields[1:]:
                yield from _walk([*path, key, name], inner)
    else:
        yield "/".join(path[:-1]), (path[-1] if path else ""), _scalar(value)


def flatten(report: dict) -> Iterator[tuple[str, str, str, Any]]:
    """(section, key, metric, value) for every figure of the report."""
    for section, value in report.items():
        for key, metric, scalar in _walk([], value):
            yield section, key, metric, scalar


def to_csv(report: dict) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("section", "key", "metric", "value"))
    for section, key, metric, value in flatten(report):
        writer.writerow([_csv_text(cell) for cell in (section, key, metric, "" if value is None else value)])
    return out.getvalue().encode("utf-8")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and _DATE.match(value):
        return date.fromisoformat(value)
    return _scalar(value)


def _sheet_title(name: str, taken: set[str]) -> str:
    title = re.sub(r"[\[\]:*?/\\]", "_", name)[:31] or "sheet"
    base, n = title, 1
    while title in taken:
        n += 1
        title = f"{base[:28]}_{n}"
    taken.add(title)
    return title


def _rows(section: Any) -> tuple[list[str], list[list[Any]]]:
    if isinstance(section, list) and section and all(isinstance(item, dict) for item in section):
        header: list[str] = []
        for record in section:
            header += [name for name in record if name not in header]
        return header, [[_cell(record.get(name)) for name in header] for record in section]
    figures = list(_walk([], section if isinstance(section, dict | list) else {"value": section}))
    if all(key == "" for key, _, _ in figures):
        return ["metric", "value"], [[metric, _cell(value)] for _, metric, value in figures]
    return ["key", "metric", "value"], [[key, metric, _cell(value)] for key, metric, value in figures]


def to_xlsx(report: dict) -> bytes:
    # Imported at the first spreadsheet asked for, not at start: openpyxl costs every process 6 MB.
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    blank = book.active  # the empty sheet a new workbook starts with
    if blank is not None:
        book.remove(blank)
    taken: set[str] = set()
    for name, section in report.items():
        sheet = book.create_sheet(_sheet_title(name, taken))
        header, rows = _rows(section)
        sheet.append(header)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append(row)
            for cell, value in zip(sheet[sheet.max_row], row, strict=False):
                if isinstance(cell.value, date):
                    cell.number_format = "yyyy-mm-dd"
                elif _formula_like(value):
                    # openpyxl makes any text starting with "=" a formula: write it back as a string.
                    cell.value = value
                    cell.data_type = "s"
                    cell.quotePrefix = True
        sheet.freeze_panes = "A2"
        for column, title in zip(sheet.columns, header, strict=False):
            width = max([len(title), *(len(str(c.value)) for c in column if c.value is not None)])
            sheet.column_dimensions[column[0].column_letter].width = min(60, width + 2)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
