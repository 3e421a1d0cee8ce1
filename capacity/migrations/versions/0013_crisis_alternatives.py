"""crisis alternatives: help that is not a bookable bed, the areas each serves, and its opening hours

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:00:00

The directory starts empty: admins add alternatives through the API, the page or the reference import.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crisis_alternatives',
    sa.Column('code', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('min_age', sa.Integer(), nullable=False),
    sa.Column('max_age', sa.Integer(), nullable=True),
    sa.Column('opening_hours', sa.JSON(), nullable=False),
    sa.Column('how_to_refer', sa.Text(), nullable=False),
    sa.Column('phone', sa.String(length=30), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.CheckConstraint('(lat is null) = (lon is null)', name=op.f('ck_crisis_alternatives_location')),
    sa.CheckConstraint('max_age is null or max_age >= min_age', name=op.f('ck_crisis_alternatives_ages')),
    sa.CheckConstraint(
        "kind in ('safe_haven', 'crisis_line', 'street_triage', 'host_family', 'liaison_team', 'camhs_crisis_team')",
        name=op.f('ck_crisis_alternatives_kind'),
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crisis_alternatives')),
    sa.UniqueConstraint('code', name=op.f('uq_crisis_alternatives_code'))
    )
    op.create_table('crisis_alternative_areas',
    sa.Column('alternative_id', sa.String(length=36), nullable=False),
    sa.Column('area_code', sa.String(length=9), nullable=False),
    sa.ForeignKeyConstraint(['alternative_id'], ['crisis_alternatives.id'], name=op.f('fk_crisis_alternative_areas_alternative_id_crisis_alternatives'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_crisis_alternative_areas_area_code_areas')),
    sa.PrimaryKeyConstraint('alternative_id', 'area_code', name=op.f('pk_crisis_alternative_areas'))
    )
    with op.batch_alter_table('crisis_alternative_areas', schema=None) as batch_op:
        # "Who serves this area" is the question every search asks.
        batch_op.create_index(batch_op.f('ix_crisis_alternative_areas_area_code'), ['area_code'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('crisis_alternative_areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crisis_alternative_areas_area_code'))

    op.drop_table('crisis_alternative_areas')
    op.drop_table('crisis_alternatives')
