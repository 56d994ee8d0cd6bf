"""Our codec on real reader messages (Impinj reports, a 144-bit EPC, 33 Impinj custom params).

The files stay in ``../shared/realdata/llrp/``; each test reads them from there. Reports are
compared with sllurp's decode of the same bytes, kept beside each capture.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from drivers.llrp import codec as c
from drivers.llrp.codec_base import message
from drivers.llrp.reads import report_reads
from tests.drivers.llrp.realdata import (
    EDGEX_REPORTS,
    IMPINJ_CONFIG,
    LTK_SESSION,
    SLLURP_STREAM,
    ZEBRA_EMPTY_REPORT,
    as_sllurp,
    frames,
    reports,
    sllurp_tags,
)

CAPABILITIES_RESPONSE = c.MessageType.GET_READER_CAPABILITIES_RESPONSE


def test_sllurp_stream_decodes_like_sllurp_including_the_144_bit_epc() -> None:
    messages = reports(SLLURP_STREAM)
    assert len(messages) == 45
    tags = [tag for m in messages for tag in c.decode_ro_access_report(m)]
    assert [as_sllurp(tag) for tag in tags] == sllurp_tags(SLLURP_STREAM)
    assert Counter(tag[0] for tag in tags) == {
        "3005fb63ac1f3841ec880467": 22,
        "300833b2ddd906c000000000": 22,
        "1fb41f712ac9c37ab79d618173188324001a": 1,
    }
    assert all(tag[5] == 1 for tag in tags)  # TagSeenCount is on the wire


def test_sllurp_stream_becomes_reads_with_the_long_epc_as_bytes() -> None:
    reads = [read for m in reports(SLLURP_STREAM) for read in report_reads("dock", m)]
    assert len(reads) == 45
    (long_epc,) = [r for r in reads if len(r.epc) != 12]
    assert long_epc.epc == bytes.fromhex("1fb41f712ac9c37ab79d618173188324001a")
    assert (long_epc.antenna, long_epc.rssi, long_epc.count) == (1, -17, 1)


def test_impinj_session_reports_decode_like_sllurp() -> None:
    messages = reports(LTK_SESSION)
    tags = [c.decode_ro_access_report(m) for m in messages]
    assert [len(t) for t in tags] == [64, 1, 65]
    flat = [tag for report in tags for tag in report]
    assert [as_sllurp(tag) for tag in flat] == [
        {k: v for k, v in tag.items() if k not in ("ChannelIndex", "ROSpecID")}
        for tag in sllurp_tags(LTK_SESSION)
    ]
    assert max(tag[5] or 0 for tag in flat) > 1  # counts of many singulations


def test_impinj_session_every_message_is_framed_and_reader_messages_decode() -> None:
    found = frames(LTK_SESSION)
    assert len(found) == 934
    types = Counter(f.msg_type for f in found)
    assert types[c.MessageType.RO_ACCESS_REPORT] == 3
    assert types[c.MessageType.READER_EVENT_NOTIFICATION] == 891
    (capabilities,) = [f for f in found if f.msg_type == CAPABILITIES_RESPONSE]
    decoded = c.decode_message(capabilities)
    assert isinstance(decoded, c.GetReaderCapabilitiesResponse)
    assert decoded.status.code == c.StatusCode.M_SUCCESS


#: A Custom parameter header (type 1023, any length) with Impinj's vendor number, at any depth.
IMPINJ_CUSTOM = re.compile(rb"\x03\xff..\x00\x00\x65\x1a(....)", re.DOTALL)


def test_impinj_reader_config_with_33_custom_parameters() -> None:
    data = IMPINJ_CONFIG.read_bytes()
    subtypes = [int.from_bytes(m) for m in IMPINJ_CUSTOM.findall(data)]
    assert len(subtypes) == 33
    assert {22, 36, 50, 60, 67} <= set(subtypes)
    decoded = c.decode_message(data)
    assert isinstance(decoded, c.GetReaderConfigResponse)
    assert decoded.status.code == c.StatusCode.M_SUCCESS
    config = decoded.config
    assert [a.antenna_id for a in config.antenna_properties] == [1, 2]
    assert [a.connected for a in config.antenna_properties] == [True, False]
    assert len(config.gpi_states) == 4
    assert config.ro_report_spec is not None
    assert config.ro_report_spec.selector.enable_peak_rssi


def test_edgex_impinj_report_bodies_decode_like_edgex() -> None:
    bodies = sorted(EDGEX_REPORTS.glob("ROAccessReport-*.bytes"))
    assert len(bodies) == 9
    for n, body in enumerate(bodies):
        edgex = json.loads(body.with_suffix(".json").read_text())["TagReportData"]
        whole = message(c.MessageType.RO_ACCESS_REPORT, n, body.read_bytes())
        tags = c.decode_ro_access_report(whole)
        assert [(t[1], t[2], t[3]) for t in tags] == [
            (e["AntennaID"], e["PeakRSSI"], e["FirstSeenUTC"]) for e in edgex
        ]
        assert [len(t[0]) for t in tags] == [24] * len(edgex)


def test_zebra_empty_report_has_no_tags() -> None:
    assert c.decode_ro_access_report(bytes.fromhex(ZEBRA_EMPTY_REPORT.read_text().strip())) == []
