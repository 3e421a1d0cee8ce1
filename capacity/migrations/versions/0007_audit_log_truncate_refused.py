"""audit_log refuses TRUNCATE on PostgreSQL, as it already refuses UPDATE and DELETE

A row trigger does not fire on TRUNCATE, so 0001's guard let `TRUNCATE audit_log` empty the log. A
statement trigger BEFORE TRUNCATE raises the same error. SQLite has no TRUNCATE (its `DELETE FROM`
without WHERE still fires 0001's row triggers), so there is nothing to add there.
"""

from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # 0001's function raises 'audit_log is append-only' for any trigger that calls it.
        op.execute(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
