"""Real reader messages from ``../shared/realdata/llrp/`` (read in place, never copied here).

See that folder's README for where each file comes from. The ``*.expected.sllurp.json`` files
are sllurp 3.0.5's decode of the same bytes, a second implementation to compare with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drivers.llrp import codec as c

REALDATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "realdata" / "llrp"
SLLURP_STREAM = REALDATA / "sllurp" / "RO_ACCESS_REPORT_stream_45msgs.bin"
LTK_SESSION = REALDATA / "ltk" / "dx101_a.bin"
IMPINJ_CONFIG = REALDATA / "sllurp" / "GET_READER_CONFIG_RESPONSE_impinj.bin"
EDGEX_REPORTS = REALDATA / "edgex-device-rfid-llrp-go" / "roAccessReports"
ZEBRA_EMPTY_REPORT = REALDATA / "issues" / "zebra_fx9600_empty_RO_ACCESS_REPORT.hex"

#: sllurp's tag dictionary keys, by position in :data:`~drivers.llrp.codec.TagTuple`.
SLLURP_KEYS = (
    "EPC",
    "AntennaID",
    "PeakRSSI",
    "FirstSeenTimestampUTC",
    "LastSeenTimestampUTC",
    "TagSeenCount",
)


def frames(path: Path) -> list[c.Frame]:
    """Every whole message in a capture (the file must hold nothing else)."""
    buffer = c.FrameBuffer()
    found = buffer.feed(path.read_bytes())
    assert buffer.pending == 0
    return found


def reports(path: Path) -> list[bytes]:
    """The RO_ACCESS_REPORT messages of a capture."""
    return [f.data for f in frames(path) if f.msg_type == c.MessageType.RO_ACCESS_REPORT]


def sllurp_tags(path: Path) -> list[dict[str, Any]]:
    """sllurp's decode of every TagReportData in a capture, in order."""
    expected = json.loads(path.with_suffix(".expected.sllurp.json").read_text())
    return [tag for report in expected["ro_access_reports"] for tag in report.get("tags", [])]


def as_sllurp(tag: c.TagTuple) -> dict[str, Any]:
    """A decoded tag with sllurp's keys, absent fields left out."""
    return {key: value for key, value in zip(SLLURP_KEYS, tag, strict=True) if value is not None}
