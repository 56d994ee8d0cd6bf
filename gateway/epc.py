"""EPC → SKU: SGTIN-96/198 to GTIN-14 with epcpy, decoded once and cached.

An SGTIN-96's GTIN depends only on its top 58 bits (header, filter, partition, company prefix
and item reference); the serial number never changes it. So the cache is keyed on that
prefix: a million tags of 500 SKUs cost 500 epcpy decodes, not a million. Other EPCs are
decoded (and cached) one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

from epcpy.epc_schemes.sgtin import SGTIN
from epcpy.utils.parsers import hex_to_tag_encodable

from edgecount.contract import UNKNOWN_SKU

__all__ = ["UNKNOWN_SKU", "Decoded", "EpcDecoder"]

_SGTIN96_HEADER = 0x30


@dataclass(frozen=True, slots=True)
class Decoded:
    """What an EPC says about the item."""

    sku: str
    scheme: str


_UNKNOWN = Decoded(UNKNOWN_SKU, "unknown")


class EpcDecoder:
    """Decodes EPCs to SKUs with a cache; non-SGTIN EPCs map to :data:`UNKNOWN_SKU`."""

    def __init__(self) -> None:
        self._cache: dict[int | bytes, Decoded] = {}
        self.decodes = 0

    def decode(self, epc: bytes) -> Decoded:
        """The SKU and scheme of one EPC (raw bytes)."""
        key: int | bytes
        if len(epc) == 12 and epc[0] == _SGTIN96_HEADER:
            key = int.from_bytes(epc[:8], "big") >> 6  # the 58 bits before the serial
        else:
            key = epc
        found = self._cache.get(key)
        if found is None:
            found = self._decode(epc)
            self._cache[key] = found
        return found

    def _decode(self, epc: bytes) -> Decoded:
        self.decodes += 1
        try:
            tag = hex_to_tag_encodable(epc.hex().upper())
        except Exception:  # noqa: BLE001 - epcpy raises ConvertException, ValueError, KeyError...
            return _UNKNOWN
        if isinstance(tag, SGTIN):
            return Decoded(tag.gtin(), "sgtin")
        return _UNKNOWN
