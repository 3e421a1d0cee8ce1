"""Times the API takes (API.md "Times"): every time in a body or query carries a UTC offset or `Z`.

A time without one is ambiguous (a clock change makes some local times happen twice), so it is refused
with a 422 naming its field, before any service sees it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from msgspec import Meta

from capacity.errors import Invalid

Instant = Annotated[datetime, Meta(tz=True, description="ISO 8601 with a UTC offset or Z")]


def require_offset(value: datetime | None, field: str) -> datetime | None:
    """For times that arrive outside a msgspec body (query parameters)."""
    if value is not None and value.tzinfo is None:
        raise Invalid(f"{field} needs a UTC offset or Z, e.g. 2026-03-29T00:30:00Z", field=field)
    return value
