"""web renditions of each video: status, transcode job and progress, rendition keys, original dropped

Videos from before renditions read `original` and play as uploaded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("rendition_status", sa.String(16), nullable=False, server_default="original")
        )
        batch_op.add_column(sa.Column("transcode_task_id", sa.String(36), nullable=True))
        batch_op.add_column(sa.Column("transcode_progress", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("transcode_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("rendition_key", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("small_rendition_key", sa.String(255), nullable=True))
        batch_op.add_column(sa.Column("renditions", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("original_deleted_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("videos", schema=None) as batch_op:
        for column in (
            "original_deleted_at",
            "renditions",
            "small_rendition_key",
            "rendition_key",
            "transcode_error",
            "transcode_progress",
            "transcode_task_id",
            "rendition_status",
        ):
            batch_op.drop_column(column)
