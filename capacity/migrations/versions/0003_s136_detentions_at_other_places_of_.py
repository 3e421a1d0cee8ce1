"""s136 detentions at other places of safety"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC, id_column, person_columns


revision: str = '0003'
down_revision: str | None = '0002'


def upgrade() -> None:
    op.create_table('s136_detentions',
    sa.Column('place_type', sa.String(length=24), nullable=False),
    sa.Column('place_name', sa.String(length=200), nullable=True),
    sa.Column('detained_at', UTC, nullable=False),
    sa.Column('deadline', UTC, nullable=False),
    sa.Column('ended_at', UTC, nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('extension_hours', sa.Integer(), nullable=True),
    sa.Column('extension_authorised_by', sa.String(length=120), nullable=True),
    sa.Column('extension_reason', sa.String(length=280), nullable=True),
    sa.Column('breached_at', UTC, nullable=True),
    sa.Column('police_station_criteria', sa.JSON(), nullable=False),
    sa.Column('authorising_inspector', sa.String(length=120), nullable=True),
    sa.Column('conveyance_mode', sa.String(length=20), nullable=True),
    sa.Column('police_vehicle_reason', sa.String(length=280), nullable=True),
    sa.Column('ambulance_requested_at', UTC, nullable=True),
    sa.Column('ambulance_at_scene_at', UTC, nullable=True),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    id_column(),
    *person_columns(),
    sa.CheckConstraint("place_type != 'police_station' or person_age >= 18", name=op.f('ck_s136_detentions_no_under_18_in_police_station')),
    sa.CheckConstraint("place_type in ('emergency_department', 'police_station', 'other')", name=op.f('ck_s136_detentions_place_type')),
    sa.ForeignKeyConstraint(['home_area'], ['areas.code'], name=op.f('fk_s136_detentions_home_area_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_s136_detentions'))
    )
    op.create_index('ix_s136_detentions_home_detained', 's136_detentions', ['home_area', 'detained_at'], unique=False)


def downgrade() -> None:
    op.drop_table('s136_detentions')
