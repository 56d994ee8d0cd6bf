"""Counts → EPCIS 2.0 ``ObjectEvent`` s → one ``EPCISDocument`` (JSON-LD), without I/O.

One complete location count is one ``ObjectEvent`` (docs/epcis.md has the table):

* ``action: OBSERVE``, ``bizStep: cycle_counting``, ``eventTime`` = the count's ``observed_at``
  (UTC, ``eventTimeZoneOffset`` ``+00:00``), ``eventID`` a UUID made from the count's ``msg_id``
  (the same count always gives the same event: a repository can tell a resend);
* ``bizLocation``: the location's SGLN when configured, else ``{base}loc:{location}``;
* ``readPoint``: ``{base}gateway:{gw}:reader:{name}`` / ``…:camera:{name}`` when the scan used
  exactly one reader (RFID) or camera (vision), else ``{base}gateway:{gw}``: a count message
  says which gateway made it, not which antenna;
* ``epcList``: the EPCs listed with the count (tags that are not SGTIN; their pure-identity
  URI when epcpy knows the scheme, else the raw ``urn:epc:raw:{bits}.x{HEX}``); an empty list
  for a location counted empty;
* ``quantityList``: one ``{epcClass, quantity}`` per SKU counted without serials: the GS1
  Digital Link ``https://id.gs1.org/01/{gtin14}`` of a GTIN (the class of all its serials; the
  ``urn:epc:idpat:sgtin:`` form would need the company prefix length, which a count does not
  carry), else ``{base}sku:{sku}``;
* ``edgecount:scanId``, ``edgecount:msgId``, ``edgecount:gateway``, ``edgecount:zone``,
  ``edgecount:location``, ``edgecount:source`` under the declared ``edgecount`` prefix.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

from epcpy.utils.parsers import hex_to_tag_encodable

from edgecount.gtin import GtinError, is_gtin_shaped, to_gtin14
from edgecount.timefmt import to_iso
from reconciler.epcis.vocab import GS1_CONTEXT

__all__ = [
    "PREFIX",
    "CountRecord",
    "Naming",
    "ScanDevices",
    "document_bytes",
    "epc_uri",
    "epcis_document",
    "event_id",
    "object_event",
]

PREFIX = "edgecount"
"""The JSON-LD prefix of our own fields (``edgecount:scanId``)."""

_EVENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:edgecount:epcis:event")
_SAFE = "-._~!$&'()*,;=:@"


@dataclass(frozen=True, slots=True)
class CountRecord:
    """A stored complete count, as the export needs it."""

    msg_id: str
    gateway: str
    zone: str
    location: str
    scan_id: str
    observed_at: datetime
    source: str
    items: Sequence[Mapping[str, Any]]


@dataclass(frozen=True, slots=True)
class ScanDevices:
    """The readers and cameras a scan used (from its ``edgecount.scan/1``)."""

    readers: tuple[str, ...] = ()
    cameras: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Naming:
    """How the site's things are named in EPCIS.

    Attributes:
        base_uri: Prefix of the site's own URIs (``urn:edgecount:{site}:`` by default).
        sgln: Location → its SGLN URI, where configured.
    """

    base_uri: str
    sgln: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_site(cls, site: str, base_uri: str | None, sgln: Mapping[str, str]) -> Naming:
        """The naming of ``site`` (``base_uri`` None: ``urn:edgecount:{site}:``)."""
        return cls(base_uri or f"urn:edgecount:{quote(site, safe='-._~')}:", dict(sgln))

    def own(self, *parts: str) -> str:
        """A URI of the site's namespace: ``{base}part:part…`` (each part percent-encoded)."""
        return self.base_uri + ":".join(quote(part, safe="-._~!$&'()*,;=@") for part in parts)

    def location(self, location: str) -> str:
        """The ``bizLocation`` id of a location."""
        return self.sgln.get(location) or self.own("loc", location)

    def read_point(self, count: CountRecord, devices: ScanDevices | None) -> str:
        """The ``readPoint`` id: the one reader or camera of the scan, else the gateway."""
        if devices is not None:
            if count.source == "rfid" and len(devices.readers) == 1:
                return self.own("gateway", count.gateway, "reader", devices.readers[0])
            if count.source == "vision" and len(devices.cameras) == 1:
                return self.own("gateway", count.gateway, "camera", devices.cameras[0])
        return self.own("gateway", count.gateway)

    def epc_class(self, sku: str) -> str:
        """The class URI of a SKU: a GTIN's Digital Link, else ``{base}sku:{sku}``."""
        if is_gtin_shaped(sku):
            try:
                return f"https://id.gs1.org/01/{to_gtin14(sku)}"
            except GtinError:
                pass  # GTIN-shaped but wrong: a SKU of the site's own
        return self.own("sku", sku)


@functools.lru_cache(maxsize=65536)
def epc_uri(epc_hex: str) -> str:
    """The URI of one EPC (hex): its pure identity with epcpy, else the TDS raw URI."""
    try:
        return str(hex_to_tag_encodable(epc_hex.upper()).epc_uri)
    except Exception:  # noqa: BLE001 - epcpy raises ConvertException, ValueError, KeyError...
        return f"urn:epc:raw:{len(epc_hex) * 4}.x{epc_hex.upper()}"


def event_id(msg_id: str) -> str:
    """The ``eventID`` of the event of a count: the same count, the same id."""
    return f"urn:uuid:{uuid.uuid5(_EVENT_NAMESPACE, msg_id)}"


def object_event(
    count: CountRecord, naming: Naming, devices: ScanDevices | None = None
) -> dict[str, Any]:
    """The ``ObjectEvent`` of one complete location count."""
    epcs: list[str] = []
    quantities: list[dict[str, Any]] = []
    for item in count.items:
        listed = item.get("epcs")
        if listed:
            epcs.extend(epc_uri(epc) for epc in listed)
        elif int(item["qty"]) > 0:
            quantities.append(
                {"epcClass": naming.epc_class(str(item["sku"])), "quantity": int(item["qty"])}
            )
    event: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventID": event_id(count.msg_id),
        "eventTime": to_iso(count.observed_at),
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "cycle_counting",
        "readPoint": {"id": naming.read_point(count, devices)},
        "bizLocation": {"id": naming.location(count.location)},
    }
    if epcs or not quantities:  # a location counted empty: an empty epcList says so
        event["epcList"] = sorted(set(epcs))
    if quantities:
        event["quantityList"] = quantities
    event.update(
        {
            f"{PREFIX}:scanId": count.scan_id,
            f"{PREFIX}:msgId": count.msg_id,
            f"{PREFIX}:gateway": count.gateway,
            f"{PREFIX}:zone": count.zone,
            f"{PREFIX}:location": count.location,
            f"{PREFIX}:source": count.source,
        }
    )
    return event


def epcis_document(
    events: Iterable[Mapping[str, Any]], namespace: str, created: datetime
) -> dict[str, Any]:
    """An ``EPCISDocument`` holding ``events``, the ``edgecount`` prefix declared."""
    return {
        "@context": [GS1_CONTEXT, {PREFIX: namespace}],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": to_iso(created),
        "epcisBody": {"eventList": list(events)},
    }


def document_bytes(document: Mapping[str, Any]) -> bytes:
    """The document as sent: compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
