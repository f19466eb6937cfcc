"""app deployment context and time-bound legal duties

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import neurogate.consent.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Apps registered before deployment contexts existed are used at home (the default of
    # POST /v1/apps); an admin or the owner can change it.
    with op.batch_alter_table('apps', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deployment_context', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=False, server_default='home'))
    op.create_table('subject_requests',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('filed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('consent_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('jurisdiction', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('free_of_charge', sa.Boolean(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('filed_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('due_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('overdue_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('completed_at', neurogate.consent.models.UTCDateTime(timezone=True),
              nullable=True),
    sa.Column('completed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['completed_by'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['consent_id'], ['consents.id'], ),
    sa.ForeignKeyConstraint(['filed_by'], ['accounts.id'], ),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subject_requests_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_subject_requests_subject_id'), ['subject_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('subject_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subject_requests_subject_id'))
        batch_op.drop_index(batch_op.f('ix_subject_requests_status'))
    op.drop_table('subject_requests')
    with op.batch_alter_table('apps', schema=None) as batch_op:
        batch_op.drop_column('deployment_context')
