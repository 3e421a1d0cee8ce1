"""revoked_tokens, login_failures, service_keys, searches_recorded (issue 11)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 16:05:00

The token denylist and the failed-login counts shared by every instance when no Redis is configured,
the demo database's own signing key, and when a user's search last recorded unmet demand.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import capacity.db.base

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('revoked_tokens',
    sa.Column('key', sa.String(length=120), nullable=False),
    sa.Column('revoked_at', capacity.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', capacity.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_revoked_tokens'))
    )
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_revoked_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('login_failures',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failed_at', capacity.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_login_failures'))
    )
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_login_failures_failed_at'), ['failed_at'], unique=False)
        batch_op.create_index('ix_login_failures_key_failed_at', ['key', 'failed_at'], unique=False)

    op.create_table('service_keys',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('created_at', capacity.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_service_keys'))
    )

    op.create_table('searches_recorded',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('at', capacity.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_searches_recorded'))
    )
    with op.batch_alter_table('searches_recorded', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_searches_recorded_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('searches_recorded', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_searches_recorded_at'))
    op.drop_table('searches_recorded')
    op.drop_table('service_keys')
    with op.batch_alter_table('login_failures', schema=None) as batch_op:
        batch_op.drop_index('ix_login_failures_key_failed_at')
        batch_op.drop_index(batch_op.f('ix_login_failures_failed_at'))
    op.drop_table('login_failures')
    with op.batch_alter_table('revoked_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_revoked_tokens_expires_at'))
    op.drop_table('revoked_tokens')
