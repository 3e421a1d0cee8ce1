"""indexes for reports and the sweep"""

import sqlalchemy as sa
from alembic import op


revision: str = '0004'
down_revision: str | None = '0003'


def upgrade() -> None:
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_home_created', ['home_area', 'created_at'], unique=False)

    with op.batch_alter_table('placements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_placements_s136_deadline'))
        batch_op.create_index('ix_placements_oap_home_started', ['home_area', 'started_at'], unique=False, postgresql_where=sa.text('out_of_area IS true'), sqlite_where=sa.text('out_of_area IS 1'))
        batch_op.create_index('ix_placements_open_s136_deadline', ['s136_deadline'], unique=False, postgresql_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'))
        batch_op.create_index('ix_placements_s136_home_clock', ['home_area', 's136_clock_started_at'], unique=False, postgresql_where=sa.text("legal_basis = 's136'"), sqlite_where=sa.text("legal_basis = 's136'"))

    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.create_index('ix_s136_detentions_open_deadline', ['deadline'], unique=False, postgresql_where=sa.text('ended_at IS NULL AND breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND breached_at IS NULL'))


def downgrade() -> None:
    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.drop_index('ix_s136_detentions_open_deadline', postgresql_where=sa.text('ended_at IS NULL AND breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND breached_at IS NULL'))

    with op.batch_alter_table('placements', schema=None) as batch_op:
        batch_op.drop_index('ix_placements_s136_home_clock', postgresql_where=sa.text("legal_basis = 's136'"), sqlite_where=sa.text("legal_basis = 's136'"))
        batch_op.drop_index('ix_placements_open_s136_deadline', postgresql_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'))
        batch_op.drop_index('ix_placements_oap_home_started', postgresql_where=sa.text('out_of_area IS true'), sqlite_where=sa.text('out_of_area IS 1'))
        batch_op.create_index(batch_op.f('ix_placements_s136_deadline'), ['s136_deadline'], unique=False)

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_index('ix_holds_home_created')
