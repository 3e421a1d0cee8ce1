"""foundation and booking schema"""

import sqlalchemy as sa
from alembic import op

from capacity.migrations.helpers import (
    UTC,
    create_area_links,
    create_area_local_providers,
    declared_columns,
    id_column,
    person_columns,
    placement_s136_clock_columns,
)


revision: str = '0001'
down_revision: str | None = None


def upgrade() -> None:
    op.create_table('areas',
    sa.Column('code', sa.String(length=9), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('region', sa.String(length=80), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_areas'))
    )
    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', UTC, nullable=False),
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('object_type', sa.String(length=24), nullable=False),
    sa.Column('object_id', sa.String(length=36), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    op.create_index('ix_audit_log_at', 'audit_log', ['at'], unique=False)
    op.create_index('ix_audit_log_object', 'audit_log', ['object_type', 'object_id'], unique=False)

    op.create_table('providers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sector', sa.String(length=16), nullable=False),
    id_column(),
    sa.CheckConstraint("sector in ('nhs', 'private', 'voluntary')", name=op.f('ck_providers_sector')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_providers')),
    sa.UniqueConstraint('name', name=op.f('uq_providers_name'))
    )
    op.create_table('unmet_demand',
    sa.Column('at', UTC, nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=True),
    sa.Column('home_area', sa.String(length=9), nullable=True),
    sa.Column('unit_id', sa.String(length=36), nullable=True),
    id_column(),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unmet_demand'))
    )
    op.create_index('ix_unmet_demand_area_at', 'unmet_demand', ['home_area', 'at'], unique=False)

    create_area_local_providers()
    op.create_table('units',
    sa.Column('provider_id', sa.String(length=36), nullable=False),
    sa.Column('area_code', sa.String(length=9), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('postcode', sa.String(length=10), nullable=True),
    sa.Column('sex', sa.String(length=8), nullable=False),
    sa.Column('min_age', sa.Integer(), nullable=False),
    sa.Column('max_age', sa.Integer(), nullable=True),
    sa.Column('mother_and_baby', sa.Boolean(), nullable=False),
    sa.Column('accepts_intoxicated', sa.Boolean(), nullable=False),
    sa.Column('accepts_detained', sa.Boolean(), nullable=False),
    sa.Column('max_stay_days', sa.Integer(), nullable=True),
    sa.Column('daily_cost', sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('open_places', sa.Integer(), nullable=False),
    sa.Column('closed_reason', sa.String(length=32), nullable=True),
    sa.Column('last_confirmed_at', UTC, nullable=False),
    sa.Column('last_confirmed_by', sa.String(length=80), nullable=False),
    id_column(),
    sa.CheckConstraint("kind in ('s136_suite', 'crisis_house', 'community_bed', 'respite', 'acute_adult', 'acute_older_adult', 'picu')", name=op.f('ck_units_kind')),
    sa.CheckConstraint("sex in ('any', 'female', 'male')", name=op.f('ck_units_sex')),
    sa.CheckConstraint("status in ('open', 'closed')", name=op.f('ck_units_status')),
    sa.CheckConstraint('open_places >= 0', name=op.f('ck_units_open_places_not_negative')),
    sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_units_area_code_areas')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_units_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_units'))
    )
    op.create_index(op.f('ix_units_area_code'), 'units', ['area_code'], unique=False)
    op.create_index('ix_units_kind_sex_ages', 'units', ['kind', 'sex', 'min_age', 'max_age'], unique=False)
    op.create_index(op.f('ix_units_provider_id'), 'units', ['provider_id'], unique=False)

    op.create_table('users',
    sa.Column('username', sa.String(length=80), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('provider_id', sa.String(length=36), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    id_column(),
    sa.CheckConstraint("role != 'bed_manager' or provider_id is not null", name=op.f('ck_users_bed_manager_provider')),
    sa.CheckConstraint("role in ('bed_manager', 'amhp', 'conveyance', 'commissioner', 'admin')", name=op.f('ck_users_role')),
    sa.ForeignKeyConstraint(['provider_id'], ['providers.id'], name=op.f('fk_users_provider_id_providers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('username', name=op.f('uq_users_username'))
    )
    op.create_table('availability_declarations',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    *declared_columns(),
    sa.Column('before_open_places', sa.Integer(), nullable=True),
    sa.Column('after_open_places', sa.Integer(), nullable=False),
    sa.Column('before_status', sa.String(length=8), nullable=True),
    sa.Column('after_status', sa.String(length=8), nullable=False),
    sa.Column('closed_reason', sa.String(length=32), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('confirmation', sa.Boolean(), nullable=False),
    id_column(),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_availability_declarations_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_availability_declarations'))
    )
    op.create_index('ix_availability_declarations_unit_at', 'availability_declarations', ['unit_id', 'declared_at'], unique=False)

    op.create_table('holds',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('purpose', sa.String(length=10), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('expires_at', UTC, nullable=False),
    sa.Column('ended_at', UTC, nullable=True),
    sa.Column('ended_by', sa.String(length=80), nullable=True),
    sa.Column('risk_flags', sa.JSON(), nullable=False),
    sa.Column('note', sa.String(length=280), nullable=True),
    sa.Column('extensions', sa.Integer(), nullable=False),
    sa.Column('extended_minutes', sa.Integer(), nullable=False),
    sa.Column('decline_reason', sa.String(length=32), nullable=True),
    sa.Column('decline_note', sa.String(length=280), nullable=True),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_hash', sa.String(length=64), nullable=True),
    id_column(),
    *person_columns(),
    sa.CheckConstraint("status in ('held', 'arrived', 'released', 'declined', 'expired')", name=op.f('ck_holds_status')),
    sa.ForeignKeyConstraint(['home_area'], ['areas.code'], name=op.f('fk_holds_home_area_areas')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_holds_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_holds')),
    sa.UniqueConstraint('created_by', 'idempotency_key', name=op.f('uq_holds_created_by_idempotency_key'))
    )
    op.create_index('ix_holds_status_expires', 'holds', ['status', 'expires_at'], unique=False)
    op.create_index('ix_holds_unit_status_expires', 'holds', ['unit_id', 'status', 'expires_at'], unique=False)

    op.create_table('unit_area_rules',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('area_code', sa.String(length=9), nullable=False),
    sa.Column('rule', sa.String(length=8), nullable=False),
    sa.CheckConstraint("rule in ('accepts', 'refuses')", name=op.f('ck_unit_area_rules_rule')),
    sa.ForeignKeyConstraint(['area_code'], ['areas.code'], name=op.f('fk_unit_area_rules_area_code_areas')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_unit_area_rules_unit_id_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('unit_id', 'area_code', name=op.f('pk_unit_area_rules'))
    )
    create_area_links('user_areas', 'user_id', 'users')
    op.create_table('conveyances',
    sa.Column('hold_id', sa.String(length=36), nullable=False),
    sa.Column('mode', sa.String(length=20), nullable=False),
    sa.Column('police_vehicle_reason', sa.String(length=280), nullable=True),
    sa.Column('requested_at', UTC, nullable=True),
    sa.Column('dispatched_at', UTC, nullable=True),
    sa.Column('at_scene_at', UTC, nullable=True),
    sa.Column('departed_at', UTC, nullable=True),
    sa.Column('arrived_at', UTC, nullable=True),
    sa.Column('eta', UTC, nullable=True),
    sa.Column('updated_at', UTC, nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_conveyances_hold_id_holds')),
    sa.PrimaryKeyConstraint('hold_id', name=op.f('pk_conveyances'))
    )
    op.create_table('placements',
    sa.Column('unit_id', sa.String(length=36), nullable=False),
    sa.Column('hold_id', sa.String(length=36), nullable=True),
    sa.Column('legal_basis', sa.String(length=10), nullable=False),
    sa.Column('started_at', UTC, nullable=False),
    sa.Column('ended_at', UTC, nullable=True),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('out_of_area', sa.Boolean(), nullable=False),
    sa.Column('oap_reason', sa.String(length=2), nullable=True),
    sa.Column('distance_km', sa.Float(), nullable=True),
    sa.Column('daily_cost', sa.Numeric(precision=10, scale=2, asdecimal=False), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    *placement_s136_clock_columns(),
    id_column(),
    *person_columns(),
    sa.ForeignKeyConstraint(['hold_id'], ['holds.id'], name=op.f('fk_placements_hold_id_holds')),
    sa.ForeignKeyConstraint(['home_area'], ['areas.code'], name=op.f('fk_placements_home_area_areas')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_placements_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_placements')),
    sa.UniqueConstraint('hold_id', name=op.f('uq_placements_hold_id'))
    )
    op.create_index('ix_placements_home_started', 'placements', ['home_area', 'started_at'], unique=False)
    op.create_index('ix_placements_s136_deadline', 'placements', ['s136_deadline'], unique=False)
    op.create_index('ix_placements_unit_ended', 'placements', ['unit_id', 'ended_at'], unique=False)

    _make_audit_log_append_only()


def downgrade() -> None:
    _drop_audit_log_guards()
    # Each table goes with its indexes, in the reverse of the order they were made in.
    for table in (
        'placements',
        'conveyances',
        'user_areas',
        'unit_area_rules',
        'holds',
        'availability_declarations',
        'users',
        'units',
        'area_local_providers',
        'unmet_demand',
        'providers',
        'audit_log',
        'areas',
    ):
        op.drop_table(table)


def _make_audit_log_append_only() -> None:
    """The audit log refuses UPDATE and DELETE in the database itself, not only in the code."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"
            )


def _drop_audit_log_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
