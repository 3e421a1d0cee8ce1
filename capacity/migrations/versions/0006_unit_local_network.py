"""unit_local_areas: out of area is decided per unit's local network, not per provider

DHSC (2016): a placement is out of area when the unit "does not form part of the usual local network of
services" for where the person lives. Each unit now names the home areas it is local to. The new table
is filled from area_local_providers, so nothing changes at upgrade: every unit of a provider that was in
an area's local network is local to that area. area_local_providers itself stays (the bench scripts still
fill it); nothing in the service reads it any more.
"""

from alembic import op

from capacity.migrations.helpers import create_area_links

revision: str = '0006'
down_revision: str | None = '0005'


def upgrade() -> None:
    create_area_links('unit_local_areas', 'unit_id', 'units')
    op.create_index(op.f('ix_unit_local_areas_area_code'), 'unit_local_areas', ['area_code'], unique=False)
    op.execute(
        "INSERT INTO unit_local_areas (unit_id, area_code) "
        "SELECT DISTINCT u.id, l.area_code FROM area_local_providers l JOIN units u ON u.provider_id = l.provider_id"
    )


def downgrade() -> None:
    op.drop_table('unit_local_areas')
