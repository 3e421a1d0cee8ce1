"""area_local_providers goes: out of area is decided per unit (`unit_local_areas`, migration 0006, which
copied this table there), and nothing reads or fills it any more

A downgrade makes it again from `unit_local_areas`: a provider is local to each area one of its units is.
"""

from alembic import op

from capacity.migrations.helpers import create_area_local_providers


revision: str = '0015'
down_revision: str | None = '0014'


def upgrade() -> None:
    op.drop_table('area_local_providers')


def downgrade() -> None:
    create_area_local_providers()
    op.execute(
        "INSERT INTO area_local_providers (area_code, provider_id) "
        "SELECT DISTINCT l.area_code, u.provider_id FROM unit_local_areas l JOIN units u ON u.id = l.unit_id"
    )
