"""The reconciliation service: compares counts with the book, flags, recounts, adjusts, reports.

It knows only the MQTT message contract (:mod:`edgecount.contract`), never gateway internals.
"""
