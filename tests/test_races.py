"""Every change that takes a place, raced deterministically against another for the last place.

In the style of pretix's concurrency tests: the first change is stopped right after it has checked
availability (the unit of work's `after_check` hook), the second is started while it is stopped, and
only then is the first let go. With the unit locks (production), the second must wait for the first
and then find no place: exactly one wins. The control runs the same interleaving with `NO_LOCKS` and
shows the second does not wait and both take the place: the overbooking these tests exist to catch.
Nothing here depends on timing luck: the interleaving is forced, on both engines.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from capacity.db.unit_of_work import NO_LOCKS, ROW_LOCKS
from capacity.imports.placements import COLUMNS, ImportRefused, import_placements
from support.api import Api

SUITE = "Bristol Place of Safety"  # the bed manager's provider's; takes people from 16
BRISTOL = "E06000023"


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    # The second change may wait on the first's lock for as long as the test holds the first.
    return {"lock_timeout_ms": 10_000}


def person(i: int) -> dict:
    return {"ref": f"RACE-{i}", "age": 30 + i, "sex": "female", "home_area": BRISTOL}


async def race(
    api: Api, first: Callable[[], Awaitable[Any]], second: Callable[[], Awaitable[Any]]
) -> tuple[Any, Any, bool]:
    """Run `first` up to its availability check, start `second`, then let `first` go.

    Returns both outcomes and whether `second` had to wait for `first`."""
    checked, go = asyncio.Event(), asyncio.Event()
    checks = 0

    async def after_check() -> None:
        nonlocal checks
        checks += 1
        if checks == 1:
            checked.set()
            await go.wait()

    api.db.after_check = after_check
    try:
        one = asyncio.create_task(first())
        await asyncio.wait_for(checked.wait(), 10)
        two = asyncio.create_task(second())
        done, _ = await asyncio.wait({two}, timeout=0.5)
        go.set()
        return await one, await two, not done
    finally:
        api.db.after_check = None


async def last_place(api: Api) -> str:
    """The Bristol suite with one place open and none taken."""
    unit = await api.unit(SUITE)
    response = await api.put(
        f"/api/units/{unit.id}/availability", "bedmanager", json={"open_places": 1, "status": "open"}
    )
    assert response.json()["available"] == 1, response.text
    return unit.id


async def taken(api: Api, unit_id: str) -> int:
    figures = (await api.get(f"/api/units/{unit_id}", "admin")).json()
    assert figures["open_places"] == 1
    return figures["held"] + figures["occupied"]


def hold(api: Api, unit_id: str, i: int) -> Callable[[], Awaitable[Any]]:
    return lambda: api.post("/api/holds", "amhp", json={"unit_id": unit_id, "purpose": "s136", "person": person(i)})


def admission(api: Api, unit_id: str, i: int) -> Callable[[], Awaitable[Any]]:
    return lambda: api.post(
        "/api/placements", "bedmanager", json={"unit_id": unit_id, "legal_basis": "s136", "person": person(i)}
    )


def history_import(api: Api, unit_id: str, path: Path) -> Callable[[], Awaitable[Any]]:
    """An import of one placement still open at the unit: it takes a place as an admission does."""
    started = (api.clock.now() - timedelta(hours=1)).isoformat()
    path.write_text(",".join(COLUMNS) + f"\nRACE-IMPORT,40,male,A,{BRISTOL},{unit_id},informal,{started},,,\n")

    async def run() -> Any:
        try:
            return await import_placements(api.db, path)
        except ImportRefused as refused:
            return refused

    return run


PAIRS = {
    "hold, hold": lambda api, unit, tmp: (hold(api, unit, 1), hold(api, unit, 2)),
    "admission, hold": lambda api, unit, tmp: (admission(api, unit, 1), hold(api, unit, 2)),
    "hold, admission": lambda api, unit, tmp: (hold(api, unit, 1), admission(api, unit, 2)),
    "admission, admission": lambda api, unit, tmp: (admission(api, unit, 1), admission(api, unit, 2)),
    "import, hold": lambda api, unit, tmp: (history_import(api, unit, tmp / "one.csv"), hold(api, unit, 2)),
}


def won(outcome: Any) -> bool:
    """Whether a change took the place: a 201, or an import that went in."""
    if hasattr(outcome, "status_code"):
        assert outcome.status_code in (201, 409), outcome.text
        return bool(outcome.status_code == 201)
    return not isinstance(outcome, ImportRefused)


@pytest.mark.parametrize("pair", PAIRS)
async def test_the_second_change_waits_for_the_first_and_finds_the_place_gone(
    api: Api, pair: str, tmp_path: Path
) -> None:
    assert api.db.unit_locks is ROW_LOCKS
    unit_id = await last_place(api)
    first, second = PAIRS[pair](api, unit_id, tmp_path)

    one, two, waited = await race(api, first, second)

    assert waited, "the second change ran while the first held the unit's lock"
    assert (won(one), won(two)) == (True, False)
    assert await taken(api, unit_id) == 1


@pytest.mark.parametrize("pair", PAIRS)
async def test_control_without_the_locks_the_same_interleaving_overbooks(api: Api, pair: str, tmp_path: Path) -> None:
    unit_id = await last_place(api)
    first, second = PAIRS[pair](api, unit_id, tmp_path)
    api.db.unit_locks = NO_LOCKS

    one, two, waited = await race(api, first, second)

    assert not waited
    assert (won(one), won(two)) == (True, True)
    assert await taken(api, unit_id) == 2, "both took the one place: the race the locks prevent"
