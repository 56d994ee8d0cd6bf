"""RO_ACCESS_REPORT bytes → typed reads, including the vendor and missing-field paths."""

from __future__ import annotations

import struct
import time

import pytest

from drivers.llrp.codec import LLRPDecodeError, MessageType, ParamType, TagReportData
from drivers.llrp.codec_base import message, tlv
from drivers.llrp.reads import NO_RSSI, report_reads

EPC = bytes.fromhex("3034257bf7194e4000003039")


def report(*trds: bytes) -> bytes:
    return message(MessageType.RO_ACCESS_REPORT, 7, b"".join(trds))


def full(**fields: int) -> TagReportData:
    values = {
        "antenna_id": 3,
        "peak_rssi": -52,
        "last_seen_utc": 1_700_000_000_250_000,
        "tag_seen_count": 4,
    }
    values.update(fields)
    return TagReportData(EPC, **values)


def impinj_peak_rssi(hundredths: int) -> bytes:
    """An ImpinjPeakRSSI custom parameter (vendor 25882, subtype 57)."""
    return tlv(ParamType.CUSTOM, struct.pack(">IIh", 25882, 57, hundredths))


def with_params(trd: TagReportData, *params: bytes) -> bytes:
    """``trd`` encoded with extra parameters appended inside it."""
    return tlv(ParamType.TAG_REPORT_DATA, trd.encode()[4:], *params)


def test_fast_path_keeps_every_field() -> None:
    (read,) = report_reads("dock", report(full().encode()))
    assert read.reader == "dock"
    assert read.antenna == 3
    assert read.epc == EPC
    assert read.rssi == -52
    assert read.t == 1_700_000_000.25
    assert read.count == 4


def test_impinj_peak_rssi_is_hundredths_of_a_dbm() -> None:
    (read,) = report_reads("dock", report(with_params(full(), impinj_peak_rssi(-5234))))
    assert read.rssi == -52.34
    assert read.count == 4


def test_another_vendors_custom_parameter_is_skipped() -> None:
    other = tlv(ParamType.CUSTOM, struct.pack(">IIh", 161, 57, -5234))
    (read,) = report_reads("dock", report(with_params(full(), other)))
    assert read.rssi == -52


def test_missing_fields_take_defaults() -> None:
    before = time.time()
    (read,) = report_reads("dock", report(TagReportData(EPC).encode()))
    assert read.antenna == 0
    assert read.rssi == NO_RSSI
    assert read.count == 1
    assert read.t >= before


def test_zero_seen_count_counts_once() -> None:
    (read,) = report_reads("dock", report(full(tag_seen_count=0).encode()))
    assert read.count == 1


def test_epc_data_of_any_length() -> None:
    long_epc = bytes(range(18))  # 144 bits, an EPCData parameter
    (read,) = report_reads("dock", report(TagReportData(long_epc, antenna_id=2).encode()))
    assert (read.epc, read.antenna) == (long_epc, 2)


def test_empty_report_has_no_reads() -> None:
    assert report_reads("dock", report()) == []


def test_report_without_epc_is_rejected() -> None:
    no_epc = tlv(ParamType.TAG_REPORT_DATA, full().encode()[17:])
    with pytest.raises(LLRPDecodeError):
        report_reads("dock", report(no_epc))
