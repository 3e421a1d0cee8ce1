"""What several migrations make alike, written once.

A migration that has run on a real database must keep its meaning, so nothing here may change once a
migration uses it: a later change to these columns is a new migration with columns of its own.
Each helper makes new Column objects on each call, as a Column belongs to the one table it is put in.
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from capacity.db.base import UTCDateTime

# Every time column: UTC on both engines (capacity.db.base).
UTC = UTCDateTime(timezone=True)


def id_column() -> sa.Column[str]:
    """The primary key of a model with IdMixin: a UUID, as text."""
    return sa.Column("id", sa.String(length=36), nullable=False)


def person_columns() -> list[sa.Column[Any]]:
    """Who a hold, a placement or an s136 detention is for (PersonMixin): a reference, never a name."""
    return [
        sa.Column("person_ref", sa.String(length=40), nullable=False),
        sa.Column("person_age", sa.Integer(), nullable=False),
        sa.Column("person_sex", sa.String(length=8), nullable=False),
        sa.Column("person_ethnicity", sa.String(length=2), nullable=True),
        sa.Column("home_area", sa.String(length=9), nullable=False),
    ]


def declared_columns() -> list[sa.Column[Any]]:
    """When and by whom a declaration was made: a unit's availability, a provider's escalation level."""
    return [
        sa.Column("declared_at", UTC, nullable=False),
        sa.Column("declared_by", sa.String(length=80), nullable=False),
    ]


def placement_s136_clock_columns() -> list[sa.Column[Any]]:
    """A placement's own s136 clock, before every clock moved onto detention_episodes: 0001 made these
    columns, 0009 drops them (and makes them again on the way down)."""
    return [
        sa.Column("s136_clock_started_at", UTC, nullable=True),
        sa.Column("s136_deadline", UTC, nullable=True),
        sa.Column("s136_extension_hours", sa.Integer(), nullable=True),
        sa.Column("s136_extension_authorised_by", sa.String(length=120), nullable=True),
        sa.Column("s136_extension_reason", sa.String(length=280), nullable=True),
        sa.Column("s136_extension_recorded_at", UTC, nullable=True),
        sa.Column("s136_breached_at", UTC, nullable=True),
    ]


def create_area_links(table: str, owner: str, owner_table: str) -> None:
    """A table linking rows of `owner_table` (by their `owner` column) to areas, each pair once: the links
    of a row go with it, and an area that is linked to cannot go. Named as capacity.db.base.NAMING names."""
    op.create_table(
        table,
        sa.Column(owner, sa.String(length=36), nullable=False),
        sa.Column("area_code", sa.String(length=9), nullable=False),
        sa.ForeignKeyConstraint(["area_code"], ["areas.code"], name=op.f(f"fk_{table}_area_code_areas")),
        sa.ForeignKeyConstraint(
            [owner], [f"{owner_table}.id"], name=op.f(f"fk_{table}_{owner}_{owner_table}"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint(owner, "area_code", name=op.f(f"pk_{table}")),
    )


def create_area_local_providers() -> None:
    """The first local network, by provider: 0001 made it, 0006 copied it to the units, 0015 dropped it
    (and makes it again on the way down)."""
    op.create_table(
        "area_local_providers",
        sa.Column("area_code", sa.String(length=9), nullable=False),
        sa.Column("provider_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["area_code"], ["areas.code"], name=op.f("fk_area_local_providers_area_code_areas"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["provider_id"],
            ["providers.id"],
            name=op.f("fk_area_local_providers_provider_id_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("area_code", "provider_id", name=op.f("pk_area_local_providers")),
    )
