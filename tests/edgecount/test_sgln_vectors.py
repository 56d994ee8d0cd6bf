"""Our SGLN-96 codec against epcpy's GS1 tag-encoding vectors (shared/realdata, read in place)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgecount.sgln import decode_sgln96, encode_sgln96

REALDATA = Path(__file__).parents[2] / ".." / "shared" / "realdata"
VECTORS = REALDATA / "gs1" / "tds_vectors_epcpy" / "epcpy_test_vectors.json"
SGLN_96_TAG = re.compile(r"urn:epc:tag:sgln-96:(\d)\.(\d*)\.(\d*)\.(\d+)")


def suite() -> dict[str, Any]:
    tests: dict[str, Any] = json.loads(VECTORS.read_text())["tests/epc_schemes/test_sgln.py"]
    return dict(tests["TestSGLNTagEncodable"])


def valid() -> list[tuple[str, str, int, int, str]]:
    """(prefix, reference, extension, filter, hex) of each SGLN-96 vector."""
    found = []
    for case in suite()["valid_data"]:
        match = SGLN_96_TAG.fullmatch(case["tag_uri"])
        if match is not None:
            filt, prefix, ref, ext = match.groups()
            found.append((prefix, ref, int(ext), int(filt), case["hex"]))
    return found


def test_the_vectors_include_sgln_96_ones() -> None:
    assert len(valid()) == 2  # 0614141.12345.400 and the largest extension, 2**41 - 1


@pytest.mark.parametrize(("prefix", "ref", "extension", "filter_value", "hex_epc"), valid())
def test_encode_and_decode_match_the_vector(
    prefix: str, ref: str, extension: int, filter_value: int, hex_epc: str
) -> None:
    epc = bytes.fromhex(hex_epc)
    assert encode_sgln96(prefix, ref, extension, filter_value) == epc
    decoded = decode_sgln96(epc)
    assert (decoded.company_prefix, decoded.location_reference) == (prefix, ref)
    assert (decoded.extension, decoded.filter_value) == (extension, filter_value)


def test_an_extension_beyond_41_bits_is_refused() -> None:
    uris = [case["uri"] for case in suite()["invalid_data"]]
    assert "urn:epc:id:sgln:061411123456..2199023255552" in uris
    with pytest.raises(ValueError, match="out of range"):
        encode_sgln96("061411123456", "", 2199023255552)
