"""Outbox.put_many: a batch in one transaction, each message judged alone, safe across kill -9."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from edgecount import contract
from edgecount.mqtt import MqttSettings
from gateway.mqtt_publisher import MqttPublisher
from gateway.outbox import Enqueued, Outbox, OutboxError, OutboxFullError, Put
from tests.conftest import BrokerAddress, RecorderFactory, eventually

GW, SITE = "gw-1", "dc-east"
CHILD = Path(__file__).with_name("child.py")
SIZE = 40  # messages per batch in the kill -9 tests


def draft(n: int, gateway: str = GW, site: str = SITE) -> contract.CountDraft:
    return contract.count_draft(
        gateway=gateway,
        site=site,
        zone="z",
        location=f"L{n}",
        scan_id="s1",
        items=[contract.CountItem(sku="80614141123458", qty=n)],
    )


def topic(n: int, site: str = SITE) -> str:
    return contract.count_topic(site, "z", f"L{n}")


def batch(numbers: Sequence[int], gateway: str = GW, site: str = SITE) -> list[Put]:
    return [Put(topic(n, site), draft(n, gateway, site), True) for n in numbers]


def put(outbox: Outbox, n: int = 1) -> int:
    return outbox.put(topic(n), draft(n), True).seq


def stored(outcomes: Sequence[object]) -> list[Enqueued]:
    return [outcome for outcome in outcomes if isinstance(outcome, Enqueued)]


def test_a_batch_is_sequenced_in_order_after_what_is_there(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        assert put(outbox, 0) == 1
        outcomes = outbox.put_many(batch(range(1, 6)))
        assert [outcome.seq for outcome in stored(outcomes)] == [2, 3, 4, 5, 6]
        assert len(outcomes) == 5
        rows = outbox.pending()
        assert [row.seq for row in rows] == [1, 2, 3, 4, 5, 6]
        for outcome, row in zip(outcomes, rows[1:], strict=True):
            assert isinstance(outcome, Enqueued)
            assert isinstance(outcome.message, contract.CountMessage)
            assert outcome.message.msg_id == f"{GW}:{outbox.epoch}:{outcome.seq}"
            assert row.payload == contract.encode_message(outcome.message)
            assert row.topic == contract.count_topic(SITE, "z", outcome.message.location)
        assert (outbox.depth, outbox.last_seq) == (6, 6)
        assert outbox.put_many([]) == []
        assert put(outbox, 9) == 7, "an empty batch takes no sequence number"


def test_a_bad_message_is_rejected_alone_and_the_good_ones_are_kept(tmp_path: Path) -> None:
    good = batch([1, 2, 3])
    bad_total = Put(topic(8), dataclasses.replace(draft(8), total=99), True)
    other_gateway = Put(topic(9), draft(9, gateway="other"), True)
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW) as outbox:
        outcomes = outbox.put_many([good[0], bad_total, good[1], other_gateway, good[2]])
        assert len(outcomes) == 5
        assert isinstance(outcomes[1], contract.ContractError)
        assert "total" in str(outcomes[1])
        assert isinstance(outcomes[3], contract.ContractError)
        assert "gateway is 'other'" in str(outcomes[3])
        assert [outcome.seq for outcome in stored(outcomes)] == [1, 2, 3]
        assert [row.seq for row in outbox.pending()] == [1, 2, 3]
        locations = [contract.decode(row.payload)["location"] for row in outbox.pending()]
        assert locations == ["L1", "L2", "L3"]
        assert outbox.stats().rejected_invalid == 2
        assert put(outbox) == 4, "rejected messages take no sequence number"


def test_a_batch_meets_the_bound_like_a_run_of_puts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW, max_rows=5) as outbox:
        put(outbox, 0)
        put(outbox, 1)
        outcomes = outbox.put_many(batch(range(2, 7)))
        assert [outcome.seq for outcome in stored(outcomes)] == [3, 4, 5]
        assert all(isinstance(outcome, OutboxFullError) for outcome in outcomes[3:])
        stats = outbox.stats()
        assert (stats.full, stats.rejected_full, stats.depth, stats.last_seq) == (True, 2, 5, 5)
        with pytest.raises(OutboxFullError):
            put(outbox, 7)
        outbox.ack([1, 2])
        assert not outbox.full
        assert [outcome.seq for outcome in stored(outbox.put_many(batch([8])))] == [6]


def test_put_raises_what_put_many_reports(tmp_path: Path) -> None:
    with Outbox(tmp_path / "ob.sqlite3", gateway_id=GW, max_rows=1) as outbox:
        with pytest.raises(contract.ContractError, match="location is 'L1' but the topic"):
            outbox.put(topic(2), draft(1), True)
        with pytest.raises(ValueError, match="qos"):
            outbox.put_many([Put(topic(1), draft(1), True, qos=3)])
        assert outbox.depth == 0
        put(outbox)
        with pytest.raises(OutboxFullError, match="outbox full"):
            put(outbox, 2)


def stall_insert(db: Path, seq: int) -> None:
    """Make inserting row ``seq`` run forever: a trigger that counts without end."""
    with sqlite3.connect(db) as conn:
        conn.execute(
            f"CREATE TRIGGER stall AFTER INSERT ON outbox WHEN NEW.seq = {seq} BEGIN "
            "SELECT count(*) FROM (WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL "
            "SELECT i + 1 FROM c) SELECT i FROM c); END"
        )
    conn.close()


def write_locked(db: Path) -> bool:
    """Whether another process holds the outbox's write transaction."""
    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        return "locked" in str(exc)
    finally:
        conn.close()
    return False


def test_a_database_error_mid_batch_stores_none_of_it(tmp_path: Path) -> None:
    db = tmp_path / "ob.sqlite3"
    with Outbox(db, gateway_id=GW) as outbox:
        outbox.put_many(batch(range(3)))
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER fail AFTER INSERT ON outbox WHEN NEW.seq = 6 "
            "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
        )
    conn.close()
    with Outbox(db, gateway_id=GW) as outbox:
        with pytest.raises(OutboxError, match="disk trouble"):
            outbox.put_many(batch(range(3, 8)))
        assert [row.seq for row in outbox.pending()] == [1, 2, 3]
        assert (outbox.depth, outbox.last_seq) == (3, 3)
    with Outbox(db, gateway_id=GW) as outbox:
        assert outbox.last_seq == 3, "the counter rolled back with the rows"


async def test_kill_9_mid_batch_leaves_none_of_it_and_the_rest_goes_out_once(
    broker: BrokerAddress, unique_site: str, mqtt_recorder: RecorderFactory, tmp_path: Path
) -> None:
    """A gateway killed inside a batch's transaction: after the restart, exactly the batches
    committed before are in the file, and every message is sent once, seqs 1, 2, 3, ...
    """
    site, gateway, db = unique_site, f"gw-{unique_site}", tmp_path / "ob.sqlite3"
    Outbox(db, gateway_id=gateway).close()
    stall_insert(db, SIZE + 3)  # the second batch stalls after three of its rows
    args = ["batches", str(db), gateway, site, str(SIZE)]
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), *args, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert (await child.stdout.readline()).split() == [b"1", str(SIZE).encode()]
        await eventually(lambda: write_locked(db), what="the child inside its second batch")
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TRIGGER stall")
    conn.close()

    recorder = mqtt_recorder(broker, contract.site_filter(site))
    with Outbox(db, gateway_id=gateway) as outbox:
        assert [row.seq for row in outbox.pending()] == list(range(1, SIZE + 1))
        assert outbox.last_seq == SIZE
        settings = MqttSettings(host=broker.host, port=broker.port)
        publisher = MqttPublisher(settings, outbox, site=site)
        await publisher.start()
        try:
            # The scan runs again: its counts take the seqs the lost batch never got.
            scan = [(topic(n, site), draft(n, gateway, site)) for n in range(SIZE, 2 * SIZE)]
            again = await publisher.publish_many(scan, retain=True)
            seqs = [m.seq for m in again if isinstance(m, contract.CountMessage)]
            assert seqs == list(range(SIZE + 1, 2 * SIZE + 1))
            assert await publisher.flush(10)
        finally:
            await publisher.stop()
    counts = await recorder.await_for(2 * SIZE, f"{contract.site_root(site)}count/#")
    payloads = [m.payload or {} for m in counts]
    assert [p["seq"] for p in payloads] == list(range(1, 2 * SIZE + 1))
    assert len({p["msg_id"] for p in payloads}) == 2 * SIZE, "each message once"
    assert [p["historical"] for p in payloads] == [True] * SIZE + [False] * SIZE


def test_batches_survive_kill_9_whole(tmp_path: Path) -> None:
    """Killed at whatever point it reached, the child leaves whole batches only."""
    db = tmp_path / "ob.sqlite3"
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "batches", str(db), GW, SITE, str(SIZE)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    confirmed = [int(child.stdout.readline().split()[1]) for _ in range(5)]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    child.stdout.close()
    with Outbox(db, gateway_id=GW) as outbox:
        seqs = [row.seq for row in outbox.pending()]
        assert seqs == list(range(1, len(seqs) + 1))
        assert len(seqs) % SIZE == 0, "no batch is there in part"
        assert len(seqs) >= max(confirmed)
        assert outbox.last_seq == len(seqs)
        after = stored(outbox.put_many(batch(range(3))))
        assert [outcome.seq for outcome in after] == [len(seqs) + 1, len(seqs) + 2, len(seqs) + 3]
