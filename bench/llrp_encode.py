"""RO_ACCESS_REPORT encode/decode rates: our fast codec against pyllrp and sllurp.

Prints TagReportData per second for

* our :class:`ReportEncoder` (goal: at least 200,000/s),
* our fast decoder :func:`decode_ro_access_report`,
* pyllrp encoding the same reports (the independent implementation the golden vectors use),
* sllurp decoding them (what the gateway driver runs),

and the ratios. Run: ``.venv/bin/python bench/llrp_encode.py [--tags N] [--per-report N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from collections.abc import Callable
from typing import Any

from drivers.llrp.codec import (
    ReportEncoder,
    TagRead,
    decode_ro_access_report,
)
from simulators.llrp.replay import REPLAY_SELECTOR

SELECTOR = REPLAY_SELECTOR  # what the gateway driver asks readers for


def make_reads(count: int, seed: int = 1) -> list[TagRead]:
    """``count`` reads of distinct 96-bit EPCs over four antennas."""
    rng = random.Random(seed)
    now = time.time_ns() // 1000
    return [
        (
            os.urandom(12),
            i % 4 + 1,
            rng.randint(-80, -40),
            now + i,
            now + i + 5000,
            rng.randint(1, 9),
        )
        for i in range(count)
    ]


def best_rate(tags: int, run: Callable[[], object], repeat: int = 5) -> float:
    """TagReportData per second, best of ``repeat`` runs."""
    best = 0.0
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = max(best, tags / (time.perf_counter() - started))
    return best


def chunks(reads: list[TagRead], size: int) -> list[list[TagRead]]:
    return [reads[i : i + size] for i in range(0, len(reads), size)]


def pyllrp_encode_rate(reads: list[TagRead], per_report: int) -> float:
    import bitstring
    from pyllrp import pyllrp as llrp

    def message(msg_id: int, batch: list[TagRead]) -> Any:
        return llrp.RO_ACCESS_REPORT_Message(
            MessageID=msg_id,
            Parameters=[
                llrp.TagReportData_Parameter(
                    Parameters=[
                        llrp.EPC_96_Parameter(EPC=int.from_bytes(epc)),
                        llrp.ROSpecID_Parameter(ROSpecID=1),
                        llrp.AntennaID_Parameter(AntennaID=ant),
                        llrp.PeakRSSI_Parameter(PeakRSSI=rssi),
                        llrp.FirstSeenTimestampUTC_Parameter(Microseconds=first),
                        llrp.LastSeenTimestampUTC_Parameter(Microseconds=last),
                        llrp.TagSeenCount_Parameter(TagCount=count),
                    ]
                )
                for epc, ant, rssi, first, last, count in batch
            ],
        )

    def run() -> None:
        for index, batch in enumerate(chunks(reads, per_report)):
            message(index, batch).pack(bitstring.BitStream())

    return best_rate(len(reads), run, repeat=1)


def sllurp_decode_rate(messages: list[bytes], tags: int) -> float:
    from sllurp.llrp import LLRPMessage

    def run() -> None:
        for raw in messages:
            LLRPMessage(msgbytes=raw)

    return best_rate(tags, run, repeat=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=200_000, help="TagReportData per run")
    parser.add_argument("--per-report", type=int, default=100, help="TagReportData per message")
    parser.add_argument("--slow-tags", type=int, default=5_000, help="tags for pyllrp and sllurp")
    args = parser.parse_args()

    reads = make_reads(args.tags)
    batches = chunks(reads, args.per_report)
    encoder = ReportEncoder(SELECTOR, rospec_id=1)
    encoder.encode(0, reads)  # warm the per-tag prefix cache, as a running reader has
    messages = [encoder.encode(i, batch) for i, batch in enumerate(batches)]

    ours = best_rate(len(reads), lambda: [encoder.encode(i, b) for i, b in enumerate(batches)])
    cold = best_rate(
        len(reads),
        lambda: ReportEncoder(SELECTOR, rospec_id=1).encode(0, reads),
        repeat=1,
    )
    decode = best_rate(len(reads), lambda: [decode_ro_access_report(m) for m in messages])

    slow = reads[: args.slow_tags]
    slow_messages = messages[: max(1, args.slow_tags // args.per_report)]
    slow_count = min(len(slow), len(slow_messages) * args.per_report)
    pyllrp = pyllrp_encode_rate(slow, args.per_report)
    sllurp = sllurp_decode_rate(slow_messages, slow_count)

    print(f"TagReportData per message: {args.per_report}; selector: ROSpecID, AntennaID,")
    print("PeakRSSI, First/LastSeenTimestampUTC, TagSeenCount; 96-bit EPCs")
    print(f"ours    encode (warm cache) {ours:>12,.0f} TagReportData/s")
    print(f"ours    encode (cold cache) {cold:>12,.0f} TagReportData/s")
    print(f"pyllrp  encode              {pyllrp:>12,.0f} TagReportData/s")
    print(f"ratio   ours / pyllrp       {ours / pyllrp:>12,.1f} x")
    print(f"ours    decode              {decode:>12,.0f} TagReportData/s")
    print(f"sllurp  decode              {sllurp:>12,.0f} TagReportData/s")
    print(f"ratio   ours / sllurp       {decode / sllurp:>12,.1f} x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
