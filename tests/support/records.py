"""Rows the tests write straight into the database, where the API would refuse or take too long."""

from __future__ import annotations

from datetime import datetime

from capacity.booking.units.models import Unit


def person_columns(ref: str, age: int, sex: str, ethnicity: str | None, home_area: str) -> dict:
    """The columns that say who a placement or an s136 detention is for."""
    return dict(person_ref=ref, person_age=age, person_sex=sex, person_ethnicity=ethnicity, home_area=home_area)


def placement_columns(unit: Unit, started_at: datetime, person: dict, **columns: object) -> dict:
    """A placement's columns at `unit` from `started_at` for `person` (as person_columns gives them): out of
    area unless the unit is local to the person's home, at the unit's daily cost, unless `columns` say otherwise."""
    return {
        "unit_id": unit.id,
        "started_at": started_at,
        "out_of_area": person["home_area"] not in unit.local_to_areas,
        "daily_cost": unit.daily_cost,
        "created_by": "test",
        **person,
        **columns,
    }
