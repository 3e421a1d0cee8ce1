"""police_vehicle_reason is a code, with a free-text police_vehicle_note beside it

The reason was free text, and it reached the commissioners' s136 report. Existing text moves into the
new note (which no report reads) and the reason becomes `other`, unless it already is one of the codes.
"""

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'

CODES = ("no_ambulance_available", "ambulance_delayed", "risk_of_violence", "other")
TABLES = ("conveyances", "s136_detentions")
LISTED = ", ".join(f"'{code}'" for code in CODES)


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('police_vehicle_note', sa.String(length=280), nullable=True))
        op.execute(f"UPDATE {table} SET police_vehicle_note = police_vehicle_reason, police_vehicle_reason = 'other' "
                   f"WHERE police_vehicle_reason IS NOT NULL AND police_vehicle_reason NOT IN ({LISTED})")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column('police_vehicle_reason', existing_type=sa.String(length=280),
                                  type_=sa.String(length=24), existing_nullable=True)
            batch_op.create_check_constraint('police_vehicle_reason', f"police_vehicle_reason in ({LISTED})")


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_police_vehicle_reason'), type_='check')
            batch_op.alter_column('police_vehicle_reason', existing_type=sa.String(length=24),
                                  type_=sa.String(length=280), existing_nullable=True)
        op.execute(f"UPDATE {table} SET police_vehicle_reason = police_vehicle_note "
                   "WHERE police_vehicle_note IS NOT NULL")
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('police_vehicle_note')
