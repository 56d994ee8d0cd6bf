"""EPCIS export: counts → ObjectEvents (the mapping), documents passing the GS1 schema, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgecount.cli import main
from edgecount.contract import CountItem
from edgecount.sgln import encode_sgln96
from reconciler.epcis.document import event_id
from reconciler.epcis.export import Exporter, UnknownScanError
from reconciler.epcis.settings import EpcisConfig, LocationsConfig
from reconciler.store import Store, open_store
from tests.reconciler.epcis_helpers import GTIN, SCHEMA, SITE, T0, add_scan, validator

REF_TAG = encode_sgln96("0614141", "12345", 7).hex()
UNKNOWN_EPC = "e2801160600002054cc2096f"  # no GS1 header: the raw URI
GRAI_EPC = "331800004000004000000001"  # GRAI-96


@pytest.fixture
def store(tmp_path: Path) -> Store:
    opened = open_store(f"sqlite:///{tmp_path / 'reconciler.sqlite3'}")
    add_scan(
        opened,
        "s1",
        {
            "A-01": [CountItem(sku=GTIN, qty=3)],
            "A-02": [CountItem(sku="unknown", qty=2, epcs=(UNKNOWN_EPC, GRAI_EPC))],
            "A-03": [],
            "A-04": [CountItem(sku="PLANO-7", qty=1)],
        },
        incomplete=("A-04",),
    )
    return opened


def _exporter(store: Store) -> Exporter:
    locations = LocationsConfig(
        sgln={"A-01": "urn:epc:id:sgln:0614141.00001.0"}, reference_tags={REF_TAG: "A-02"}
    )
    return Exporter.configured(store, SITE, EpcisConfig(), locations, validator())


def test_each_complete_count_is_one_object_event(store: Store) -> None:
    exporter = _exporter(store)
    counts = exporter.scan_counts("s1")
    doc = exporter.document(exporter.events(counts))  # raises if the schema or semantics object
    assert validator().validate(doc) == []
    events = {e["edgecount:location"]: e for e in doc["epcisBody"]["eventList"]}
    assert sorted(events) == ["A-01", "A-02", "A-03"]  # A-04 was not complete
    a1, a2, a3 = events["A-01"], events["A-02"], events["A-03"]
    assert a1["action"] == "OBSERVE"
    assert a1["bizStep"] == "cycle_counting"
    assert a1["eventTime"] == "2026-05-01T01:59:30.000Z"
    assert a1["eventID"] == event_id(counts[0].msg_id)
    assert a1["bizLocation"] == {"id": "urn:epc:id:sgln:0614141.00001.0"}
    assert a2["bizLocation"] == {"id": "urn:epc:id:sgln:0614141.12345.7"}  # its reference tag
    assert a3["bizLocation"] == {"id": "urn:edgecount:dc1:loc:A-03"}
    assert a1["readPoint"] == {"id": "urn:edgecount:dc1:gateway:gw-01:reader:r1"}
    assert a1["quantityList"] == [{"epcClass": f"https://id.gs1.org/01/{GTIN}", "quantity": 3}]
    assert "epcList" not in a1
    assert len(a2["epcList"]) == 2
    assert f"urn:epc:raw:96.x{UNKNOWN_EPC.upper()}" in a2["epcList"]
    assert any(epc.startswith("urn:epc:id:grai:") for epc in a2["epcList"]), a2["epcList"]
    assert a3["epcList"] == []
    assert "quantityList" not in a3
    assert a1["edgecount:scanId"] == "s1"
    assert a1["edgecount:source"] == "rfid"
    assert doc["@context"][1] == {"edgecount": "urn:edgecount:epcis:"}


def test_since_and_unknown_scan(store: Store) -> None:
    exporter = _exporter(store)
    assert len(exporter.counts_since(T0.replace(hour=1))) == 3
    assert exporter.counts_since(T0) == []
    with pytest.raises(UnknownScanError):
        exporter.scan_counts("nope")


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "rec.yaml"
    path.write_text(f"site: {SITE}\nstate_dir: {tmp_path}\n{extra}", encoding="utf-8")
    return path


def test_cli_export_writes_a_valid_document(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.close()
    config = _config(tmp_path, f"epcis:\n  schema_file: {SCHEMA}\n")
    out = tmp_path / "out.jsonld"
    assert main(["epcis", "export", "-c", str(config), "--scan", "s1", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["epcisBody"]["eventList"]) == 3
    assert main(["epcis", "validate", "--schema", str(SCHEMA), str(out)]) == 0
    capsys.readouterr()
    assert main(["epcis", "export", "-c", str(config), "--since", "2026-05-01"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [e["eventID"] for e in printed["epcisBody"]["eventList"]] == [
        e["eventID"] for e in doc["epcisBody"]["eventList"]
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []  # no temp left


def test_cli_errors_are_clear(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.close()
    config = _config(tmp_path)
    assert main(["epcis", "export", "-c", str(config), "--scan", "nope"]) == 1
    assert "no scan 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad_date:
        main(["epcis", "export", "-c", str(config), "--since", "yesterday"])
    assert bad_date.value.code == 2
    assert "not a date" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["epcis", "export", "-c", str(_config(empty)), "--scan", "s1"]) == 2
    assert "no database at" in capsys.readouterr().err
    assert not (empty / "reconciler.sqlite3").exists()
