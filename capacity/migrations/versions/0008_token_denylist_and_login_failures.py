"""revoked_tokens, login_failures, service_keys, searches_recorded (issue 11)

The token denylist and the failed-login counts shared by every instance when no Redis is configured,
the demo database's own signing key, and when a user's search last recorded unmet demand.
"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC

revision: str = '0008'
down_revision: str | None = '0007'


def upgrade() -> None:
    op.create_table('revoked_tokens',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('revoked_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_revoked_tokens'))
    )
    op.create_index(op.f('ix_revoked_tokens_expires_at'), 'revoked_tokens', ['expires_at'], unique=False)

    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failed_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    op.create_index(op.f('ix_login_failures_failed_at'), 'login_failures', ['failed_at'], unique=False)
    op.create_index('ix_login_failures_key_failed_at', 'login_failures', ['key', 'failed_at'], unique=False)

    op.create_table('service_keys',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_service_keys'))
    )

    op.create_table('searches_recorded',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_searches_recorded'))
    )
    op.create_index(op.f('ix_searches_recorded_at'), 'searches_recorded', ['at'], unique=False)


def downgrade() -> None:
    # Each table goes with its indexes.
    for table in ('searches_recorded', 'service_keys', 'login_failures', 'revoked_tokens'):
        op.drop_table(table)
