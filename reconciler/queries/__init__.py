"""Every read of the reconciler's store beyond the store's own, one module per subject.

* :mod:`~reconciler.queries.selections`: which counts a report compares, and the comparison;
* :mod:`~reconciler.queries.planning`: what the count planner needs per location;
* :mod:`~reconciler.queries.discrepancies`: the open discrepancy of a location, one by id,
  lists for people and the WMS, recount requests to send again;
* :mod:`~reconciler.queries.outbox`: messages the broker has not acknowledged, cursor pages.

Writes of what the reconciler decides are :mod:`reconciler.repository`'s. The names of the
report and planning reads are importable from this package directly.
"""

from __future__ import annotations

from reconciler.queries.planning import (
    EXCEPTION_WINDOW_DAYS,
    UNKNOWN_ZONE,
    Covered,
    coverage,
    plan_inputs,
)
from reconciler.queries.selections import (
    TREND_SCANS,
    TREND_STATES,
    CountRecord,
    ScanRecord,
    Selection,
    adjustments_value,
    book_locations,
    compare_selections,
    get_scan,
    scan_selections,
    since_selection,
    trend_scans,
    zone_locations,
    zone_selection,
)

__all__ = [
    "EXCEPTION_WINDOW_DAYS",
    "TREND_SCANS",
    "TREND_STATES",
    "UNKNOWN_ZONE",
    "CountRecord",
    "Covered",
    "ScanRecord",
    "Selection",
    "adjustments_value",
    "book_locations",
    "compare_selections",
    "coverage",
    "get_scan",
    "plan_inputs",
    "scan_selections",
    "since_selection",
    "trend_scans",
    "zone_locations",
    "zone_selection",
]
