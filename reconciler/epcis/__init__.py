"""EPCIS 2.0: counts as GS1 ``ObjectEvent`` s, their validation, and a capture client.

* :mod:`~reconciler.epcis.settings`: the ``epcis:`` and ``locations:`` sections of the config;
* :mod:`~reconciler.epcis.document`: a complete location count → one ``ObjectEvent``, events →
  one ``EPCISDocument`` (pure: no store, no clock but what it is given);
* :mod:`~reconciler.epcis.validate`: the GS1 EPCIS 2.0 JSON Schema plus the semantic checks
  the schema lets through (:mod:`~reconciler.epcis.vocab` holds their tables);
* :mod:`~reconciler.epcis.export`: the store's counts of a scan or since a time → a document;
* :mod:`~reconciler.epcis.capture`: the HTTP client of an EPCIS 2.0 capture interface;
* :mod:`~reconciler.epcis.sender`: the per-scan export records and the loop of the service
  that sends each ended scan once;
* :mod:`~reconciler.epcis.cli`: ``edgecount epcis export | validate | send``.

docs/epcis.md describes the mapping field by field.
"""
