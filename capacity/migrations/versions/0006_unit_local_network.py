"""unit_local_areas: out of area is decided per unit's local network, not per provider

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'unit_local_areas',
        sa.Column('unit_id', sa.Integer(), nullable=False),
        sa.Column('area_code', sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_unit_local_areas_unit_id_units'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_unit_local_areas_area_code_areas')),
        sa.PrimaryKeyConstraint('unit_id', 'area_code', name=op.f('pk_unit_local_areas')),
    )


def downgrade() -> None:
    op.drop_table('unit_local_areas')
