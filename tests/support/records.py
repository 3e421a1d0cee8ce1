"""Rows the tests write straight into the database, where the API would refuse or take too long."""

from __future__ import annotations


def person_columns(ref: str, age: int, sex: str, ethnicity: str | None, home_area: str) -> dict:
    """The columns that say who a placement or an s136 detention is for."""
    return dict(person_ref=ref, person_age=age, person_sex=sex, person_ethnicity=ethnicity, home_area=home_area)
