"""EPCIS capture: one export record per ended scan

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 10:00:00

* ``epcis_exports``: per scan, what was sent to the EPCIS 2.0 capture interface (the documents
  accepted, their capture jobs, the claim of the reconciler instance sending it), so nothing is
  sent twice or lost across a restart (``reconciler.epcis.sender``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "epcis_exports",
        sa.Column("scan_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=True),
        sa.Column("next_event", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.JSON(), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1024), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("pk_epcis_exports")),
    )
    op.create_index(
        "ix_epcis_exports_state_next_attempt_at", "epcis_exports", ["state", "next_attempt_at"]
    )


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_epcis_exports_state_next_attempt_at", table_name="epcis_exports")
    op.drop_table("epcis_exports")
