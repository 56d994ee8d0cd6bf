"""The vocabulary the semantic checks know: CBV 2.0 words, EPCIS 2.0 fields and query parameters.

Declarative tables only (GS1 CBV 2.0 §7, EPCIS 2.0 §7.4 and §8.2.7); the checks that use them are
in :mod:`reconciler.epcis.validate`.
"""

from __future__ import annotations

import re
from typing import Final

GS1_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
"""The JSON-LD context of EPCIS 2.0 that every document we write names first."""

STANDARD_PREFIXES: Final = frozenset(
    {"epcis", "cbv", "cbvmda", "gs1", "rdfs", "owl", "xsd", "dcterms"}
)
"""Prefixes the GS1 context declares (a CURIE with one of them needs no declaration of its own)."""

ABSOLUTE_SCHEMES: Final = frozenset({"http", "https", "urn"})
"""Schemes of an absolute URI used as a field name or a vocabulary value (not a CURIE)."""

EVENT_TYPES: Final = frozenset(
    {
        "ObjectEvent",
        "AggregationEvent",
        "TransactionEvent",
        "TransformationEvent",
        "AssociationEvent",
    }
)

ACTIONS: Final = frozenset({"ADD", "OBSERVE", "DELETE"})

BIZ_STEPS: Final = frozenset(
    [
        "accepting",
        "arriving",
        "assembling",
        "collecting",
        "commissioning",
        "consigning",
        "creating_class_instance",
        "cycle_counting",
        "decommissioning",
        "departing",
        "destroying",
        "disassembling",
        "dispensing",
        "encoding",
        "entering_exiting",
        "holding",
        "inspecting",
        "installing",
        "killing",
        "loading",
        "other",
        "packing",
        "picking",
        "receiving",
        "removing",
        "repackaging",
        "repairing",
        "replacing",
        "reserving",
        "retail_selling",
        "shipping",
        "staging_outbound",
        "stock_taking",
        "stocking",
        "storing",
        "transporting",
        "unloading",
        "unpacking",
        "void_shipping",
        "sensor_reporting",
        "sampling",
    ]
)
"""CBV 2.0 business steps (bare words; ``cbv:BizStep-…`` and ``https://ref.gs1.org/cbv/BizStep-…``)."""

DISPOSITIONS: Final = frozenset(
    [
        "active",
        "container_closed",
        "damaged",
        "destroyed",
        "dispensed",
        "disposed",
        "encoded",
        "expired",
        "in_progress",
        "in_transit",
        "inactive",
        "no_pedigree_match",
        "non_sellable_other",
        "partially_dispensed",
        "recalled",
        "reserved",
        "retail_sold",
        "returned",
        "sellable_accessible",
        "sellable_not_accessible",
        "stolen",
        "unknown",
        "available",
        "completeness_verified",
        "completeness_inferred",
        "conformant",
        "container_open",
        "mismatch_instance",
        "mismatch_class",
        "mismatch_quantity",
        "needs_replacement",
        "non_conformant",
        "unavailable",
    ]
)
"""CBV 2.0 dispositions (bare words; ``cbv:Disp-…`` and ``https://ref.gs1.org/cbv/Disp-…``)."""

CBV_FORMS: Final = {
    "bizStep": ("BizStep-", BIZ_STEPS),
    "disposition": ("Disp-", DISPOSITIONS),
}
"""Field → (the CBV URI's word prefix, the allowed words)."""

EVENT_FIELDS: Final = frozenset(
    [
        "@context",
        "type",
        "eventID",
        "eventTime",
        "eventTimeZoneOffset",
        "recordTime",
        "certificationInfo",
        "errorDeclaration",
        "epcList",
        "quantityList",
        "action",
        "bizStep",
        "disposition",
        "persistentDisposition",
        "readPoint",
        "bizLocation",
        "bizTransactionList",
        "sourceList",
        "destinationList",
        "sensorElementList",
        "ilmd",
        "parentID",
        "childEPCs",
        "childQuantityList",
        "inputEPCList",
        "inputQuantityList",
        "outputEPCList",
        "outputQuantityList",
        "transformationID",
    ]
)
"""The standard fields of the five event types (any other key must be a declared extension)."""

IDENTIFIER_LISTS: Final = frozenset({"epcList", "childEPCs", "inputEPCList", "outputEPCList"})
"""Fields holding a list of instance identifiers (URIs)."""

IDENTIFIER_FIELDS: Final = frozenset({"parentID", "eventID", "transformationID"})
"""Fields holding one identifier (a URI)."""

TIME_FIELDS: Final = frozenset(
    {"eventTime", "recordTime", "declarationTime", "creationDate", "time", "startTime", "endTime"}
)
"""Fields whose value is an RFC 3339 date-time with an offset, wherever they appear."""

TIMESTAMP: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
"""RFC 3339 ``date-time`` (upper-case T and Z, as EPCIS writes them)."""

TIMEZONE_OFFSET: Final = re.compile(r"^[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00)$")
"""``eventTimeZoneOffset``: ``±hh:mm`` between -14:00 and +14:00."""

# --- the query language (EPCIS 2.0 §8.2.7.1, SimpleEventQuery) ----------------------------------

QUERY_FIXED: Final = frozenset(
    [
        "eventType",
        "GE_eventTime",
        "LT_eventTime",
        "GE_recordTime",
        "LT_recordTime",
        "EQ_action",
        "EQ_bizStep",
        "EQ_disposition",
        "EQ_persistentDisposition_set",
        "EQ_persistentDisposition_unset",
        "EQ_readPoint",
        "WD_readPoint",
        "EQ_bizLocation",
        "WD_bizLocation",
        "EQ_transformationID",
        "MATCH_epc",
        "MATCH_parentID",
        "MATCH_inputEPC",
        "MATCH_outputEPC",
        "MATCH_anyEPC",
        "MATCH_epcClass",
        "MATCH_inputEPCClass",
        "MATCH_outputEPCClass",
        "MATCH_anyEPCClass",
        "EQ_quantity",
        "GT_quantity",
        "GE_quantity",
        "LT_quantity",
        "LE_quantity",
        "EQ_eventID",
        "EXISTS_errorDeclaration",
        "GE_errorDeclarationTime",
        "LT_errorDeclarationTime",
        "EQ_errorReason",
        "EQ_correctiveEventID",
        "orderBy",
        "orderDirection",
        "eventCountLimit",
        "maxEventCount",
        "EQ_deviceID",
        "EQ_dataProcessingMethod",
        "EQ_microorganism",
        "EQ_chemicalSubstance",
        "EQ_bizRules",
        "EQ_stringValue",
        "EQ_booleanValue",
        "EQ_hexBinaryValue",
        "EQ_uriValue",
        "EQ_sensorMetadata",
        "EQ_sensorReport",
        "EXISTS_sensorMetadata",
        "EXISTS_sensorReport",
        "EQ_exception",
        "EXISTS_exception",
        "EQ_type",
        "GE_time",
        "LT_time",
        "GE_startTime",
        "LT_startTime",
        "GE_endTime",
        "LT_endTime",
    ]
)
"""Query parameters whose whole name is fixed (``@context`` is allowed besides)."""

QUERY_PATTERNS: Final = (
    # a business transaction, source or destination of a given type (a CBV word or a URI)
    re.compile(r"^EQ_(bizTransaction|source|destination)_\S+$"),
    # a sensor value of a measurement type
    re.compile(
        r"^(EQ|GT|GE|LT|LE)_(value|minValue|maxValue|meanValue|sDev|percRank|percValue)_\S+$"
    ),
    # an extension field (namespaced: prefix:name), at the top, inside, in ILMD, in a sensor
    re.compile(
        r"^(EQ|GT|GE|LT|LE|EXISTS)_(INNER_|ILMD_|INNER_ILMD_|SENSORELEMENT_|SENSORMETADATA_|"
        r"SENSORREPORT_|INNER_SENSORELEMENT_)?[A-Za-z][\w.-]*:[\w.-]+$"
    ),
    # master data attributes
    re.compile(r"^(EQATTR|HASATTR)_\w+(_\S+)?$"),
)
"""Query parameter names made of a fixed head and a variable tail."""

QUERY_TIMES: Final = re.compile(
    r"^(GE|LT)_(eventTime|recordTime|errorDeclarationTime|time|startTime|endTime)$"
)
QUERY_NUMBERS: Final = re.compile(
    r"^(EQ|GT|GE|LT|LE)_(quantity|value|minValue|maxValue|meanValue|sDev|percRank|percValue)(_\S+)?$"
)
ORDER_DIRECTIONS: Final = frozenset({"ASC", "DESC"})
