"""GTIN check digits and GTIN-14 normalisation, pinned by epcpy's GS1 vectors (shared/realdata)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from edgecount.gtin import GtinError, check_digit, is_gtin_shaped, normalise_sku, to_gtin14

REALDATA = Path(__file__).parents[2] / ".." / "shared" / "realdata"
VECTORS = REALDATA / "gs1" / "tds_vectors_epcpy" / "epcpy_test_vectors.json"


def gs1_key_vectors() -> list[tuple[str, str]]:
    """(gs1_key, GTIN-14 of its element string) of epcpy's SGTIN GS1-key tests."""
    tests: dict[str, Any] = json.loads(VECTORS.read_text())["tests/epc_schemes/test_sgtin.py"]
    found = []
    for case in tests["TestSGTINGS1Key"]["valid_data"]:
        match = re.match(r"\(01\)(\d{14})", case["gs1_element_string"])
        assert match is not None
        found.append((case["gs1_key"], match.group(1)))
    return found


def test_the_realdata_vectors_cover_every_gtin_length() -> None:
    assert sorted({len(key) for key, _ in gs1_key_vectors()}) == [8, 12, 13, 14]


@pytest.mark.parametrize(("gs1_key", "gtin14"), gs1_key_vectors())
def test_gs1_keys_normalise_to_the_gtin14_of_their_element_string(
    gs1_key: str, gtin14: str
) -> None:
    assert check_digit(gs1_key[:-1]) == gs1_key[-1]
    assert to_gtin14(gs1_key) == gtin14
    assert normalise_sku(gs1_key) == gtin14


@pytest.mark.parametrize(
    ("sku", "gtin14"),
    [
        ("4006381333931", "04006381333931"),  # EAN-13
        ("036000291452", "00036000291452"),  # UPC-A (GTIN-12)
        ("96385074", "00000096385074"),  # GTIN-8
        ("80614141123458", "80614141123458"),  # the design notes' SGTIN-96 vector
    ],
)
def test_well_known_gtins(sku: str, gtin14: str) -> None:
    assert normalise_sku(sku) == gtin14


def test_a_wrong_check_digit_names_the_expected_one() -> None:
    with pytest.raises(GtinError, match="has check digit 2, expected 1") as caught:
        normalise_sku("4006381333932")
    assert caught.value.expected == "1"


@pytest.mark.parametrize("sku", ["PLANO-7", "12345", "123456789", "400638133393X", "", "٤٠٠٦"])
def test_other_skus_are_kept_as_they_are(sku: str) -> None:
    assert not is_gtin_shaped(sku)
    assert normalise_sku(sku) == sku


def test_check_digit_refuses_non_digits() -> None:
    with pytest.raises(ValueError, match="not all digits"):
        check_digit("12a4")
