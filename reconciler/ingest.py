"""One ingest batch, in a worker thread: validate, store once, let the engine react.

The service (:mod:`reconciler.service`) owns the loop, the retries and the acknowledgements;
this module holds what runs off the event loop, so it can be read and tested on its own.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from edgecount import contract
from reconciler.engine import Engine, Outgoing
from reconciler.frames import record_frame
from reconciler.loops import BatchOutcome

__all__ = ["dead_letter", "handle_batch"]

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
