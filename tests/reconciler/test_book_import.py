"""Book import: the files WMSs export, every error at once, and what an import may change."""

from __future__ import annotations

import codecs
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.book_import import (
    BookOptions,
    ImportRefusedError,
    import_book,
    parse_book,
)
from reconciler.csvread import CsvImportError
from reconciler.engine import Engine
from reconciler.model import AbcClass, BookLine, Movement
from reconciler.rules import TolerancePolicy, book_as_of
from reconciler.store import Store
from tests.reconciler.apiclient import api_client

EAN = "4006381333931"
GTIN = "04006381333931"
SKU_B = "80614141123465"
AT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)


def errors(data: bytes, **kwargs: str) -> list[str]:
    with pytest.raises(CsvImportError) as caught:
        parse_book(data, "book.csv", **kwargs)
    return [str(p) for p in caught.value.problems]


# -- what WMSs export ------------------------------------------------------------------------------


def test_cp1252_semicolons_decimal_comma_and_aliases() -> None:
    text = "Bin;EAN;Qty on hand;Unit Cost;ABC-Class;Description\r\n"
    text += f"Allée-É1;{EAN};3;1,50;a;Crème brûlée\r\nA-02;PLANO-7;2,0;1.234,5;C;x\r\n"
    book = parse_book(text.encode("cp1252"), "book.csv")
    assert (book.encoding, book.delimiter, book.ignored) == ("cp1252", ";", ("Description",))
    assert book.lines == [
        BookLine("Allée-É1", GTIN, 3, 1.5, AbcClass.A),
        BookLine("A-02", "PLANO-7", 2, 1234.5, AbcClass.C),
    ]


@pytest.mark.parametrize(
    ("encoded", "encoding", "delimiter"),
    [
        (
            codecs.BOM_UTF8 + f"location,sku,qty,unit_cost,abc\nRé-1,{EAN},3,2.5,B\n".encode(),
            "utf-8-sig",
            ",",
        ),
        (
            f"location\tsku\tqty\tunit_cost\tabc\r\nRé-1\t{EAN}\t3\t2.5\tB\r\n".encode("utf-16"),
            "utf-16",
            "\t",
        ),
        (f"Location;SKU;Qty;Price;Class\nRé-1;{EAN};3;2,5;b\n".encode(), "utf-8", ";"),
        (
            f"location,sku,qty,unit_cost,abc\nRé-1,{EAN},3,2.5,B\n".encode("latin-1"),
            "cp1252",
            ",",
        ),
    ],
    ids=["utf-8-bom", "utf-16-tab", "utf-8-semicolon", "latin-1"],
)
def test_encodings_and_delimiters_are_detected(
    encoded: bytes, encoding: str, delimiter: str
) -> None:
    book = parse_book(encoded, "book.csv")
    assert (book.encoding, book.delimiter) == (encoding, delimiter)
    assert book.lines == [BookLine("Ré-1", GTIN, 3, 2.5, AbcClass.B)]


def test_given_encoding_and_delimiter_win() -> None:
    data = "location;sku;qty;unit_cost;abc\nÀ-1;x;1;0;A\n".encode("cp1252")
    book = parse_book(data, "book.csv", encoding="latin-1", delimiter=";")
    assert book.lines == [BookLine("À-1", "x", 1, 0.0, AbcClass.A)]
    assert errors(data, encoding="utf-8") == [
        "book.csv:2: encoding: not utf-8: invalid start byte at byte 31"
    ]


@pytest.mark.parametrize(
    ("sku", "gtin14"),
    [(EAN, GTIN), ("036000291452", "00036000291452"), ("96385074", "00000096385074")],
)
def test_gtin_8_12_13_become_gtin_14(sku: str, gtin14: str) -> None:
    data = f"location,sku,qty,unit_cost,abc\nA-01,{sku},1,1,A\n".encode()
    assert parse_book(data, "b.csv").lines[0].sku == gtin14


# -- every error at once ---------------------------------------------------------------------------


def test_missing_columns_are_one_error_naming_them_and_the_header() -> None:
    (error,) = errors(b"Location;SKU;Qty\nA;1;1\n")
    assert error.startswith(
        "book.csv:1: header: missing columns unit_cost, abc in 'Location;SKU;Qty'"
    )
    assert "unit_cost: unit_cost, cost, price, unit price" in error


def test_every_bad_row_is_reported_with_file_line_and_column() -> None:
    rows = [
        "A-01,4006381333932,1,1,A",  # check digit
        "A-01,x,3.5,1,A",  # fractional qty
        "A-01,y,-1,1,A",  # negative qty
        "A-01,z,1,inf,A",  # not finite
        "A-01,w,1,-2,A",  # negative cost
        "A-01,v,1,1,D",  # class
        ",u,1,1,A",  # empty location
        f"A-02,{EAN},1,1,A",
        f"A-02,0{EAN},2,1,A",  # the same SKU after normalisation
        "A-03,t,1,1,A,extra",
    ]
    data = ("location,sku,qty,unit_cost,abc\n" + "\n".join(rows) + "\n").encode()
    assert errors(data) == [
        "book.csv:2: sku: GTIN 4006381333932 has check digit 2, expected 1"
        " (a GTIN's last digit is its check digit)",
        "book.csv:3: qty: not a whole number of units: '3.5'",
        "book.csv:4: qty: must not be negative: '-1'",
        "book.csv:5: unit_cost: not a finite number: 'inf'",
        "book.csv:6: unit_cost: must not be negative: '-2'",
        "book.csv:7: abc: must be A, B or C, got 'D'",
        "book.csv:8: location: must not be empty",
        f"book.csv:10: sku: A-02/{GTIN} appears twice (lines 9 and 10)",
        "book.csv:11: line: 6 fields, the header has 5",
    ]


def test_sixty_bad_lines_show_the_first_fifty_and_count_the_rest() -> None:
    data = "location,sku,qty,unit_cost,abc\n" + "".join(f"A-{i},x,lots,1,A\n" for i in range(60))
    with pytest.raises(CsvImportError) as caught:
        parse_book(data.encode(), "book.csv")
    shown = str(caught.value).splitlines()
    assert len(caught.value.problems) == 60
    assert len(shown) == 51
    assert shown[0] == "book.csv:2: qty: not a number: 'lots'"
    assert shown[-1] == "… and 10 more errors"


def test_an_empty_file_is_an_error() -> None:
    assert errors(b"") == [
        "book.csv:1: header: empty file: expected location, sku, qty, unit_cost, abc"
    ]


# -- what an import may change (SQLite and PostgreSQL) ---------------------------------------------

CURRENT = [
    BookLine("A-01", GTIN, 10, 2.0, AbcClass.A),
    BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),
    BookLine("A-02", GTIN, 4, 2.0, AbcClass.A),
    BookLine("B-01", SKU_B, 1, 10.0, AbcClass.B),
]


def test_dry_run_reports_the_change_and_applies_nothing(any_store: Store) -> None:
    any_store.replace_book(CURRENT, source="old", at=AT)
    new = [
        BookLine("A-01", GTIN, 12, 2.0, AbcClass.A),  # changed +4.00
        BookLine("A-01", SKU_B, 5, 10.0, AbcClass.B),  # unchanged
        BookLine("A-02", GTIN, 4, 2.0, AbcClass.A),  # unchanged
        BookLine("C-01", SKU_B, 2, 10.0, AbcClass.B),  # added 20.00
    ]  # B-01 removed (10.00)
    diff = import_book(any_store, new, source="f", at=AT, options=BookOptions(dry_run=True))
    assert (diff.applied, diff.records, diff.unchanged) == (False, 4, 2)
    assert (diff.added.records, diff.added.value) == (1, 20.0)
    assert (diff.changed.records, diff.changed.value) == (1, 4.0)
    assert (diff.removed.records, diff.removed.value) == (1, 10.0)
    assert diff.net_value == 14.0
    assert (
        diff.summary("f")
        == "book: 4 records would be imported (dry run) from f (1 added, 1 changed, 1 removed)"
    )
    assert sorted(any_store.book_lines(), key=repr) == sorted(CURRENT, key=repr)
    applied = import_book(any_store, new, source="f", at=AT, options=BookOptions())
    assert applied.applied
    assert sorted(any_store.book_lines(), key=repr) == sorted(new, key=repr)


def test_an_empty_book_is_refused_unless_allowed(any_store: Store) -> None:
    any_store.replace_book(CURRENT, source="old", at=AT)
    with pytest.raises(ImportRefusedError, match="no records"):
        import_book(any_store, [], source="f", at=AT, options=BookOptions(confirm=True))
    assert len(any_store.book_lines()) == len(CURRENT)
    options = BookOptions(allow_empty=True, confirm=True)
    assert import_book(any_store, [], source="f", at=AT, options=options).removed.records == 4
    assert any_store.book_lines() == []
    only = BookOptions(allow_empty=True, locations_only=True)
    with pytest.raises(ImportRefusedError, match="no locations to replace"):
        import_book(any_store, [], source="f", at=AT, options=only)


def test_removing_more_than_half_needs_confirm(any_store: Store) -> None:
    any_store.replace_book(CURRENT, source="old", at=AT)
    keep_one = CURRENT[:1]
    with pytest.raises(ImportRefusedError, match="remove 3 of the 4 current records"):
        import_book(any_store, keep_one, source="f", at=AT, options=BookOptions())
    assert len(any_store.book_lines()) == 4
    half = CURRENT[:2]  # removing exactly half is allowed
    assert import_book(any_store, half, source="f", at=AT, options=BookOptions()).applied


def test_locations_only_keeps_every_other_location_and_its_movements(any_store: Store) -> None:
    any_store.replace_book(CURRENT, source="old", at=AT)
    moved = Movement(AT + timedelta(hours=1), "B-01", SKU_B, 3, "ann", "PUT-1", "M-1")
    any_store.add_movements([moved])
    later = AT + timedelta(hours=2)
    before = book_as_of(any_store.book_lines(), AT, any_store.movements(), later + timedelta(1))
    new = [BookLine("A-01", GTIN, 7, 2.0, AbcClass.A)]
    options = BookOptions(locations_only=True)
    diff = import_book(any_store, new, source="part", at=later, options=options)
    assert (diff.added.records, diff.changed.records, diff.removed.records) == (0, 1, 1)
    assert any_store.book_snapshot_at() == later
    after = book_as_of(any_store.book_lines(), later, any_store.movements(), later + timedelta(1))
    assert after[("A-01", GTIN)].qty == 7
    assert ("A-01", SKU_B) not in after  # replaced: the file lists A-01 without it
    assert after[("A-02", GTIN)] == before[("A-02", GTIN)]  # kept
    assert after[("B-01", SKU_B)].qty == before[("B-01", SKU_B)].qty == 4  # kept, moved


# -- REST: the same importer behind a text/csv body ----------------------------------------------


def test_post_book_csv_body_goes_through_the_file_importer(any_store: Store) -> None:
    any_store.replace_book(CURRENT, source="old", at=AT)
    client = api_client(Engine(any_store, "s", TolerancePolicy()))
    csv_body = f"Bin;EAN;Stock;Price;Class\nA-01;{EAN};12;2,0;A\nA-01;{SKU_B};5;10;B\n"
    csv_body += f"A-02;{EAN};4;2;A\nC-01;{SKU_B};2;10;B\n"
    params = {"snapshot_at": "2026-11-21T08:00:00+01:00", "source": "wms.csv", "dry_run": "true"}
    headers = {"content-type": "text/csv; charset=windows-1252"}
    dry = client.post("/book", content=csv_body.encode("cp1252"), params=params, headers=headers)
    assert dry.json()["applied"] is False
    assert dry.json()["net_value"] == 14.0
    params["dry_run"] = "false"
    done = client.post("/book", content=csv_body.encode("cp1252"), params=params, headers=headers)
    assert done.json()["applied"] is True
    assert any_store.book_snapshot_at() == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)
    bad = client.post(
        "/book",
        content=b"location,sku,qty,unit_cost,abc\nA,x,1.5,1,A\nB,y,1,1,Q\n",
        params=params,
        headers=headers,
    )
    assert bad.status_code == 422
    assert [(e["loc"], e["msg"]) for e in bad.json()["detail"]] == [
        (["body", "line", 2, "qty"], "wms.csv:2: qty: not a whole number of units: '1.5'"),
        (["body", "line", 3, "abc"], "wms.csv:3: abc: must be A, B or C, got 'Q'"),
    ]
    no_time = client.post("/book", content=csv_body.encode(), headers=headers)
    assert no_time.status_code == 422
    assert no_time.json()["detail"][0]["loc"] == ["query", "snapshot_at"]
    assert len(any_store.book_lines()) == 4


def test_openapi_documents_both_book_bodies(any_store: Store) -> None:
    client = api_client(Engine(any_store, "s", TolerancePolicy()))
    document = client.get("/openapi.json").json()
    content = document["paths"]["/book"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv"}
    schemas = document["components"]["schemas"]
    refs = re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document))
    assert "BookSnapshotIn" in refs
    assert set(refs) <= set(schemas)  # every reference resolves
    assert set(schemas["BookSnapshotIn"]["properties"]) >= {"lines", "dry_run", "confirm"}
