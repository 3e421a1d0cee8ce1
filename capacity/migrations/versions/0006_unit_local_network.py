"""unit_local_areas: out of area is decided per unit's local network, not per provider

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 10:00:00

DHSC (2016): a placement is out of area when the unit "does not form part of the usual local network of
services" for where the person lives. Each unit now names the home areas it is local to. The new table
is filled from area_local_providers, so nothing changes at upgrade: every unit of a provider that was in
an area's local network is local to that area. area_local_providers itself stays (the bench scripts still
fill it); nothing in the service reads it any more.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('unit_local_areas',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('area_code', sa.String(length=9), nullable=False),
    sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_unit_local_areas_area_code_areas')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_unit_local_areas_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('unit_id', 'area_code', name=op.f('pk_unit_local_areas'))
    )
    with op.batch_alter_table('unit_local_areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_unit_local_areas_area_code'), ['area_code'], unique=False)
    op.execute(
        "INSERT INTO unit_local_areas (unit_id, area_code) "
        "SELECT DISTINCT u.id, l.area_code FROM area_local_providers l JOIN units u ON u.provider_id = l.provider_id"
    )


def downgrade() -> None:
    with op.batch_alter_table('unit_local_areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unit_local_areas_area_code'))
    op.drop_table('unit_local_areas')
