"""The reconciler's tables (SQLAlchemy Core). Alembic migrations create and evolve them.

The same definitions serve SQLite (the default, in WAL mode) and PostgreSQL (at scale).
Timestamps are stored as timezone-aware UTC; quantities as whole units (integers), money as floats.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

TS = DateTime(timezone=True)
NAME = String(128)

book = Table(
    "book",
    metadata,
    Column("location", NAME, primary_key=True),
    Column("sku", NAME, primary_key=True),
    Column("qty", Integer, nullable=False),
    Column("unit_cost", Float, nullable=False),
    Column("abc", String(1), nullable=False),
)

book_meta = Table(
    "book_meta",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("snapshot_at", TS, nullable=False),
    Column("source", String(256), nullable=False),
    Column("rows", Integer, nullable=False),
)

movements = Table(
    "movements",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", TS, nullable=False),
    Column("location", NAME, nullable=False),
    Column("sku", NAME, nullable=False),
    Column("qty_delta", Integer, nullable=False),
    Column("user", NAME, nullable=False),
    Column("doc", String(256), nullable=False),
    # The WMS's own id: a feed imported twice applies once (unique when given).
    Column("movement_id", NAME),
    Index("ix_movements_location_ts", "location", "ts"),
    Index("uq_movements_movement_id", "movement_id", unique=True),
)

counts = Table(
    "counts",
    metadata,
    Column("msg_id", String(160), primary_key=True),
    Column("gateway", NAME, nullable=False),
    Column("zone", NAME, nullable=False),
    Column("location", NAME, nullable=False),
    Column("scan_id", NAME, nullable=False),
    Column("observed_at", TS, nullable=False),
    Column("source", String(16), nullable=False),
    Column("complete", Boolean, nullable=False),
    Column("historical", Boolean, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("items", JSON, nullable=False),
    Index("ix_counts_location_observed", "location", "observed_at"),
    Index("ix_counts_scan", "scan_id"),
    Index("ix_counts_received_at", "received_at"),  # the console's live feed
)

scans = Table(
    "scans",
    metadata,
    Column("scan_id", NAME, primary_key=True),
    Column("gateway", NAME, nullable=False),
    Column("zone", NAME, nullable=False),
    Column("state", String(16), nullable=False),
    Column("started_at", TS, nullable=False),
    Column("ended_at", TS),
    Column("request_id", NAME),
    Column("locations", JSON, nullable=False),
    Column("incomplete_locations", JSON, nullable=False),
    Column("readers", JSON),  # [{name, ok, reads, error}] of the latest scan message
    Column("cameras", JSON),  # [{name, ok, frames, error}] or None (no cameras)
)

messages = Table(
    "messages",
    metadata,
    Column("msg_id", String(160), primary_key=True),
    Column("schema", String(64), nullable=False),
    Column("received_at", TS, nullable=False),
)

coverage = Table(
    "coverage",
    metadata,
    Column("zone", NAME, primary_key=True),
    Column("location", NAME, primary_key=True),
    Column("gateway", NAME, nullable=False),
    Column("last_seen", TS, nullable=False),
)

discrepancies = Table(
    "discrepancies",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("zone", NAME, nullable=False),
    Column("location", NAME, nullable=False),
    Column("gateway", NAME, nullable=False),
    Column("state", String(24), nullable=False),
    Column("opened_at", TS, nullable=False),
    Column("updated_at", TS, nullable=False),
    Column("closed_at", TS),
    Column("recounts", Integer, nullable=False, default=0),
    Column("scan_id", NAME, nullable=False),
    Column("count_msg_id", String(160), nullable=False),
    Column("observed_at", TS, nullable=False),
    Column("lines", JSON, nullable=False),
    # False while the retained MQTT message does not yet show a decision made elsewhere
    # (the CLI or the API): the service publishes it and sets this on the PUBACK.
    Column("announced", Boolean, nullable=False, default=True),
    Index("ix_discrepancies_location_state", "location", "state"),
)

recounts = Table(
    "recounts",
    metadata,
    Column("request_id", NAME, primary_key=True),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id"), nullable=False),
    Column("gateway", NAME, nullable=False),
    Column("requested_at", TS, nullable=False),
    Column("answered_by", NAME),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id"), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason_code", NAME, nullable=False),
    Column("approver", NAME, nullable=False),
    Column("at", TS, nullable=False),
    Column("note", String(1024), nullable=False, default=""),
)

adjustments = Table(
    "adjustments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id"), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("value", Float, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("published_at", TS),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", TS, nullable=False),
    Column("actor", NAME, nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(256), nullable=False),
    Column("detail", JSON, nullable=False),
)

decisions = Table(
    "decisions",
    metadata,
    # The id is the cursor of ``GET /decisions?after=``: ascending in the order decided.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id"), nullable=False),
    Column("zone", NAME, nullable=False),
    Column("location", NAME, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("decided_by", NAME, nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("note", String(1024), nullable=False),
    Column("at", TS, nullable=False),
    Column("payload", JSON, nullable=False),  # the edgecount.decision/1 message
    Column("published_at", TS),  # when the broker acknowledged it; None: still to send
    Index("ix_decisions_published_at", "published_at"),
)

accepted_variances = Table(
    "accepted_variances",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("location", NAME, nullable=False),
    Column("sku", NAME, nullable=False),
    Column("book_qty", Integer, nullable=False),
    Column("counted_qty", Integer, nullable=False),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id"), nullable=False),
    Column("reason_code", String(64), nullable=False),
    Column("decided_by", NAME, nullable=False),
    Column("decided_at", TS, nullable=False),
    Index("ix_accepted_variances_location_sku", "location", "sku"),
)

# -- sign-in (reconciler.auth) ---------------------------------------------------------------

users = Table(
    "users",
    metadata,
    Column("name", NAME, primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(256), nullable=False),  # argon2id, PHC string
    Column("created_at", TS, nullable=False),
    Column("password_changed_at", TS, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user", NAME, ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    # SHA-256 of the token: it has 256 random bits, so no slow hash is needed to protect it
    Column("token_hash", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("expires_at", TS),
    Column("revoked_at", TS),
    Index("uq_api_tokens_token_hash", "token_hash", unique=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),  # SHA-256 of the cookie's value
    Column("user", NAME, ForeignKey("users.name", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("last_seen", TS, nullable=False),
)

# -- the operator console (reconciler.console) -------------------------------------------------

gateway_status = Table(
    "gateway_status",
    metadata,
    Column("gateway", NAME, primary_key=True),
    Column("state", String(16), nullable=False),  # online, offline, stopped
    Column("at", TS, nullable=False),  # the status message's time
    Column("version", String(64), nullable=False),
    Column("received_at", TS, nullable=False),
)

count_tasks = Table(
    "count_tasks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("zone", NAME, nullable=False),
    Column("location", NAME, nullable=False),
    Column("discrepancy_id", Integer, ForeignKey("discrepancies.id")),
    Column("reason", String(32), nullable=False),  # incomplete, disagreement, requested
    Column("state", String(16), nullable=False),  # open, done, cancelled
    Column("assigned_to", NAME),
    Column("created_by", NAME, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("done_at", TS),
    Column("count_msg_id", String(160)),  # the manual count that settled it
    Column("note", String(1024), nullable=False, default=""),
    Index("ix_count_tasks_state", "state"),
)

console_outbox = Table(
    "console_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(512), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("retain", Boolean, nullable=False, default=False),
    Column("created_by", NAME, nullable=False),
    Column("created_at", TS, nullable=False),
    Column("published_at", TS),  # when the broker acknowledged it; None: still to send
    Index("ix_console_outbox_published_at", "published_at"),
)

frames = Table(
    "frames",
    metadata,
    Column("zone", NAME, primary_key=True),
    Column("location", NAME, primary_key=True),
    Column("gateway", NAME, nullable=False),
    Column("scan_id", NAME, nullable=False),
    Column("observed_at", TS, nullable=False),  # when the camera took it
    Column("content_type", String(32), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("jpeg", LargeBinary, nullable=False),
    Column("received_at", TS, nullable=False),
    Index("ix_frames_received_at", "received_at"),  # the console's live feed
)
"""The latest annotated camera frame of each location (``edgecount.frame/1``)."""

epcis_exports = Table(
    "epcis_exports",
    metadata,
    Column("scan_id", NAME, primary_key=True),
    # pending (to send), sending (claimed: claimed_by holds it until lease_until), sent, failed
    Column("state", String(16), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("next_attempt_at", TS, nullable=False),  # not claimed before (backoff after errors)
    Column("attempts", Integer, nullable=False, default=0),
    Column("events", Integer),  # the scan's events, once built
    Column("next_event", Integer, nullable=False, default=0),  # events before it were accepted
    Column("jobs", JSON, nullable=False),  # [{url, first, count, state}] per document accepted
    Column("claimed_by", NAME),
    Column("lease_until", TS),
    Column("last_error", String(1024)),
    Column("sent_at", TS),
    Index("ix_epcis_exports_state_next_attempt_at", "state", "next_attempt_at"),
)
"""What of each ended scan was sent to the EPCIS capture interface (``reconciler.epcis``)."""
report_deliveries = Table(
    "report_deliveries",
    metadata,
    Column("scope", String(160), primary_key=True),  # "night:2026-01-05", "scan:ID", "since:T"
    Column("recipient", String(254), primary_key=True),  # the address, lower case
    Column("message_id", String(256), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("sent_at", TS, nullable=False),  # when the SMTP server accepted it (latest)
    Column("sends", Integer, nullable=False),  # more than 1 after `report send --force`
)
"""Which report went to whom: ``edgecount report send`` sends a scope to a recipient once."""
