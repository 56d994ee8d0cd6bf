"""GTINs (GS1 trade item numbers): check digits and normalisation to GTIN-14.

Counts carry GTIN-14 (decoded from SGTIN tags); a WMS exports EAN-13, UPC-A (GTIN-12),
GTIN-8 or GTIN-14. :func:`normalise_sku` turns every one of those into its GTIN-14 (left-padded
with zeros, the check digit verified), so book, movements and counts meet on one key. Anything
that is not all digits of one of those lengths (a planogram code, an internal article number)
is no GTIN and is kept as it is.
"""

from __future__ import annotations

GTIN_LENGTHS = frozenset({8, 12, 13, 14})


class GtinError(ValueError):
    """A GTIN whose check digit is wrong.

    Attributes:
        gtin: The GTIN as given.
        expected: The check digit its other digits call for.
    """

    def __init__(self, gtin: str, expected: str) -> None:
        super().__init__(f"GTIN {gtin} has check digit {gtin[-1]}, expected {expected}")
        self.gtin = gtin
        self.expected = expected


def check_digit(body: str) -> str:
    """The GS1 check digit of ``body`` (a GTIN without its last digit).

    Weights 3, 1, 3, … from the rightmost digit of ``body``; the check digit brings the
    weighted sum to a multiple of 10.

    Raises:
        ValueError: ``body`` is not all ASCII digits.
    """
    if not (body.isascii() and body.isdigit()):
        raise ValueError(f"not all digits: {body!r}")
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str(-total % 10)


def is_gtin_shaped(text: str) -> bool:
    """All ASCII digits, 8, 12, 13 or 14 of them (a GTIN, if its check digit is right)."""
    return text.isascii() and text.isdigit() and len(text) in GTIN_LENGTHS


def to_gtin14(gtin: str) -> str:
    """The GTIN-14 of a GTIN-8/12/13/14, its check digit verified.

    Raises:
        ValueError: Not GTIN-shaped (see :func:`is_gtin_shaped`).
        GtinError: The check digit is wrong.
    """
    if not is_gtin_shaped(gtin):
        raise ValueError(f"not a GTIN-8/12/13/14: {gtin!r}")
    expected = check_digit(gtin[:-1])
    if gtin[-1] != expected:
        raise GtinError(gtin, expected)
    return gtin.zfill(14)


def normalise_sku(sku: str) -> str:
    """The GTIN-14 of a GTIN-shaped SKU; any other SKU unchanged.

    Raises:
        GtinError: GTIN-shaped, but the check digit is wrong.
    """
    return to_gtin14(sku) if is_gtin_shaped(sku) else sku


__all__ = [
    "GTIN_LENGTHS",
    "GtinError",
    "check_digit",
    "is_gtin_shaped",
    "normalise_sku",
    "to_gtin14",
]
