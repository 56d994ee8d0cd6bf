"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-24 23:37:14.776345
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""

    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit")),
    )
    op.create_table(
        "book",
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("qty", sa.Float(), nullable=False),
        sa.Column("unit_cost", sa.Float(), nullable=False),
        sa.Column("abc", sa.String(length=1), nullable=False),
        sa.PrimaryKeyConstraint("location", "sku", name=op.f("pk_book")),
    )
    op.create_table(
        "book_meta",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("snapshot_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=256), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_book_meta")),
    )
    op.create_table(
        "counts",
        sa.Column("msg_id", sa.String(length=160), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("scan_id", sa.String(length=128), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("historical", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_counts")),
    )
    with op.batch_alter_table("counts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_counts_location_observed", ["location", "observed_at"], unique=False
        )
        batch_op.create_index("ix_counts_scan", ["scan_id"], unique=False)

    op.create_table(
        "coverage",
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("zone", "location", name=op.f("pk_coverage")),
    )
    op.create_table(
        "discrepancies",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recounts", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.String(length=128), nullable=False),
        sa.Column("count_msg_id", sa.String(length=160), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_discrepancies")),
    )
    with op.batch_alter_table("discrepancies", schema=None) as batch_op:
        batch_op.create_index(
            "ix_discrepancies_location_state", ["location", "state"], unique=False
        )

    op.create_table(
        "messages",
        sa.Column("msg_id", sa.String(length=160), nullable=False),
        sa.Column("schema", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("msg_id", name=op.f("pk_messages")),
    )
    op.create_table(
        "movements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("qty_delta", sa.Float(), nullable=False),
        sa.Column("user", sa.String(length=128), nullable=False),
        sa.Column("doc", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_movements")),
    )
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.create_index("ix_movements_location_ts", ["location", "ts"], unique=False)

    op.create_table(
        "scans",
        sa.Column("scan_id", sa.String(length=128), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("locations", sa.JSON(), nullable=False),
        sa.Column("incomplete_locations", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_scans")),
    )
    op.create_table(
        "adjustments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_adjustments_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_adjustments")),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reason_code", sa.String(length=128), nullable=False),
        sa.Column("approver", sa.String(length=128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_approvals_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
    )
    op.create_table(
        "recounts",
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_by", sa.String(length=128), nullable=True),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_recounts_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_recounts")),
    )


def downgrade() -> None:
    """Revert."""

    op.drop_table("recounts")
    op.drop_table("approvals")
    op.drop_table("adjustments")
    op.drop_table("scans")
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.drop_index("ix_movements_location_ts")

    op.drop_table("movements")
    op.drop_table("messages")
    with op.batch_alter_table("discrepancies", schema=None) as batch_op:
        batch_op.drop_index("ix_discrepancies_location_state")

    op.drop_table("discrepancies")
    op.drop_table("coverage")
    with op.batch_alter_table("counts", schema=None) as batch_op:
        batch_op.drop_index("ix_counts_scan")
        batch_op.drop_index("ix_counts_location_observed")

    op.drop_table("counts")
    op.drop_table("book_meta")
    op.drop_table("book")
    op.drop_table("audit")
