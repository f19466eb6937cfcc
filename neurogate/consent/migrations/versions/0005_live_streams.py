"""live streams (closed on restart)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import neurogate.consent.models


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_streams',
    sa.Column('stream', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('instance', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('process', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('leaf', sa.JSON(), nullable=False),
    sa.Column('started_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('seen_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('stream')
    )
    with op.batch_alter_table('live_streams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_streams_instance'), ['instance'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('live_streams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_streams_instance'))

    op.drop_table('live_streams')
