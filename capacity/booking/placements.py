"""Placements: a person staying at a unit, from arrival or direct admission to discharge."""

from __future__ import annotations

from capacity.booking.availability import great_circle_km
from capacity.booking.models import Area, Unit


def placement_geography(home: Area, unit: Unit, local_provider_ids: set[str]) -> tuple[bool, float]:
    """Whether a placement is out of area (DHSC 2016), and its distance from the home area's centre."""
    out_of_area = unit.provider_id not in local_provider_ids
    return out_of_area, round(great_circle_km(home.lat, home.lon, unit.lat, unit.lon), 1)
