"""administration: one-time password links, users' names and e-mail, ODS codes, unit codes, retiring

Everything existing stays active; nothing else changes for it.
"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC


revision: str = '0010'
down_revision: str | None = '0009'


def upgrade() -> None:
    op.create_table('password_tokens',
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('used_at', UTC, nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_password_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash', name=op.f('pk_password_tokens'))
    )
    op.create_index(op.f('ix_password_tokens_user_id'), 'password_tokens', ['user_id'], unique=False)

    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('display_name', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(length=254), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_users_email'), ['email'])

    with op.batch_alter_table('providers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ods_code', sa.String(length=10), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_providers_ods_code'), ['ods_code'])

    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('code', sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.create_unique_constraint(batch_op.f('uq_units_code'), ['code'])
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.alter_column('active', existing_type=sa.Boolean(), server_default=None)

    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('areas', schema=None) as batch_op:
        batch_op.alter_column('active', existing_type=sa.Boolean(), server_default=None)


def downgrade() -> None:
    # Each table loses the columns it gained, after the unique constraint on one of them.
    for table, unique, columns in (
        ('areas', None, ('active',)),
        ('units', 'uq_units_code', ('active', 'code')),
        ('providers', 'uq_providers_ods_code', ('ods_code',)),
        ('users', 'uq_users_email', ('email', 'display_name')),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            if unique:
                batch_op.drop_constraint(batch_op.f(unique), type_='unique')
            for column in columns:
                batch_op.drop_column(column)

    op.drop_table('password_tokens')
