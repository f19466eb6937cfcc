"""encrypted recordings, data keys and retention

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import neurogate.consent.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('data_keys',
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kek_version', sa.Integer(), nullable=False),
    sa.Column('created_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('rotated_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], ),
    sa.PrimaryKeyConstraint('subject_id')
    )
    op.create_index(op.f('ix_data_keys_kek_version'), 'data_keys', ['kek_version'],
                    unique=False)
    op.create_table('recordings',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('app_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('consent_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('purpose_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('device_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('channel_names', sa.JSON(), nullable=True),
    sa.Column('sampling_rate', sa.Float(), nullable=False),
    sa.Column('started_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('stop_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('keep_until', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('delete_after', neurogate.consent.models.UTCDateTime(timezone=True),
              nullable=True),
    sa.ForeignKeyConstraint(['app_id'], ['apps.id'], ),
    sa.ForeignKeyConstraint(['consent_id'], ['consents.id'], ),
    sa.ForeignKeyConstraint(['subject_id'], ['subjects.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_recordings_app_id'), 'recordings', ['app_id'], unique=False)
    op.create_index(op.f('ix_recordings_consent_id'), 'recordings', ['consent_id'],
                    unique=False)
    op.create_index(op.f('ix_recordings_subject_id'), 'recordings', ['subject_id'],
                    unique=False)
    op.create_table('recording_segments',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('recording_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('subject_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('product', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('key_version', sa.Integer(), nullable=False),
    sa.Column('nonce', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('t0', sa.Float(), nullable=False),
    sa.Column('created_at', neurogate.consent.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('recording_id', 'product', 'index')
    )
    op.create_index(op.f('ix_recording_segments_recording_id'), 'recording_segments',
                    ['recording_id'], unique=False)
    op.create_index(op.f('ix_recording_segments_subject_id'), 'recording_segments',
                    ['subject_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_recording_segments_subject_id'), table_name='recording_segments')
    op.drop_index(op.f('ix_recording_segments_recording_id'), table_name='recording_segments')
    op.drop_table('recording_segments')
    op.drop_index(op.f('ix_recordings_subject_id'), table_name='recordings')
    op.drop_index(op.f('ix_recordings_consent_id'), table_name='recordings')
    op.drop_index(op.f('ix_recordings_app_id'), table_name='recordings')
    op.drop_table('recordings')
    op.drop_index(op.f('ix_data_keys_kek_version'), table_name='data_keys')
    op.drop_table('data_keys')
