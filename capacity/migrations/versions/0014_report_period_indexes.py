"""indexes for reports bounded by their period: a person's earlier detentions, found by their first legs

The s136 report counts a detention of the period as a repeat when the same person (reference and home
area) had another episode whose clock started in the year before. Each episode's first leg (a placement
or a detention elsewhere, whose id is the episode's and its own `detention_id`) says who the person is:
these partial indexes find a person's first legs directly, instead of every episode of their area.
"""

import sqlalchemy as sa
from alembic import op


revision: str = '0014'
down_revision: str | None = '0013'

FIRST_LEG = "id = detention_id"


def upgrade() -> None:
    for table in ('placements', 's136_detentions'):
        op.create_index(
            f'ix_{table}_first_leg_person', table, ['home_area', 'person_ref'], unique=False,
            postgresql_where=sa.text(FIRST_LEG), sqlite_where=sa.text(FIRST_LEG),
        )


def downgrade() -> None:
    for table in ('s136_detentions', 'placements'):
        op.drop_index(f'ix_{table}_first_leg_person', table_name=table)
