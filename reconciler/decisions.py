"""How discrepancies end, as data for the WMS: decisions, adjustments, accepted variances.

Every end of a discrepancy writes one row to ``decisions`` in the same transaction as the
state change, holding the ``edgecount.decision/1`` message
(:func:`reconciler.repository.record_decision`, shaped by
:func:`reconciler.messages.decision_message`); the service publishes rows whose
``published_at`` is empty and stamps them on the broker's PUBACK (an outbox, like
adjustments). Both tables' ids are cursors: ``GET /decisions?after=ID`` and ``GET
/adjustments?after=ID`` let a WMS that missed messages catch up (:func:`page`, from
:mod:`reconciler.queries.outbox`).

Outcomes:

* ``approved``: a person approved; each line became an adjustment (listed in the message);
* ``rejected``: a person rejected; the book stays, and each line is recorded in
  ``accepted_variances`` so the same difference is not flagged again until the book, the
  count or a movement changes it (:meth:`reconciler.store.Store.accepted_variances`);
* ``resolved``: a later complete count agreed with the book (by the reconciler);
* ``superseded``: a later count found a different difference while the discrepancy waited
  for a person; a new discrepancy is opened for it (by the reconciler).
"""

from __future__ import annotations

from reconciler.queries.outbox import PAGE_LIMIT, Page, page

__all__ = ["APPROVE_REASONS", "PAGE_LIMIT", "REJECT_REASONS", "Page", "page"]

APPROVE_REASONS = ("BOOK_ERROR", "MISPICK", "RECEIVING_ERROR", "DAMAGE", "THEFT", "MISCOUNT")
"""Documented reason codes for approving (the book was wrong); sites may use their own."""

REJECT_REASONS = ("ACCEPTED_VARIANCE", "SCAN_ERROR", "IN_TRANSIT", "WRONG_LOCATION")
"""Documented reason codes for rejecting (the book stays; the difference is accepted)."""
