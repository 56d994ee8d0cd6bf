"""One ingest batch, in a worker thread: validate, store once, let the engine react.

The service (:mod:`reconciler.service`) owns the loop, the retries and the acknowledgements;
this module holds what runs off the event loop, so it can be read and tested on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from edgecount import contract
from reconciler.engine import Engine, Outgoing
from reconciler.frames import record_frame
from reconciler.loops import BatchOutcome

__all__ = ["BatchAttempt", "dead_letter", "handle_batch", "handle_sites", "topic_site"]

log = logging.getLogger(__name__)


def dead_letter(site: str, topic: str, raw: bytes, reason: str, rejected_by: str) -> Outgoing:
    """The dead letter of a rejected message (logged with its reason)."""
    log.warning("rejected message on %s: %s", topic, reason)
    letter = contract.deadletter_message(
        topic=topic, raw=raw, reason=reason, rejected_by=rejected_by
    )
    return Outgoing(contract.deadletter_topic(site), letter, retain=False)


def handle_batch(
    engine: Engine,
    batch: list[tuple[str, bytes]],
    recorded: list[contract.CountMessage],
    *,
    rejected_by: str,
) -> BatchOutcome:
    """Validate, store once, reconcile (blocking: run it in a worker thread).

    Each message is decoded once, to its class (:func:`~edgecount.contract.decode_message`);
    everything after that reads the typed message.

    Args:
        engine: The engine and its store.
        batch: ``(topic, payload)`` of each message.
        recorded: Counts an earlier attempt of this batch stored before it failed; the counts
            stored now are appended at once, so if the engine's reaction fails the next
            attempt still reacts to them (storing and reacting are two transactions).
        rejected_by: Who signs the dead letters (the MQTT client id).

    Returns:
        What to publish, the dead letter of each rejected message by its index, the figures.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: The database failed; nothing of the batch is done
            but what ``recorded`` says.
    """
    outcome = BatchOutcome()
    counts: list[contract.CountMessage] = []

    def reject(index: int, topic: str, raw: bytes, reason: str) -> None:
        outcome.letters[index] = dead_letter(engine.site, topic, raw, reason, rejected_by)

    for index, (topic, raw) in enumerate(batch):
        try:
            message = contract.decode_message(topic, raw)
        except contract.ContractError as exc:
            reject(index, topic, raw, str(exc))
            continue
        if isinstance(
            message, contract.CountMessage | contract.ScanMessage | contract.FrameMessage
        ) and (denied := engine.unauthorized(message.gateway, message.zone)):
            reject(index, topic, raw, denied)  # never applied
            continue
        match message:
            case contract.CountMessage():
                counts.append(message)
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
            case _:
                reject(index, topic, raw, f"{message.SCHEMA} is not accepted here")
    recorded += engine.store.record_counts(counts, datetime.now(UTC))
    outcome.duplicates += len(counts) - len(recorded)
    outcome.applied += len(recorded)
    outcome.out += engine.on_counts(recorded)
    return outcome


def topic_site(topic: str) -> str:
    """The site level of a contract topic (``edgecount/v1/{site}/…``); "" when there is none."""
    levels = topic.split("/", 3)
    return levels[2] if len(levels) > 3 else ""


@dataclass(slots=True)
class BatchAttempt:
    """What earlier attempts at one batch achieved, site by site (kept across retries).

    A batch of a centre holds messages of many sites, each site's part in its own
    transactions. When one site's database fails, the batch is tried again: a part that was
    done is not done twice (its outcome is reused), and a part that stored counts before it
    failed still reacts to them (``recorded``).
    """

    recorded: dict[str, list[contract.CountMessage]] = field(default_factory=dict)
    done: dict[str, tuple[list[int], BatchOutcome]] = field(default_factory=dict)

    def done_indices(self) -> set[int]:
        """Indices (in the batch) of the messages of the parts that are done."""
        return {index for indices, _ in self.done.values() for index in indices}


def handle_sites(
    engines: Mapping[str, Engine],
    batch: list[tuple[str, bytes]],
    attempt: BatchAttempt,
    *,
    rejected_by: str,
) -> BatchOutcome:
    """:func:`handle_batch` for each site's part of a batch (blocking: in a worker thread).

    A message of a site not served here is dead-lettered (to that site's dead-letter topic).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: A site's database failed; the parts done before are
            in ``attempt.done``.
    """
    parts: dict[str, list[int]] = {}
    whole = BatchOutcome()
    for index, (topic, raw) in enumerate(batch):
        site = topic_site(topic)
        if site in engines:
            parts.setdefault(site, []).append(index)
        else:
            reason = f"site {site!r} is not served by this reconciler"
            whole.letters[index] = dead_letter(site or "unknown", topic, raw, reason, rejected_by)
    for site, indices in parts.items():
        if site not in attempt.done:
            part = [batch[i] for i in indices]
            recorded = attempt.recorded.setdefault(site, [])
            outcome = handle_batch(engines[site], part, recorded, rejected_by=rejected_by)
            attempt.done[site] = (indices, outcome)
        done_indices, outcome = attempt.done[site]
        whole.merge_at(outcome, done_indices)
    return whole
