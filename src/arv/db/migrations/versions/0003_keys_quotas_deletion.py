"""key labels and last use, per-company quotas, upload counts, image sizes, deleted content ids

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 11:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("label", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.add_column(sa.Column("quota_uploads_per_day", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_compiles_in_flight", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_transcodes_in_flight", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("quota_stored_bytes", sa.BigInteger(), nullable=True))
    for table in ("portraits", "ar_contents"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("image_size_bytes", sa.BigInteger(), nullable=False, server_default="0")
            )
    op.create_table(
        "upload_counts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_upload_counts_company_id_companies"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_upload_counts")),
        sa.UniqueConstraint("company_id", "day", name=op.f("uq_upload_counts_company_id")),
    )
    op.create_table(
        "deleted_contents",
        sa.Column("unique_id", sa.String(length=36), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("unique_id", name=op.f("pk_deleted_contents")),
    )


def downgrade() -> None:
    op.drop_table("deleted_contents")
    op.drop_table("upload_counts")
    for table in ("ar_contents", "portraits"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("image_size_bytes")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.drop_column("quota_stored_bytes")
        batch_op.drop_column("quota_transcodes_in_flight")
        batch_op.drop_column("quota_compiles_in_flight")
        batch_op.drop_column("quota_uploads_per_day")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("label")
