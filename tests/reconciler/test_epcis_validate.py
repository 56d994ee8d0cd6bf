"""The EPCIS validator against GS1's schema and examples and OpenEPCIS's valid and invalid files.

The material is read from ``../shared/realdata/gs1`` (never copied into the project); if it is
missing the tests fail with a message saying where it was expected.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.epcis.validate import (
    EpcisValidator,
    SchemaUnavailableError,
    document_kind,
    load_schema,
    schema_path,
)
from tests.reconciler.epcis_helpers import GS1_EXAMPLES, OPENEPCIS, REALDATA, validator


def _files(pattern: str, base: Path) -> list[Path]:
    found = sorted(base.glob(pattern)) if base.is_dir() else []
    # no material: one case that fails with the reason rather than zero cases that pass
    return found or [REALDATA / f"MISSING:{pattern}"]


def _load(path: Path) -> object:
    assert path.is_file(), f"GS1/OpenEPCIS material missing: {path}"
    return json.loads(path.read_text(encoding="utf-8"))


def _id(path: Path) -> str:
    return path.name


INVALID = [p for p in _files("**/*.json", OPENEPCIS) if "Invalid" in p.parts or "MISSING" in p.name]
VALID = [p for p in _files("**/*.json", OPENEPCIS) if "Invalid" not in p.parts]
SENSOR_REPORTS_WITHOUT_TYPE = {"SensorData_with_combined_events.json"}
"""OpenEPCIS calls these valid; their sensorReports carry an ``exception`` but no ``type``,
which the GS1 schema requires. They pass every semantic check (pinned below)."""


@pytest.fixture(scope="module")
def checker() -> EpcisValidator:
    return validator()


def test_the_material_is_there_and_complete() -> None:
    assert len(_files("**/*.jsonld", GS1_EXAMPLES)) == 47
    assert len(INVALID) == 19, [p.name for p in INVALID]


@pytest.mark.parametrize("path", INVALID, ids=_id)
def test_every_known_invalid_document_is_rejected(checker: EpcisValidator, path: Path) -> None:
    assert checker.validate(_load(path)), f"{path} was accepted"


@pytest.mark.parametrize("path", INVALID, ids=_id)
def test_the_semantic_checks_alone_reject_what_the_schema_lets_through(path: Path) -> None:
    doc = _load(path)
    schema_only = [p for p in validator().validate(doc) if p.check == "schema"]
    if not schema_only:  # the schema accepts it: the semantic checks must not
        assert EpcisValidator(None).validate(doc), f"{path} passes schema and semantics"


@pytest.mark.parametrize("path", VALID, ids=_id)
def test_every_valid_openepcis_file_is_accepted(checker: EpcisValidator, path: Path) -> None:
    problems = checker.validate(_load(path))
    if path.name in SENSOR_REPORTS_WITHOUT_TYPE:
        assert problems, "the GS1 schema changed: drop the exception"
        assert {p.check for p in problems} == {"schema"}
        assert all(p.message == "'type' is a required property" for p in problems)
        assert all(p.where.endswith(("sensorReport[0]", "sensorReport[1]")) for p in problems)
        return
    assert problems == []


@pytest.mark.parametrize("path", _files("**/*.jsonld", GS1_EXAMPLES), ids=_id)
def test_every_gs1_example_is_accepted(checker: EpcisValidator, path: Path) -> None:
    assert checker.validate(_load(path)) == []


def test_a_query_is_told_apart_from_documents() -> None:
    query = _load(OPENEPCIS / "Query" / "Queries" / "SimpleEventQuery.json")
    assert document_kind(query) == "query"
    assert document_kind(_load(OPENEPCIS / "Query" / "queryDocument.json")) == "query-document"
    assert document_kind(_load(OPENEPCIS / "Capture" / "Events" / "ObjectEvent.json")) == "event"


def test_the_date_time_format_is_really_checked(checker: EpcisValidator) -> None:
    doc = _load(
        OPENEPCIS / "Capture" / "Invalid" / "ObjectEvent_with_invalid_eventTime_format.json"
    )
    schema = [p for p in checker.validate(doc) if p.check == "schema"]
    assert any("is not a 'date-time'" in p.message for p in schema), schema


def test_a_prefix_must_be_declared() -> None:
    doc = _load(OPENEPCIS / "Capture" / "Documents" / "ObjectEvent_with_userExtensions.json")
    assert isinstance(doc, dict)
    event = doc["epcisBody"]["eventList"][0]
    event["undeclared:field"] = 1
    event["bizStep"] = "undeclared:step"
    problems = [str(p) for p in EpcisValidator(None).validate(doc)]
    assert any("'undeclared:field' has no declared namespace" in p for p in problems), problems
    assert any("bizStep 'undeclared:step' has no declared namespace" in p for p in problems)


def test_no_schema_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGECOUNT_EPCIS_SCHEMA", raising=False)
    with pytest.raises(SchemaUnavailableError, match="--schema PATH"):
        schema_path(None, None)
    with pytest.raises(SchemaUnavailableError, match="cannot read"):
        load_schema(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text('{"type": 5}')
    with pytest.raises(SchemaUnavailableError, match="no JSON Schema"):
        load_schema(tmp_path / "bad.json")
