"""Placements: a person staying at a unit, from arrival or direct admission to discharge."""
