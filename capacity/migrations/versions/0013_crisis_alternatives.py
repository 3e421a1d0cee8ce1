"""crisis alternatives: help that is not a bookable bed, the areas each serves, and its opening hours

The directory starts empty: admins add alternatives through the API, the page or the reference import.
"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import create_area_links, id_column


revision: str = '0013'
down_revision: str | None = '0012'


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
    id_column(),
    sa.CheckConstraint('(lat is null) = (lon is null)', name=op.f('ck_crisis_alternatives_location')),
    sa.CheckConstraint('max_age is null or max_age >= min_age', name=op.f('ck_crisis_alternatives_ages')),
    sa.CheckConstraint(
        "kind in ('safe_haven', 'crisis_line', 'street_triage', 'host_family', 'liaison_team', 'camhs_crisis_team')",
        name=op.f('ck_crisis_alternatives_kind'),
    ),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_crisis_alternatives')),
    sa.UniqueConstraint('code', name=op.f('uq_crisis_alternatives_code'))
    )
    create_area_links('crisis_alternative_areas', 'alternative_id', 'crisis_alternatives')
    # "Who serves this area" is the question every search asks.
    op.create_index(op.f('ix_crisis_alternative_areas_area_code'), 'crisis_alternative_areas', ['area_code'], unique=False)


def downgrade() -> None:
    op.drop_table('crisis_alternative_areas')
    op.drop_table('crisis_alternatives')
