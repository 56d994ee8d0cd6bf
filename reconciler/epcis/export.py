"""The store's complete counts of a scan, or observed since a time, as one EPCIS document.

Only **complete** counts are exported (``counts.complete``: the location was fully scanned). A
partial count is a lower bound, not an observation of what the location holds; the counts of an
incomplete scan's other locations are complete and go out as usual.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from edgecount.timefmt import utc
from reconciler import schema as t
from reconciler.epcis.document import (
    CountRecord,
    Naming,
    ScanDevices,
    epcis_document,
    object_event,
)
from reconciler.epcis.settings import EpcisConfig, LocationsConfig
from reconciler.epcis.validate import EpcisValidator, Problem
from reconciler.store import Store

__all__ = [
    "ExportInvalidError",
    "Exporter",
    "UnknownScanError",
]


class UnknownScanError(LookupError):
    """No scan and no count has this scan id."""


class ExportInvalidError(Exception):
    """A document we built fails validation (a bug, or a mapping the config made invalid)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        shown = "; ".join(str(p) for p in self.problems[:5])
        super().__init__(
            f"the EPCIS document is not valid ({len(self.problems)} problems): {shown}"
        )


@dataclass(frozen=True, slots=True)
class Exporter:
    """Builds and checks documents from one store, with the site's naming."""

    store: Store
    naming: Naming
    namespace: str
    validator: EpcisValidator

    @classmethod
    def configured(
        cls,
        store: Store,
        site: str,
        epcis: EpcisConfig,
        locations: LocationsConfig,
        validator: EpcisValidator,
    ) -> Exporter:
        """An exporter as the reconciler's config says."""
        naming = Naming.for_site(site, epcis.base_uri, locations.sgln_of())
        return cls(store, naming, epcis.namespace, validator)

    # -- reading the store ---------------------------------------------------------------

    def scan_counts(self, scan_id: str, *, by_arrival: bool = False) -> list[CountRecord]:
        """The complete counts of a scan, oldest first (``by_arrival``: first stored first).

        Raises:
            UnknownScanError: Neither a scan nor a count has this id.
        """
        counts = self._counts(t.counts.c.scan_id == scan_id, by_arrival=by_arrival)
        if not counts:
            with self.store.engine.connect() as conn:
                known = conn.execute(
                    sa.select(t.scans.c.scan_id).where(t.scans.c.scan_id == scan_id)
                ).first()
            if known is None:
                raise UnknownScanError(f"no scan {scan_id!r} in the store")
        return counts

    def counts_since(self, since: datetime) -> list[CountRecord]:
        """The complete counts observed at or after ``since``, oldest first."""
        return self._counts(t.counts.c.observed_at >= since)

    def _counts(
        self, where: sa.ColumnElement[bool], *, by_arrival: bool = False
    ) -> list[CountRecord]:
        c = t.counts.c
        order = (c.received_at, c.msg_id) if by_arrival else (c.observed_at, c.msg_id)
        query = (
            sa.select(
                c.msg_id,
                c.gateway,
                c.zone,
                c.location,
                c.scan_id,
                c.observed_at,
                c.source,
                c["items"],
            )
            .where(where, c.complete.is_(True))
            .order_by(*order)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            CountRecord(
                msg_id=row.msg_id,
                gateway=row.gateway,
                zone=row.zone,
                location=row.location,
                scan_id=row.scan_id,
                observed_at=utc(row.observed_at),
                source=row.source,
                items=list(row._mapping["items"]),
            )
            for row in rows
        ]

    def devices(self, scan_ids: Iterable[str]) -> dict[str, ScanDevices]:
        """The readers and cameras of each scan named."""
        wanted = sorted(set(scan_ids))
        if not wanted:
            return {}
        query = sa.select(t.scans.c.scan_id, t.scans.c.readers, t.scans.c.cameras).where(
            t.scans.c.scan_id.in_(wanted)
        )
        with self.store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return {row.scan_id: _devices(row.readers, row.cameras) for row in rows}

    # -- documents -----------------------------------------------------------------------

    def events(self, counts: Sequence[CountRecord]) -> list[dict[str, Any]]:
        """One ``ObjectEvent`` per count, in the counts' order."""
        devices = self.devices(count.scan_id for count in counts)
        return [object_event(c, self.naming, devices.get(c.scan_id)) for c in counts]

    def document(
        self, events: Sequence[Mapping[str, Any]], created: datetime | None = None
    ) -> dict[str, Any]:
        """A checked ``EPCISDocument`` of ``events``.

        Raises:
            ExportInvalidError: It fails the schema (when given) or the semantic checks.
        """
        doc = epcis_document(events, self.namespace, created or datetime.now(UTC))
        problems = self.validator.validate(doc)
        if problems:
            raise ExportInvalidError(problems)
        return doc


def _devices(readers: Any, cameras: Any) -> ScanDevices:
    def names(parts: Any) -> tuple[str, ...]:
        return tuple(str(p["name"]) for p in parts or () if isinstance(p, dict) and "name" in p)

    return ScanDevices(names(readers), names(cameras))
