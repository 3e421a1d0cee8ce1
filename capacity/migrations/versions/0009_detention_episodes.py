"""one clock per s135/s136 detention: detention_episodes, with placements and detentions as its legs

The clock, its extension and its breach move from each placement and each s136 detention onto an
episode, so that a person moved between places of safety keeps one clock. Every existing s136
detention and every s136 or s135 placement becomes the first (and only) leg of its own episode, whose
id is the leg's. An s135 placement had no clock: its episode's starts when the placement started, and
a breach is recorded for one that ended after its 24 hours. The old free-text extension reason becomes
the extension note; its coded reason is left unrecorded rather than asserted.
"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import UTC, id_column, placement_s136_clock_columns


revision: str = '0009'
down_revision: str | None = '0008'

OPEN = sa.text('ended_at IS NULL AND breached_at IS NULL')
OLD_CHECK = "place_type != 'police_station' or person_age >= 18"
NEW_CHECK = "place_type != 'police_station' or person_age >= 18 or (never_event_acknowledged and note is not null)"


def _add_hours(column: str, hours: int) -> str:
    if op.get_bind().dialect.name == 'sqlite':
        # SQLite keeps UTC times as 'YYYY-MM-DD HH:MM:SS.ffffff' text, as capacity.db.base stores them.
        return f"strftime('%Y-%m-%d %H:%M:%f000', {column}, '+{hours} hours')"
    return f"{column} + interval '{hours} hours'"


def upgrade() -> None:
    op.create_table('detention_episodes',
    sa.Column('legal_basis', sa.String(length=10), nullable=False),
    sa.Column('clock_started_at', UTC, nullable=False),
    sa.Column('deadline', UTC, nullable=False),
    sa.Column('legs', sa.Integer(), nullable=False),
    sa.Column('extension_hours', sa.Integer(), nullable=True),
    sa.Column('extension_reason', sa.String(length=24), nullable=True),
    sa.Column('extension_authorised_by', sa.String(length=120), nullable=True),
    sa.Column('extension_superintendent', sa.String(length=120), nullable=True),
    sa.Column('extension_note', sa.String(length=280), nullable=True),
    sa.Column('extension_recorded_at', UTC, nullable=True),
    sa.Column('breached_at', UTC, nullable=True),
    sa.Column('ended_at', UTC, nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    id_column(),
    sa.CheckConstraint("legal_basis in ('s136', 's135')", name=op.f('ck_detention_episodes_legal_basis')),
    sa.CheckConstraint("extension_reason in ('condition_of_person')", name=op.f('ck_detention_episodes_extension_reason')),
    sa.CheckConstraint('extension_hours is null or extension_hours between 1 and 12', name=op.f('ck_detention_episodes_extension_hours')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_detention_episodes'))
    )
    op.create_index('ix_detention_episodes_clock_started_at', 'detention_episodes', ['clock_started_at'], unique=False)
    op.create_index('ix_detention_episodes_open_deadline', 'detention_episodes', ['deadline'], unique=False, postgresql_where=OPEN, sqlite_where=OPEN)

    # Every detention elsewhere is the first leg of its own episode.
    op.execute(
        "INSERT INTO detention_episodes (id, legal_basis, clock_started_at, deadline, legs, extension_hours, "
        "extension_authorised_by, extension_note, breached_at, ended_at, outcome) "
        "SELECT id, 's136', detained_at, deadline, 1, extension_hours, extension_authorised_by, extension_reason, "
        "breached_at, ended_at, outcome FROM s136_detentions"
    )
    # So is every s136 placement (with its clock), and every s135 placement (whose clock starts now it has one).
    op.execute(
        "INSERT INTO detention_episodes (id, legal_basis, clock_started_at, deadline, legs, extension_hours, "
        "extension_authorised_by, extension_note, extension_recorded_at, breached_at, ended_at, outcome) "
        "SELECT id, 's136', s136_clock_started_at, s136_deadline, 1, s136_extension_hours, "
        "s136_extension_authorised_by, s136_extension_reason, s136_extension_recorded_at, s136_breached_at, "
        "ended_at, outcome FROM placements WHERE legal_basis = 's136' AND s136_clock_started_at IS NOT NULL"
    )
    deadline = _add_hours('started_at', 24)
    op.execute(
        "INSERT INTO detention_episodes (id, legal_basis, clock_started_at, deadline, legs, breached_at, ended_at, "
        f"outcome) SELECT id, 's135', started_at, {deadline}, 1, "
        f"CASE WHEN ended_at > {deadline} THEN {deadline} END, ended_at, outcome "
        "FROM placements WHERE legal_basis = 's135'"
    )

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detention_id', sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_holds_detention_id_detention_episodes'), 'detention_episodes', ['detention_id'], ['id'])

    with op.batch_alter_table('placements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detention_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('age_exception_reason', sa.String(length=280), nullable=True))
    op.execute("UPDATE placements SET detention_id = id WHERE id IN (SELECT id FROM detention_episodes)")
    with op.batch_alter_table('placements', schema=None) as batch_op:
        batch_op.drop_index('ix_placements_open_s136_deadline', postgresql_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'))
        batch_op.drop_index('ix_placements_s136_home_clock', postgresql_where=sa.text("legal_basis = 's136'"), sqlite_where=sa.text("legal_basis = 's136'"))
        batch_op.create_index(batch_op.f('ix_placements_detention_id'), ['detention_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_placements_detention_id_detention_episodes'), 'detention_episodes', ['detention_id'], ['id'])
        for clock_column in placement_s136_clock_columns():
            batch_op.drop_column(clock_column.name)

    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('detention_id', sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column('never_event_acknowledged', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('note', sa.String(length=280), nullable=True))
    op.execute("UPDATE s136_detentions SET detention_id = id")
    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.alter_column('detention_id', existing_type=sa.String(length=36), nullable=False)
        batch_op.alter_column('never_event_acknowledged', existing_type=sa.Boolean(), server_default=None)
        batch_op.drop_index('ix_s136_detentions_open_deadline', postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_constraint(op.f('ck_s136_detentions_no_under_18_in_police_station'), type_='check')
        batch_op.create_check_constraint('no_under_18_in_police_station', NEW_CHECK)
        batch_op.create_index(batch_op.f('ix_s136_detentions_detention_id'), ['detention_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_s136_detentions_detention_id_detention_episodes'), 'detention_episodes', ['detention_id'], ['id'])
        for column in ('deadline', 'extension_hours', 'extension_authorised_by', 'extension_reason', 'breached_at'):
            batch_op.drop_column(column)


def downgrade() -> None:
    # Each leg takes its episode's clock back; legs of one episode each get the whole of it.
    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deadline', UTC, nullable=True))
        batch_op.add_column(sa.Column('extension_hours', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('extension_authorised_by', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('extension_reason', sa.String(length=280), nullable=True))
        batch_op.add_column(sa.Column('breached_at', UTC, nullable=True))
    op.execute(
        "UPDATE s136_detentions SET deadline = e.deadline, extension_hours = e.extension_hours, "
        "extension_authorised_by = e.extension_authorised_by, extension_reason = e.extension_note, "
        "breached_at = e.breached_at FROM detention_episodes e WHERE e.id = s136_detentions.detention_id"
    )
    op.execute("DELETE FROM s136_detentions WHERE never_event_acknowledged AND person_age < 18 AND place_type = 'police_station'")
    with op.batch_alter_table('s136_detentions', schema=None) as batch_op:
        batch_op.alter_column('deadline', existing_type=UTC, nullable=False)
        batch_op.drop_constraint(batch_op.f('fk_s136_detentions_detention_id_detention_episodes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_s136_detentions_detention_id'))
        batch_op.drop_constraint(op.f('ck_s136_detentions_no_under_18_in_police_station'), type_='check')
        batch_op.create_check_constraint('no_under_18_in_police_station', OLD_CHECK)
        batch_op.create_index('ix_s136_detentions_open_deadline', ['deadline'], unique=False, postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_column('note')
        batch_op.drop_column('never_event_acknowledged')
        batch_op.drop_column('detention_id')

    with op.batch_alter_table('placements', schema=None) as batch_op:
        for clock_column in placement_s136_clock_columns():
            batch_op.add_column(clock_column)
    op.execute(
        "UPDATE placements SET s136_clock_started_at = e.clock_started_at, s136_deadline = e.deadline, "
        "s136_extension_hours = e.extension_hours, s136_extension_authorised_by = e.extension_authorised_by, "
        "s136_extension_reason = e.extension_note, s136_extension_recorded_at = e.extension_recorded_at, "
        "s136_breached_at = e.breached_at FROM detention_episodes e "
        "WHERE e.id = placements.detention_id AND placements.legal_basis = 's136'"
    )
    with op.batch_alter_table('placements', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_placements_detention_id_detention_episodes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_placements_detention_id'))
        batch_op.create_index('ix_placements_s136_home_clock', ['home_area', 's136_clock_started_at'], unique=False, postgresql_where=sa.text("legal_basis = 's136'"), sqlite_where=sa.text("legal_basis = 's136'"))
        batch_op.create_index('ix_placements_open_s136_deadline', ['s136_deadline'], unique=False, postgresql_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'), sqlite_where=sa.text('ended_at IS NULL AND s136_breached_at IS NULL'))
        batch_op.drop_column('age_exception_reason')
        batch_op.drop_column('detention_id')

    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_holds_detention_id_detention_episodes'), type_='foreignkey')
        batch_op.drop_column('detention_id')

    with op.batch_alter_table('detention_episodes', schema=None) as batch_op:
        batch_op.drop_index('ix_detention_episodes_open_deadline', postgresql_where=OPEN, sqlite_where=OPEN)
        batch_op.drop_index('ix_detention_episodes_clock_started_at')
    op.drop_table('detention_episodes')
