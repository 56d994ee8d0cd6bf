"""Camera frames: the latest annotated frame of each location's vision count

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 15:10:00

* ``frames``: the latest ``edgecount.frame/1`` of each (zone, location), its JPEG included;
  the console's page of a location shows it (``ix_frames_received_at``: its live feed asks for
  the newest frame each second).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_table(
        "frames",
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("scan_id", sa.String(length=128), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("zone", "location", name=op.f("pk_frames")),
    )
    op.create_index("ix_frames_received_at", "frames", ["received_at"])


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_frames_received_at", table_name="frames")
    op.drop_table("frames")
