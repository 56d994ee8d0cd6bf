"""Helpers of the EPCIS tests: the real GS1 material, and counts and scans in a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgecount.contract import CountItem, ReaderReport, ScanDraft, ScanState, count_draft
from reconciler.epcis.validate import EpcisValidator, load_schema
from reconciler.store import Store

REPO = Path(__file__).resolve().parents[2]
REALDATA = REPO.parent / "shared" / "realdata" / "gs1"
"""``../shared/realdata/gs1`` beside the checkout (never copied into it: GS1's licence)."""
SCHEMA = REALDATA / "epcis_gs1_repo" / "EPCIS-JSON-Schema.json"
OPENEPCIS = REALDATA / "openepcis_test_resources" / "JSON"
GS1_EXAMPLES = REALDATA / "epcis_gs1_repo" / "JSON"

SITE = "dc1"
T0 = datetime(2026, 5, 1, 2, 0, tzinfo=UTC)
GTIN = "80614141123458"


def require_realdata() -> None:
    """Fail (never skip) when the GS1 material is not where the tests expect it."""
    assert SCHEMA.is_file(), (
        f"the GS1 EPCIS material is missing: expected {SCHEMA} (../shared/realdata/gs1 beside"
        " the repository; see its README.md)"
    )


def validator() -> EpcisValidator:
    """The validator with the GS1 schema."""
    require_realdata()
    return EpcisValidator(load_schema(SCHEMA))


def add_scan(
    store: Store,
    scan_id: str,
    locations: dict[str, list[CountItem]],
    *,
    ended_at: datetime | None = T0,
    incomplete: tuple[str, ...] = (),
    seq: int = 1,
    readers: tuple[str, ...] = ("r1",),
) -> int:
    """Store one scan of zone A by gw-01: a count per location, then its end; the next seq."""
    for location, items in locations.items():
        draft = count_draft(
            gateway="gw-01",
            site=SITE,
            zone="A",
            location=location,
            scan_id=scan_id,
            items=items,
            complete=location not in incomplete,
            observed_at=T0 - timedelta(seconds=30),
        )
        store.record_count(draft.sequenced(seq), T0 - timedelta(seconds=29))
        seq += 1
    scan = ScanDraft(
        state=ScanState.INCOMPLETE if incomplete else ScanState.COMPLETED,
        scan_id=scan_id,
        zone="A",
        gateway="gw-01",
        site=SITE,
        started_at="2026-05-01T01:59:00.000Z",
        locations=tuple(locations),
        incomplete_locations=incomplete,
        readers=tuple(ReaderReport(name=r, ok=True, reads=10) for r in readers),
        ended_at=None if ended_at is None else ended_at.isoformat().replace("+00:00", "Z"),
    )
    store.record_scan(scan.sequenced(seq), T0)
    return seq + 1
