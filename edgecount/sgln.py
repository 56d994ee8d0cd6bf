"""SGLN-96 EPCs: the location reference tags on each bay (GS1 Tag Data Standard bit layout).

Shared by the gateway (which reads them to place items, :mod:`gateway.mobile`) and the
simulators (which put them on bays, :mod:`simulators.cart`).

Ours rather than epcpy's (``bench/sgln.py``, docs/benchmarks.md): epcpy 0.1.8 decodes 7 times and
encodes 18 times slower per tag, and accepts two SGLN-96 encodings its own vectors call invalid.
"""

from __future__ import annotations

from dataclasses import dataclass

SGLN96_HEADER = 0x32
# partition → (company prefix bits, digits, location reference bits, digits) (GS1 TDS 14.5.4)
_SGLN_PARTITIONS = (
    (40, 12, 1, 0),
    (37, 11, 4, 1),
    (34, 10, 7, 2),
    (30, 9, 11, 3),
    (27, 8, 14, 4),
    (24, 7, 17, 5),
    (20, 6, 21, 6),
)
_EXTENSION_BITS = 41


@dataclass(frozen=True, slots=True)
class Sgln96:
    """A decoded SGLN-96 EPC.

    Attributes:
        company_prefix: GS1 company prefix, 6 to 12 digits.
        location_reference: Location reference; with the prefix it makes 12 digits.
        extension: GLN extension, 0 to 2**41 - 1.
        filter_value: Filter value, 0 to 7.
    """

    company_prefix: str
    location_reference: str
    extension: int = 0
    filter_value: int = 0

    @property
    def gln(self) -> str:
        """The 13-digit GLN, check digit included."""
        digits = self.company_prefix + self.location_reference
        odd = sum(int(d) for d in digits[-1::-2])
        even = sum(int(d) for d in digits[-2::-2])
        return digits + str((10 - (3 * odd + even) % 10) % 10)

    @property
    def uri(self) -> str:
        """The pure-identity URI, ``urn:epc:id:sgln:<prefix>.<reference>.<extension>``."""
        return f"urn:epc:id:sgln:{self.company_prefix}.{self.location_reference}.{self.extension}"


def encode_sgln96(
    company_prefix: str, location_reference: str, extension: int = 0, filter_value: int = 0
) -> bytes:
    """Encode an SGLN-96 EPC (GS1 Tag Data Standard bit layout).

    Args:
        company_prefix: GS1 company prefix, 6 to 12 digits.
        location_reference: Location reference digits; prefix + reference = 12 digits.
        extension: GLN extension (numeric, as SGLN-96 requires), 0 to 2**41 - 1.
        filter_value: Filter value, 0 to 7.

    Returns:
        The 12 bytes of the EPC.

    Raises:
        ValueError: A field is out of range or not digits.
    """
    length = len(company_prefix)
    digits = company_prefix + location_reference
    if not (6 <= length <= 12) or len(digits) != 12 or not digits.isdigit():
        raise ValueError("company prefix (6-12 digits) + location reference must be 12 digits")
    if not (0 <= extension < 1 << _EXTENSION_BITS) or not (0 <= filter_value <= 7):
        raise ValueError("extension or filter value out of range")
    partition = 12 - length
    prefix_bits, _, ref_bits, _ = _SGLN_PARTITIONS[partition]
    value = SGLN96_HEADER
    value = (value << 3) | filter_value
    value = (value << 3) | partition
    value = (value << prefix_bits) | int(company_prefix)
    value = (value << ref_bits) | int(location_reference or "0")
    value = (value << _EXTENSION_BITS) | extension
    return value.to_bytes(12, "big")


def decode_sgln96(epc: bytes) -> Sgln96:
    """Decode an SGLN-96 EPC.

    Args:
        epc: The 12 bytes of the EPC.

    Returns:
        Its fields.

    Raises:
        ValueError: Not an SGLN-96 EPC, or a field is invalid.
    """
    if len(epc) != 12 or epc[0] != SGLN96_HEADER:
        raise ValueError("not an SGLN-96 EPC")
    value = int.from_bytes(epc, "big")
    extension = value & ((1 << _EXTENSION_BITS) - 1)
    partition = (value >> 82) & 0b111
    filter_value = (value >> 85) & 0b111
    if partition >= len(_SGLN_PARTITIONS):
        raise ValueError(f"invalid SGLN-96 partition {partition}")
    prefix_bits, prefix_digits, ref_bits, ref_digits = _SGLN_PARTITIONS[partition]
    reference = (value >> _EXTENSION_BITS) & ((1 << ref_bits) - 1)
    prefix = (value >> (_EXTENSION_BITS + ref_bits)) & ((1 << prefix_bits) - 1)
    if prefix >= 10**prefix_digits or reference >= 10**ref_digits:
        raise ValueError("SGLN-96 company prefix or location reference out of range")
    ref_text = f"{reference:0{ref_digits}d}" if ref_digits else ""
    return Sgln96(f"{prefix:0{prefix_digits}d}", ref_text, extension, filter_value)
