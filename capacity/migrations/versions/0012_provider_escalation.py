"""escalation levels: each provider's declared OPEL level (1-4) and the history of its declarations

No provider has declared one yet: every existing provider starts with no level.
"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC, declared_columns, id_column


revision: str = '0012'
down_revision: str | None = '0011'


def upgrade() -> None:
    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('escalation_level', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('escalation_note', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('escalation_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('escalation_by', sa.String(length=80), nullable=True))
        batch_op.create_check_constraint(
            batch_op.f('ck_providers_escalation_level'), 'escalation_level is null or escalation_level between 1 and 4'
        )

    op.create_table('escalation_declarations',
    sa.Column('provider_id', sa.String(length=36), nullable=False),
    *declared_columns(),
    sa.Column('before_level', sa.Integer(), nullable=True),
    sa.Column('level', sa.Integer(), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    id_column(),
    sa.CheckConstraint('level between 1 and 4', name=op.f('ck_escalation_declarations_level')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_escalation_declarations_provider_id_providers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_escalation_declarations'))
    )
    op.create_index('ix_escalation_declarations_provider_at', 'escalation_declarations', ['provider_id', 'declared_at'], unique=False)


def downgrade() -> None:
    op.drop_table('escalation_declarations')

    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_providers_escalation_level'), type_='check')
        for column in ('escalation_by', 'escalation_at', 'escalation_note', 'escalation_level'):
            batch_op.drop_column(column)
