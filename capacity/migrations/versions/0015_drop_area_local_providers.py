"""area_local_providers goes: out of area is decided per unit (`unit_local_areas`, migration 0006, which
copied this table there), and nothing reads or fills it any more

A downgrade makes it again from `unit_local_areas`: a provider is local to each area one of its units is.
"""

import sqlalchemy as sa
from alembic import op


revision: str = '0015'
down_revision: str | None = '0014'


def upgrade() -> None:
    op.drop_table('area_local_providers')


def downgrade() -> None:
    op.create_table('area_local_providers',
    sa.Column('area_code', sa.String(length=9), nullable=False),
    sa.Column('provider_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_area_local_providers_area_code_areas'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_area_local_providers_provider_id_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('area_code', 'provider_id', name=op.f('pk_area_local_providers'))
    )
    op.execute(
        "INSERT INTO area_local_providers (area_code, provider_id) "
        "SELECT DISTINCT l.area_code, u.provider_id FROM unit_local_areas l JOIN units u ON u.id = l.unit_id"
    )
