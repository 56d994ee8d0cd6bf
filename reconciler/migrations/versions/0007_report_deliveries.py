"""Report deliveries: which night's report the SMTP server accepted for which recipient

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10 09:00:00

* ``report_deliveries``: one row per (report scope, recipient), written once the SMTP server
  accepted the message, so ``edgecount report send`` run again by its timer sends nothing
  twice (``--force`` sends again and counts ``sends``).

(0006 is being added on another branch at the same time; the chain is fixed when they meet.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "report_deliveries",
        sa.Column("scope", sa.String(length=160), nullable=False),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("message_id", sa.String(length=256), nullable=False),
        sa.Column("subject", sa.String(length=512), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "recipient", name=op.f("pk_report_deliveries")),
    )


def downgrade() -> None:
    """Revert."""
    op.drop_table("report_deliveries")
