"""sllurp tag dictionaries → typed reads, including the vendor and missing-field paths."""

from __future__ import annotations

from typing import Any

from drivers.llrp.driver import _tag_reads

EPC = b"3034257bf7194e4000003039"


def full(**extra: Any) -> dict[str, Any]:
    tag: dict[str, Any] = {
        "EPC-96": EPC,
        "EPC": EPC,
        "AntennaID": 3,
        "PeakRSSI": -52,
        "LastSeenTimestampUTC": 1_700_000_000_250_000,
        "TagSeenCount": 4,
    }
    tag.update(extra)
    return tag


def test_fast_path_keeps_every_field() -> None:
    (read,) = _tag_reads("dock", [full()])
    assert read.reader == "dock"
    assert read.antenna == 3
    assert read.epc == bytes.fromhex(EPC.decode())
    assert read.rssi == -52
    assert read.t == 1_700_000_000.25
    assert read.count == 4


def test_impinj_peak_rssi_is_hundredths_of_a_dbm() -> None:
    (read,) = _tag_reads("dock", [full(ImpinjPeakRSSI={"RSSI": -5234})])
    assert read.rssi == -52.34
    assert read.count == 4


def test_missing_fields_take_defaults_and_missing_epc_is_skipped() -> None:
    sparse = {"EPC": EPC}
    reads = _tag_reads("dock", [sparse, {"AntennaID": 1}])
    assert len(reads) == 1
    assert reads[0].antenna == 0
    assert reads[0].rssi == -127
    assert reads[0].count == 1
    assert reads[0].t > 1_700_000_000


def test_zero_seen_count_counts_once() -> None:
    (read,) = _tag_reads("dock", [full(TagSeenCount=0)])
    assert read.count == 1
