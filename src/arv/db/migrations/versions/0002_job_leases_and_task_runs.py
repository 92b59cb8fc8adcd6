"""job heartbeats, retry windows, delivery claim owners, periodic task runs

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lost_leases", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("retry_until", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by_job", sa.String(length=36), nullable=True))
    op.create_table(
        "task_runs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_task_runs")),
    )


def downgrade() -> None:
    op.drop_table("task_runs")
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_column("claimed_by_job")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("retry_until")
        batch_op.drop_column("lost_leases")
