"""alerts sent once"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC, id_column


revision: str = '0002'
down_revision: str | None = '0001'


def upgrade() -> None:
    op.create_table('alerts_sent',
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('sent_at', UTC, nullable=False),
    id_column(),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts_sent')),
    sa.UniqueConstraint('kind', 'object_id', 'key', name=op.f('uq_alerts_sent_kind_object_id_key'))
    )


def downgrade() -> None:
    op.drop_table('alerts_sent')
