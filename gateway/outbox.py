"""The gateway's outbox: every message is written to SQLite before it is published.

A message enters with :meth:`Outbox.put` as its typed class (:mod:`edgecount.contract`).
``put`` assigns the next sequence number, makes a sequenced draft (``edgecount.count/1``,
``edgecount.scan/1``) the message with ``seq`` / ``msg_id`` (:meth:`CountDraft.sequenced`),
validates and encodes it, and commits the bytes before returning. It leaves only with
:meth:`Outbox.ack`, which the publisher calls once the broker acknowledged it (PUBACK).

:meth:`Outbox.put_many` does the same for a batch (a scan's counts at the window's close) in
one transaction, so one fsync: the batch's stored messages are all in the file or, after a
crash before the commit, none is. Each message is judged on its own: one that breaks the
contract, or finds the outbox full, is rejected (counted, logged) and takes no sequence
number, and the batch's other messages are stored; the caller learns per message what
became of it. Sequence numbers within a batch are contiguous and in batch order.

Sequence numbers come from a persisted counter, so they are never reused: not after rows are
deleted, not after a restart. A gap in a gateway's sequence therefore means a message was
lost downstream, never that the gateway reused a number. The counter lives in the file, so a
gateway whose outbox file is lost (a wiped ``state_dir``, a replaced SD card) starts again at
1; every file therefore also holds an *epoch*, a random id made with it, and ``msg_id`` is
``"{gateway}:{epoch}:{seq}"``: a new file never repeats a ``msg_id`` of an old one, so
consumers (idempotent on ``msg_id``) never drop its counts as duplicates.

The ``historical`` rule. A sequenced message is sent with ``"historical": true`` exactly when
its row

* was already handed to the broker on an earlier connection of this process
  (:meth:`Outbox.mark_sent` was called for it and it was not acknowledged), or
* was already in the outbox when this process opened it (it survived a restart or crash).

Otherwise -- including a message queued while the broker was unreachable and sent for the
first time on reconnect -- ``historical`` stays ``false``. So ``historical: true`` tells a
consumer "you may have seen this msg_id before"; freshness is what ``observed_at`` says.

The outbox is bounded (``max_rows``). When full, :meth:`Outbox.put` raises
:class:`OutboxFullError` and counts the rejection, and :attr:`OutboxStats.full` stays raised as an
alarm until the depth falls below 90 % of the bound. The policy is deliberate: refusing the
new message keeps every message already accepted (the gateway promised to deliver those),
where dropping the oldest would lose counts silently; the scan that hits the bound fails
loudly instead. A batch meets the bound like a run of puts would: its messages are stored in
order until the outbox is full, and the rest are rejected, each counted. Durability (why
``synchronous = FULL``), the policy and the fault tests are described in ``docs/outbox.md``.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import NamedTuple, Self

from edgecount import contract

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_MAX_ROWS = 100_000
EPOCH_BYTES = 6  # the epoch is 12 hex digits: 48 random bits
_LOW_WATER = 0.9  # the full alarm clears below this fraction of max_rows
_ACK_CHUNK = 500  # stays under SQLite's bound-parameter limit
_Row = tuple[int, str, bytes, int, int, float]  # seq, topic, payload, qos, retain, created_at

_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq        INTEGER PRIMARY KEY,
    topic      TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    qos        INTEGER NOT NULL,
    retain     INTEGER NOT NULL,
    created_at REAL    NOT NULL
);
"""


class OutboxError(RuntimeError):
    """The outbox cannot be used (wrong gateway, corrupt or closed database)."""


class OutboxFullError(OutboxError):
    """The outbox holds ``max_rows`` messages; the new one was not accepted."""


Outgoing = contract.Message | contract.CountDraft | contract.ScanDraft
"""What the gateway publishes: a message, or a draft that the outbox sequences."""


def sequenced(message: Outgoing, seq: int, epoch: str | None = None) -> contract.Message:
    """The message as it goes on the wire: a draft (count, scan) with ``seq`` and ``msg_id``.

    A sequenced message given again is sequenced afresh; others are returned as they are.
    """
    if isinstance(message, contract.CountDraft | contract.ScanDraft):
        return message.sequenced(seq, epoch=epoch)
    return message


class Enqueued(NamedTuple):
    """What :meth:`Outbox.put` stored: the sequence number and the final message."""

    seq: int
    message: contract.Message | None


class Put(NamedTuple):
    """One message of a batch for :meth:`Outbox.put_many`: the arguments of :meth:`Outbox.put`."""

    topic: str
    message: Outgoing | None
    retain: bool
    qos: int = 1


Rejected = OutboxFullError | contract.ContractError
"""Why a message of a batch was not stored: the error :meth:`Outbox.put` would have raised."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One stored message, in the form it is published.

    Attributes:
        seq: The persisted sequence number.
        topic: MQTT topic.
        payload: The payload as stored (``historical: false``); empty for a retained clear.
        retain: MQTT retain flag.
        qos: MQTT QoS (1 unless told otherwise).
        created_at: When it was put, UNIX seconds.
        historical: Whether the historical rule (module docstring) applies to it.
    """

    seq: int
    topic: str
    payload: bytes
    retain: bool
    qos: int
    created_at: float
    historical: bool

    def wire_payload(self) -> bytes:
        """The bytes to publish: the stored payload, with ``historical: true`` if it applies."""
        if not self.historical:
            return self.payload
        return contract.as_historical(self.payload)


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Figures for health and metrics.

    Attributes:
        depth: Messages waiting for a broker acknowledgement.
        max_rows: The bound.
        full: Alarm: a put was rejected for lack of room and depth has not fallen back yet.
        rejected_full: Puts rejected because the outbox was full.
        rejected_invalid: Puts rejected because the payload broke the contract.
        last_seq: The last sequence number assigned.
        oldest_age_s: Age of the oldest waiting message, seconds (None when empty).
    """

    depth: int
    max_rows: int
    full: bool
    rejected_full: int
    rejected_invalid: int
    last_seq: int
    oldest_age_s: float | None


class Outbox:
    """A durable, bounded, ordered queue of outgoing MQTT messages in one SQLite file.

    Thread-safe: one connection guarded by a lock, so the asyncio side and paho's network
    thread may both call it. Every method blocks on disk I/O; call it from a worker thread
    when running on an event loop.

    Args:
        path: The database file (created with its parent directories).
        gateway_id: The gateway the messages belong to; it is stored, and opening the file
            for another gateway fails (its msg_ids would collide).
        max_rows: The bound on waiting messages.
        validate: Validate every payload against the contract (and its topic) on put.
    """

    def __init__(
        self,
        path: Path | str,
        *,
        gateway_id: str,
        max_rows: int = DEFAULT_MAX_ROWS,
        validate: bool = True,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows}")
        self.path = Path(path)
        self.gateway_id = contract.check_segment(gateway_id, "gateway_id")
        self.max_rows = max_rows
        self.validate = validate
        self._lock = threading.Lock()
        self._sent: set[int] = set()
        self._full = False
        self._rejected_full = 0
        self._rejected_invalid = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db: sqlite3.Connection | None = self._open()
        except sqlite3.DatabaseError as exc:
            raise OutboxError(f"cannot open outbox {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 5000")
        db.execute("PRAGMA journal_mode = WAL")
        # synchronous = FULL: in WAL mode every COMMIT fsyncs the WAL before put() returns.
        # NORMAL would survive kill -9 (the WAL is in the OS page cache) but not a power
        # loss: commits since the last checkpoint could roll back, silently losing counts the
        # pipeline believes are safe. The cost is one fsync per put (or batch of puts) and one
        # per ack batch (milliseconds on SSD/eMMC), small next to a scan's message rate.
        db.execute("PRAGMA synchronous = FULL")
        db.executescript(_DDL)
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            db.close()
            raise OutboxError(f"{self.path} has outbox schema {version}, expected {SCHEMA_VERSION}")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        owner = meta.get("gateway_id")
        if owner is not None and owner != self.gateway_id:
            db.close()
            raise OutboxError(
                f"outbox {self.path} belongs to gateway {owner!r}, not {self.gateway_id!r}; "
                "drain it with that gateway id or move it away"
            )
        epoch = meta.get("epoch")
        if owner is None or epoch is None:
            # A new file (or one from before epochs): its epoch is made once and kept.
            epoch = secrets.token_hex(EPOCH_BYTES)
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('gateway_id', ?)", (self.gateway_id,))
            db.execute("INSERT OR IGNORE INTO meta VALUES ('last_seq', '0')")
            db.execute("INSERT OR IGNORE INTO meta VALUES ('epoch', ?)", (epoch,))
            db.execute("COMMIT")
            epoch = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()[0]
        self.epoch: str = epoch
        self._last_seq = int(meta.get("last_seq", "0"))
        self._recovered_upto = self._last_seq
        self._depth: int = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        if self._depth:
            log.info("outbox %s: %d messages waiting from before", self.path, self._depth)
        return db

    # --- writing ------------------------------------------------------------------------

    def put(self, topic: str, message: Outgoing | None, retain: bool, qos: int = 1) -> Enqueued:
        """Store a message durably and return its sequence number and final message.

        Args:
            topic: MQTT topic.
            message: The message (a draft for sequenced schemas), or None for an empty
                retained message that clears ``topic``.
            retain: MQTT retain flag (must be True to clear).
            qos: MQTT QoS, 1 by default.

        Raises:
            OutboxFullError: No room; the message was not stored.
            contract.ContractError: The payload or topic breaks the contract.
            OutboxError: The outbox is closed or the database failed.
        """
        (outcome,) = self.put_many([Put(topic, message, retain, qos)])
        if not isinstance(outcome, Enqueued):
            raise outcome
        return outcome

    def put_many(self, puts: Sequence[Put]) -> list[Enqueued | Rejected]:
        """Store a batch of messages in one transaction (one fsync); say what became of each.

        Each message is sequenced, validated and encoded as by :meth:`put`. One that breaks
        the contract, or finds the outbox full, is rejected alone: counted, logged, given no
        sequence number, not stored. The others are committed together before this returns,
        with contiguous sequence numbers in batch order; a crash before the commit leaves
        none of them in the file.

        Args:
            puts: The messages, in the order they are to be sent.

        Returns:
            One entry per message, in order: what was stored (:class:`Enqueued`), or the
            error :meth:`put` would have raised for it (:class:`OutboxFullError`,
            ``contract.ContractError``).

        Raises:
            OutboxError: The outbox is closed or the database failed; nothing was stored.
        """
        for item in puts:
            if item.qos not in (0, 1, 2):
                raise ValueError(f"qos must be 0, 1 or 2, got {item.qos}")
        if not puts:
            return []
        with self._lock:
            db = self._conn()
            outcomes: list[Enqueued | Rejected] = []
            rows: list[_Row] = []
            now = time.time()
            for item in puts:
                if self._depth + len(rows) >= self.max_rows:
                    outcomes.append(self._reject_full(item.topic))
                    continue
                seq = self._last_seq + len(rows) + 1
                final = None if item.message is None else sequenced(item.message, seq, self.epoch)
                try:
                    data = self._encode(item.topic, final, item.retain)
                except contract.ContractError as exc:
                    outcomes.append(exc)
                    continue
                rows.append((seq, item.topic, data, item.qos, int(item.retain), now))
                outcomes.append(Enqueued(seq, final))
            if rows:
                self._store(db, rows)
            return outcomes

    def _store(self, db: sqlite3.Connection, rows: list[_Row]) -> None:
        """Commit ``rows`` (contiguous seqs after the last one) and the counter: one transaction."""
        last = rows[-1][0]
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE meta SET value = ? WHERE key = 'last_seq'", (str(last),))
            db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            _rollback(db)
            raise OutboxError(f"outbox {self.path}: cannot store message: {exc}") from exc
        self._last_seq = last
        self._depth += len(rows)

    def _reject_full(self, topic: str) -> OutboxFullError:
        """Count a message rejected for lack of room, raise the alarm; the error to report."""
        self._rejected_full += 1
        if not self._full:
            log.error(
                "outbox %s is full (%d messages): rejecting new messages until the broker "
                "acknowledges some",
                self.path,
                self.max_rows,
            )
        self._full = True
        return OutboxFullError(
            f"outbox full ({self.max_rows} messages waiting); {topic} not stored "
            f"({self._rejected_full} rejected so far)"
        )

    def _encode(self, topic: str, message: contract.Message | None, retain: bool) -> bytes:
        """The bytes to store, checked (counted and logged when they break the contract)."""
        try:
            return self._checked_bytes(topic, message, retain)
        except contract.ContractError as exc:
            self._rejected_invalid += 1
            log.warning("outbox rejected a message for %s: %s", topic, exc)
            raise

    def _checked_bytes(self, topic: str, message: contract.Message | None, retain: bool) -> bytes:
        if message is None:
            if not retain:
                raise contract.ContractError("an empty payload only makes sense retained")
            if self.validate:
                contract.parse_topic(topic)
            return b""
        data = contract.encode_message(message, topic=topic, check=self.validate)
        if (
            self.validate
            and isinstance(message, contract.CountMessage | contract.ScanMessage)
            and message.gateway != self.gateway_id
        ):
            raise contract.ContractError(
                f"gateway is {message.gateway!r} but this outbox sequences messages of "
                f"{self.gateway_id!r} (msg_ids would collide)",
                schema=message.SCHEMA,
                path="gateway",
            )
        return data

    # --- reading and acknowledging ----------------------------------------------------

    def pending(self, *, after: int = 0, limit: int | None = None) -> list[OutboxRow]:
        """Waiting messages with ``seq > after``, in sequence order (at most ``limit``)."""
        with self._lock:
            rows = self._conn().execute(
                "SELECT seq, topic, payload, retain, qos, created_at FROM outbox "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, -1 if limit is None else limit),
            )
            return [
                OutboxRow(
                    seq=seq,
                    topic=topic,
                    payload=bytes(payload),
                    retain=bool(retain),
                    qos=qos,
                    created_at=created,
                    historical=seq <= self._recovered_upto or seq in self._sent,
                )
                for seq, topic, payload, retain, qos, created in rows
            ]

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Record that these messages were handed to the broker (kept in memory only).

        A message marked here and not acknowledged is sent again with ``historical: true``.
        """
        with self._lock:
            self._sent.update(seqs)

    def ack(self, seqs: Iterable[int]) -> int:
        """Delete acknowledged messages; returns how many rows were deleted."""
        wanted = sorted(set(seqs))
        if not wanted:
            return 0
        with self._lock:
            db = self._conn()
            deleted = 0
            try:
                db.execute("BEGIN IMMEDIATE")
                for start in range(0, len(wanted), _ACK_CHUNK):
                    chunk = wanted[start : start + _ACK_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    deleted += db.execute(
                        f"DELETE FROM outbox WHERE seq IN ({marks})",  # noqa: S608 - only ?s
                        chunk,
                    ).rowcount
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                _rollback(db)
                raise OutboxError(f"outbox {self.path}: cannot delete acked rows: {exc}") from exc
            self._depth -= deleted
            self._sent.difference_update(wanted)
            if self._full and self._depth < self.max_rows * _LOW_WATER:
                self._full = False
                log.warning("outbox %s has room again (%d waiting)", self.path, self._depth)
            return deleted

    # --- figures --------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Messages waiting for an acknowledgement."""
        return self._depth

    @property
    def full(self) -> bool:
        """The full alarm (see :class:`OutboxStats`)."""
        return self._full

    @property
    def rejected(self) -> int:
        """Puts rejected so far, for lack of room or for breaking the contract."""
        return self._rejected_full + self._rejected_invalid

    @property
    def last_seq(self) -> int:
        """The last sequence number assigned (0 before the first message)."""
        return self._last_seq

    def oldest_seq(self) -> int | None:
        """The lowest waiting sequence number, None when empty."""
        with self._lock:
            row = self._conn().execute("SELECT MIN(seq) FROM outbox").fetchone()
            return None if row[0] is None else int(row[0])

    def stats(self) -> OutboxStats:
        """Current figures (one small query for the age of the oldest message)."""
        with self._lock:
            row = (
                self._conn()
                .execute("SELECT created_at FROM outbox ORDER BY seq LIMIT 1")
                .fetchone()
            )
            return OutboxStats(
                depth=self._depth,
                max_rows=self.max_rows,
                full=self._full,
                rejected_full=self._rejected_full,
                rejected_invalid=self._rejected_invalid,
                last_seq=self._last_seq,
                oldest_age_s=None if row is None else max(0.0, time.time() - row[0]),
            )

    # --- lifecycle ------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._db

    def close(self) -> None:
        """Close the database; further calls raise :class:`OutboxError`."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:
        db.execute("ROLLBACK")
