"""`capacity snapshot`: the board on paper for when the service is down, in London time, on both engines."""

from __future__ import annotations

import asyncio
import csv
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from capacity.cli import main
from capacity.snapshot import take, write
from support.api import Api
from support.demo import START

BRISTOL = "E06000023"


async def test_the_snapshot_prints_units_holds_and_running_clocks_in_london_time(api: Api, tmp_path: Path) -> None:
    suite = await api.unit("Bristol Place of Safety")
    person = {"ref": "SNAP-1", "age": 30, "sex": "male", "home_area": BRISTOL}
    held = await api.post("/api/holds", "amhp", json={"unit_id": suite.id, "purpose": "s136", "person": person})
    assert held.status_code == 201, held.text
    ed = {
        "place_type": "emergency_department",
        "place_name": "Southmead ED",
        "person": {**person, "ref": "SNAP-2"},
        "detained_at": (START - timedelta(hours=3)).isoformat(),
    }
    assert (await api.post("/api/s136-detentions", "amhp", json=ed)).status_code == 201
    ended = {**ed, "person": {**person, "ref": "SNAP-3"}, "ended_at": START.isoformat(), "outcome": "discharged"}
    assert (await api.post("/api/s136-detentions", "amhp", json=ended)).status_code == 201

    # At the app's (fixed) clock; the command line takes the wall clock's, below.
    page, sheet = write(await take(api.db), tmp_path / "board")
    assert page.name == "snapshot-20260302-0900.html"
    text = page.read_text()
    # The clock of the person at the ED: from 06:00 GMT on 2 March, deadline 06:00 the next day.
    assert "Southmead ED" in text and "Mon 02 Mar 06:00" in text and "Tue 03 Mar 06:00" in text
    assert "SNAP-1" in text and "SNAP-2" in text and "SNAP-3" not in text  # an ended clock is not running
    assert "Bristol Place of Safety" in text
    rows = list(csv.reader(sheet.open()))
    units = rows[rows.index(["Units"]) + 2 : rows.index(["Live holds"]) - 1]
    by_name = {row[0]: row for row in units}
    suite_row = next(row for name, row in by_name.items() if name.startswith("Bristol Place of Safety"))
    figures = (await api.get(f"/api/units/{suite.id}", "amhp")).json()
    assert suite_row[4:8] == [str(figures[k]) for k in ("open_places", "occupied", "held", "available")]


async def test_capacity_snapshot_writes_the_page_and_the_sheet(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPACITY_DATABASE_URL", api.db.settings.database_url)
    result = await asyncio.to_thread(CliRunner().invoke, main, ["snapshot", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = sorted(Path(line) for line in result.output.split())
    assert [p.suffix for p in written] == [".csv", ".html"] and all(p.parent == tmp_path for p in written)
    assert "Bristol Place of Safety" in written[1].read_text()
