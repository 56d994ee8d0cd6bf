"""WMS integration: whole-unit quantities, movement ids, decisions out, accepted variances

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 17:10:00

* ``book.qty`` and ``movements.qty_delta`` become integers (whole units, rounded).
* ``movements.movement_id``: the WMS's own id of a movement; unique when given, so a feed
  imported twice applies once.
* ``decisions``: every end of a discrepancy (approved, rejected, resolved, superseded), the
  ``edgecount.decision/1`` payload, and when the broker acknowledged it. Its ``id`` is the
  cursor of ``GET /decisions``.
* ``accepted_variances``: the lines of rejected discrepancies; the same location x SKU x
  counted figure against the same book is not flagged again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    with op.batch_alter_table("book", schema=None) as batch_op:
        batch_op.alter_column(
            "qty",
            existing_type=sa.Float(),
            type_=sa.Integer(),
            existing_nullable=False,
            postgresql_using="round(qty)::integer",
        )
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.alter_column(
            "qty_delta",
            existing_type=sa.Float(),
            type_=sa.Integer(),
            existing_nullable=False,
            postgresql_using="round(qty_delta)::integer",
        )
        batch_op.add_column(sa.Column("movement_id", sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f("uq_movements_movement_id"), ["movement_id"], unique=True)
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=1024), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_decisions_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index(op.f("ix_decisions_published_at"), "decisions", ["published_at"])
    op.create_table(
        "accepted_variances",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("sku", sa.String(length=128), nullable=False),
        sa.Column("book_qty", sa.Integer(), nullable=False),
        sa.Column("counted_qty", sa.Integer(), nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=False),
        sa.Column("reason_code", sa.String(length=64), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_accepted_variances_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accepted_variances")),
    )
    op.create_index(
        op.f("ix_accepted_variances_location_sku"), "accepted_variances", ["location", "sku"]
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index(op.f("ix_accepted_variances_location_sku"), table_name="accepted_variances")
    op.drop_table("accepted_variances")
    op.drop_index(op.f("ix_decisions_published_at"), table_name="decisions")
    op.drop_table("decisions")
    with op.batch_alter_table("movements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("uq_movements_movement_id"))
        batch_op.drop_column("movement_id")
        batch_op.alter_column("qty_delta", existing_type=sa.Integer(), type_=sa.Float())
    with op.batch_alter_table("book", schema=None) as batch_op:
        batch_op.alter_column("qty", existing_type=sa.Integer(), type_=sa.Float())
