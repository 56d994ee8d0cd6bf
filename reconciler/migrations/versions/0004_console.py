"""The operator console: gateway status, count tasks, an outbox, scan device reports

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 13:45:00

* ``gateway_status``: each gateway's latest ``edgecount.status/1`` (online, offline, stopped).
* ``count_tasks``: manual count tasks for what automation could not settle, assigned to a user.
* ``console_outbox``: MQTT messages the console asks the service to publish ("Scan now").
* ``ix_counts_received_at``: the console's live feed asks for the newest count each second.
* ``scans.readers`` / ``scans.cameras``: the device reports of a scan's latest message.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply."""
    op.create_index("ix_counts_received_at", "counts", ["received_at"])
    with op.batch_alter_table("scans") as batch:
        batch.add_column(sa.Column("readers", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("cameras", sa.JSON(), nullable=True))
    op.create_table(
        "gateway_status",
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("gateway", name=op.f("pk_gateway_status")),
    )
    op.create_table(
        "count_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("zone", sa.String(length=128), nullable=False),
        sa.Column("location", sa.String(length=128), nullable=False),
        sa.Column("discrepancy_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("assigned_to", sa.String(length=128), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("count_msg_id", sa.String(length=160), nullable=True),
        sa.Column("note", sa.String(length=1024), nullable=False),
        sa.ForeignKeyConstraint(
            ["discrepancy_id"],
            ["discrepancies.id"],
            name=op.f("fk_count_tasks_discrepancy_id_discrepancies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_count_tasks")),
    )
    op.create_index("ix_count_tasks_state", "count_tasks", ["state"])
    op.create_table(
        "console_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("topic", sa.String(length=512), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("retain", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_outbox")),
    )
    op.create_index("ix_console_outbox_published_at", "console_outbox", ["published_at"])


def downgrade() -> None:
    """Revert."""
    op.drop_index("ix_console_outbox_published_at", table_name="console_outbox")
    op.drop_table("console_outbox")
    op.drop_index("ix_count_tasks_state", table_name="count_tasks")
    op.drop_table("count_tasks")
    op.drop_table("gateway_status")
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("cameras")
        batch.drop_column("readers")
    op.drop_index("ix_counts_received_at", table_name="counts")
