"""One ingest batch, in a worker thread: validate, store once, let the engine react.

The service (:mod:`reconciler.service`) owns the loop, the retries and the acknowledgements;
this module holds what runs off the event loop, so it can be read and tested on its own.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from edgecount import contract
from reconciler.engine import Engine, Outgoing
from reconciler.loops import BatchOutcome

__all__ = ["dead_letter", "handle_batch"]

log = logging.getLogger(__name__)


def dead_letter(site: str, topic: str, raw: bytes, reason: str, rejected_by: str) -> Outgoing:
    """The dead letter of a rejected message (logged with its reason)."""
    log.warning("rejected message on %s: %s", topic, reason)
    letter = contract.deadletter_payload(
        topic=topic, raw=raw, reason=reason, rejected_by=rejected_by
    )
    return Outgoing(contract.deadletter_topic(site), letter, retain=False)


def handle_batch(
    engine: Engine,
    batch: list[tuple[str, bytes]],
    recorded: list[Mapping[str, Any]],
    *,
    rejected_by: str,
) -> BatchOutcome:
    """Validate, store once, reconcile (blocking: run it in a worker thread).

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
    counts: list[dict[str, Any]] = []

    def reject(index: int, topic: str, raw: bytes, reason: str) -> None:
        outcome.letters[index] = dead_letter(engine.site, topic, raw, reason, rejected_by)

    for index, (topic, raw) in enumerate(batch):
        try:
            payload = contract.decode(raw, topic=topic)
        except contract.ContractError as exc:
            reject(index, topic, raw, str(exc))
            continue
        schema = payload["schema"]
        if schema in (contract.COUNT, contract.SCAN) and (denied := engine.unauthorized(payload)):
            reject(index, topic, raw, denied)  # never applied
        elif schema == contract.COUNT:
            counts.append(payload)
        elif schema == contract.STATUS:
            outcome.statuses += 1
            if payload["state"] == "online":  # re-send what it may have missed offline
                outcome.out += engine.recount_requests_for(payload["gateway"])
        elif schema == contract.SCAN:
            if engine.store.record_scan(payload, datetime.now(UTC)):
                outcome.applied += 1
            else:
                outcome.duplicates += 1
        else:
            reject(index, topic, raw, f"{schema} is not accepted here")
    recorded += engine.store.record_counts(counts, datetime.now(UTC))
    outcome.duplicates += len(counts) - len(recorded)
    outcome.applied += len(recorded)
    outcome.out += engine.on_counts(recorded)
    return outcome
