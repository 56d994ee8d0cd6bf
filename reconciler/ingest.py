"""One ingest batch, in a worker thread: validate, store once, let the engine react.

The service (:mod:`reconciler.service`) owns the loop, the retries and the acknowledgements;
this module holds what runs off the event loop, so it can be read and tested on its own.

A batch may hold messages of many sites (a centre). Its counts are stored, and assessed
against each site's book, in **one transaction per database**: a centre's sites share one
PostgreSQL database, a schema each, and the connection switches schema from one site's part
to the next (``schema_translate_map``). So 500 counts of 100 sites cost a handful of round
trips per site and one commit, not a hundred small transactions. What the counts change
(a discrepancy, a recount request) is then applied count by count in transactions of their
own, each under its location's lock (:meth:`reconciler.engine.Engine.react`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import sqlalchemy as sa

from edgecount import contract
from reconciler.engine import Assessed, Engine, Outgoing
from reconciler.frames import record_frame
from reconciler.loops import BatchOutcome
from reconciler.site_reads import SiteReads, read_many
from reconciler.store_counts import store_new_counts

__all__ = [
    "BatchAttempt",
    "dead_letter",
    "handle_batch",
    "handle_sites",
    "store_new_counts",
    "topic_site",
]

log = logging.getLogger(__name__)

Other = contract.StatusMessage | contract.ScanMessage | contract.FrameMessage


def dead_letter(site: str, topic: str, raw: bytes, reason: str, rejected_by: str) -> Outgoing:
    """The dead letter of a rejected message (logged with its reason)."""
    log.warning("rejected message on %s: %s", topic, reason)
    letter = contract.deadletter_message(
        topic=topic, raw=raw, reason=reason, rejected_by=rejected_by
    )
    return Outgoing(contract.deadletter_topic(site), letter, retain=False)


def topic_site(topic: str) -> str:
    """The site level of a contract topic (``edgecount/v1/{site}/…``); "" when there is none."""
    levels = topic.split("/", 3)
    return levels[2] if len(levels) > 3 else ""


@dataclass(slots=True)
class Stored:
    """A site's counts of a batch, committed: how many were new, and what they change."""

    new: int
    duplicates: int
    steps: list[Assessed]


@dataclass(slots=True)
class BatchAttempt:
    """What earlier attempts at one batch achieved, site by site (kept across retries).

    When a database fails, the batch is tried again: a site whose counts were committed is
    not stored again (``stored``: the engine still reacts to them), and a site whose part is
    done is not done twice (``done``: its outcome is reused).
    """

    stored: dict[str, Stored] = field(default_factory=dict)
    done: dict[str, tuple[list[int], BatchOutcome]] = field(default_factory=dict)

    def done_indices(self) -> set[int]:
        """Indices (in the batch) of the messages of the parts that are done."""
        return {index for indices, _ in self.done.values() for index in indices}


@dataclass(slots=True)
class _Part:
    """One site's messages of a batch, decoded (letters by index within the part)."""

    engine: Engine
    indices: list[int] = field(default_factory=list)
    counts: list[contract.CountMessage] = field(default_factory=list)
    others: list[Other] = field(default_factory=list)
    outcome: BatchOutcome = field(default_factory=BatchOutcome)


def handle_sites(
    engines: Mapping[str, Engine],
    batch: list[tuple[str, bytes]],
    attempt: BatchAttempt,
    *,
    rejected_by: str,
) -> BatchOutcome:
    """Validate, store once, reconcile a batch of the sites in ``engines`` (blocking: run it
    in a worker thread).

    Each message is decoded once, to its class (:func:`~edgecount.contract.decode_message`);
    everything after that reads the typed message. A message of a site not served here is
    dead-lettered (to that site's dead-letter topic).

    Args:
        engines: The engine of each site served, by site.
        batch: ``(topic, payload)`` of each message.
        attempt: What earlier attempts of this batch did (updated as parts commit).
        rejected_by: Who signs the dead letters (the MQTT client id).

    Returns:
        What to publish, the dead letter of each rejected message by its index, the figures.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: A database failed; what committed before is in
            ``attempt``.
    """
    whole = BatchOutcome()
    parts = _split(engines, batch, whole, rejected_by)
    waiting = {
        site: part
        for site, part in parts.items()
        if site not in attempt.done and site not in attempt.stored
    }
    for group in _by_database(waiting):
        attempt.stored.update(_store_counts(group))
    for site, part in parts.items():
        if site not in attempt.done:
            attempt.done[site] = (part.indices, _finish(part, attempt.stored.get(site)))
        indices, outcome = attempt.done[site]
        whole.merge_at(outcome, indices)
    return whole


def handle_batch(
    engine: Engine, batch: list[tuple[str, bytes]], *, rejected_by: str
) -> BatchOutcome:
    """:func:`handle_sites` for a reconciler of one site, in one attempt."""
    return handle_sites({engine.site: engine}, batch, BatchAttempt(), rejected_by=rejected_by)


def _split(
    engines: Mapping[str, Engine],
    batch: list[tuple[str, bytes]],
    whole: BatchOutcome,
    rejected_by: str,
) -> dict[str, _Part]:
    """Decode the batch into each site's part; what is rejected gets its dead letter."""
    parts: dict[str, _Part] = {}
    for index, (topic, raw) in enumerate(batch):
        site = topic_site(topic)
        engine = engines.get(site)
        if engine is None:
            unserved = f"site {site!r} is not served by this reconciler"
            whole.letters[index] = dead_letter(site or "unknown", topic, raw, unserved, rejected_by)
            continue
        part = parts.setdefault(site, _Part(engine))
        here = len(part.indices)
        part.indices.append(index)
        reason = _take(part, topic, raw)
        if reason is not None:
            part.outcome.letters[here] = dead_letter(site, topic, raw, reason, rejected_by)
    return parts


def _take(part: _Part, topic: str, raw: bytes) -> str | None:
    """File one message in its part; why it is rejected, or None."""
    try:
        message = contract.decode_message(topic, raw)
    except contract.ContractError as exc:
        return str(exc)
    match message:
        case contract.CountMessage() | contract.ScanMessage() | contract.FrameMessage() if (
            denied := part.engine.unauthorized(message.gateway, message.zone)
        ):
            return denied  # never applied
        case contract.CountMessage():
            part.counts.append(message)
        case contract.StatusMessage() | contract.ScanMessage() | contract.FrameMessage():
            part.others.append(message)
        case _:
            return f"{message.SCHEMA} is not accepted here"
    return None


def _by_database(parts: Mapping[str, _Part]) -> Iterator[list[_Part]]:
    """The parts with counts, grouped by the connection pool (database) of their store."""
    groups: dict[int, list[_Part]] = {}
    for _site, part in sorted(parts.items()):  # one order everywhere: row locks never cross
        if part.counts:
            groups.setdefault(id(part.engine.store.engine.pool), []).append(part)
    yield from groups.values()


def _store_counts(group: list[_Part]) -> dict[str, Stored]:
    """Store and assess the counts of parts on one database, in one transaction."""
    received_at = datetime.now(UTC)
    with group[0].engine.store.engine.begin() as conn:
        new = {
            part.engine.site: store_new_counts(
                _in_schema(conn, part.engine.store.schema), part.counts, received_at
            )
            for part in group
        }
        schemas = {part.engine.site: part.engine.store.schema for part in group}
        reads: dict[str, SiteReads] = {}
        if all(schemas.values()):  # sites of one PostgreSQL database: read them all at once
            wanted = {
                str(schemas[site]): {count.location for count in counts}
                for site, counts in new.items()
                if counts
            }
            reads = read_many(conn, wanted)
        stored: dict[str, Stored] = {}
        for part in group:
            site, schema = part.engine.site, part.engine.store.schema
            scoped = _in_schema(conn, schema)
            steps = part.engine.assess(scoped, new[site], reads.get(str(schema)))
            stored[site] = Stored(len(new[site]), len(part.counts) - len(new[site]), steps)
    return stored


def _in_schema(conn: sa.Connection, schema: str | None) -> sa.Connection:
    """The connection, its statements from now on naming ``schema`` (None: as opened).

    SQLAlchemy sets a connection's execution options in place: one connection serves each
    site of a batch in turn.
    """
    if schema is None:
        return conn
    return conn.execution_options(schema_translate_map={None: schema})


def _finish(part: _Part, stored: Stored | None) -> BatchOutcome:
    """A part's statuses, scans and frames, then the engine's reaction to its counts."""
    outcome = part.outcome
    engine = part.engine
    for message in part.others:
        match message:
            case contract.StatusMessage():
                outcome.statuses += 1
                engine.store.record_status(message, datetime.now(UTC))
                if message.state is contract.GatewayState.ONLINE:  # re-send what it missed
                    outcome.out += engine.recount_requests_for(message.gateway)
            case contract.ScanMessage():
                if engine.store.record_scan(message, datetime.now(UTC)):
                    outcome.applied += 1
                else:
                    outcome.duplicates += 1
            case contract.FrameMessage():
                outcome.frames += record_frame(engine.store.engine, message, datetime.now(UTC))
    if stored is not None:
        outcome.applied += stored.new
        outcome.duplicates += stored.duplicates
        outcome.out += engine.react(stored.steps)
    return outcome
