"""Import files written by the tests: CSV with a header row."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def write_csv(path: Path, columns: Sequence[str], rows: list[dict]) -> Path:
    """`rows` as a CSV file at `path` with the header `columns`; a column a row leaves out is empty."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path
