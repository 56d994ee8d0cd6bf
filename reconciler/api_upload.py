"""``POST /book``, ``POST /book/preview`` and ``POST /movements``: the WMS's uploads.

``POST /book`` takes the JSON snapshot (:class:`BookSnapshotIn`) or a ``text/csv`` body (the
book CSV of ``edgecount book import``, with ``?snapshot_at=&source=``); both go through
:func:`reconciler.book_import.import_book`: GTIN SKUs become GTIN-14, an empty book or a mass
removal is refused (409) unless allowed / confirmed, ``dry_run`` applies nothing, and the answer
says what changed. ``POST /book/preview`` takes the same CSV and applies nothing: it answers
what ``POST /book`` would do, record by record, and a bad file's every bad line with 200 (a
preview of a bad file is a preview too: nothing would be applied). ``POST /movements`` is
idempotent on each movement's ``movement_id``
(:func:`reconciler.movement_import.import_movements`).

Errors: 415 a preview that is not ``text/csv``; 422 lists every bad line or item (``detail``:
``type``, ``loc``, ``msg``; a CSV line's ``msg`` is the CLI's ``FILE:LINE: column: why``), 409
a refused import.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic import StringConstraints as Text

from edgecount.gtin import GtinError, normalise_sku
from reconciler.api_types import Abc, Amount, Name, StrictBody, UnitDelta, Units
from reconciler.auth.identity import Identity
from reconciler.book_import import (
    BookDiff,
    BookFile,
    BookOptions,
    ImportRefusedError,
    check_unique,
    diff_book,
    import_book,
    parse_book,
)
from reconciler.book_preview import LineChange, changed_lines
from reconciler.csvread import CsvImportError, Problem
from reconciler.engine import Engine
from reconciler.model import BookLine, Movement
from reconciler.movement_import import check_unique_ids, import_movements

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})
PREVIEW_LINES = 1000
"""Most changed records, and most bad lines, a preview lists (the rest are counted)."""

# -- requests ------------------------------------------------------------------------------------


class BookLineIn(StrictBody):
    """One record of a book snapshot (the columns of the book CSV)."""

    location: Name
    sku: Name
    qty: Units
    unit_cost: Amount
    abc: Abc


class BookSnapshotIn(StrictBody):
    """The book as of ``snapshot_at``: the whole book, or its locations (``locations_only``)."""

    snapshot_at: AwareDatetime
    source: Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=256)]
    lines: list[BookLineIn]
    dry_run: bool = False
    allow_empty: bool = False
    confirm: bool = False
    locations_only: bool = False


class MovementIn(StrictBody):
    """One stock movement from the WMS log, with the WMS's own id of it."""

    movement_id: Name
    ts: AwareDatetime
    location: Name
    sku: Name
    qty_delta: UnitDelta
    user: Name
    doc: Annotated[str, Text(strip_whitespace=True, max_length=256)] = ""


class MovementsIn(StrictBody):
    """Movements to add to the log (those imported before are skipped)."""

    movements: list[MovementIn]


# -- responses -----------------------------------------------------------------------------------


class ChangeOut(BaseModel):
    """Records of one kind of change and their value (sum of qty * unit_cost; for changed
    records the change of value)."""

    records: int
    value: float


class BookImportOut(BaseModel):
    """What a book upload changed (or would change: ``applied`` false for a dry run)."""

    applied: bool
    records: int
    added: ChangeOut
    changed: ChangeOut
    removed: ChangeOut
    unchanged: int
    net_value: float


class MovementsOut(BaseModel):
    """Movements added, and movements skipped because their id was imported before."""

    added: int
    already_imported: int


class LineChangeOut(BaseModel):
    """One record an import would add, change or remove (``old_*``/``new_*`` null if absent)."""

    change: str
    location: str
    sku: str
    old_qty: int | None
    new_qty: int | None
    old_unit_cost: float | None
    new_unit_cost: float | None
    old_abc: str | None
    new_abc: str | None


class ProblemOut(BaseModel):
    """One bad line of the file: its number (1 is the header), the column, why."""

    line: int
    column: str
    why: str


class BookPreviewOut(BaseModel):
    """What ``POST /book`` would do with a file; nothing is applied.

    ``would_apply`` is false when the file has bad lines (``problems``: every one, up to
    1,000, ``problems_left_out`` the rest) or the import would be refused (``refused``).
    ``lines`` are the changed records by location and SKU (up to 1,000; ``lines_left_out``).
    """

    would_apply: bool
    records: int
    locations: int
    added: ChangeOut
    changed: ChangeOut
    removed: ChangeOut
    unchanged: int
    net_value: float
    lines: list[LineChangeOut]
    lines_left_out: int
    problems: list[ProblemOut]
    problems_left_out: int
    refused: str | None
    encoding: str | None
    delimiter: str | None
    ignored_columns: list[str]


# -- blocking helpers (run in worker threads) ---------------------------------------------------


def _invalid(problems: Sequence[Problem], loc: Any, *, csv: bool = False) -> RequestValidationError:
    # a CSV line says FILE:LINE: column: why, as the CLI does; a JSON item just why
    return RequestValidationError(
        [{"type": "value_error", "loc": loc(p), "msg": str(p) if csv else p.why} for p in problems]
    )


def _json_body(raw: bytes) -> BookSnapshotIn:
    try:
        data = json.loads(raw)
        return BookSnapshotIn.model_validate(data)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": exc.msg}
        raise RequestValidationError([error]) from None
    except ValidationError as exc:
        errors = [
            {"type": e["type"], "loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors()
        ]
        raise RequestValidationError(errors) from None


def _gtin14(sku: str, loc: tuple[Any, ...]) -> str:
    try:
        return normalise_sku(sku)
    except GtinError as exc:
        error = {"type": "value_error", "loc": loc, "msg": str(exc)}
        raise RequestValidationError([error]) from None


def _json_lines(body: BookSnapshotIn) -> list[BookLine]:
    lines = [
        BookLine(b.location, _gtin14(b.sku, ("body", "lines", i, "sku")), b.qty, b.unit_cost, b.abc)
        for i, b in enumerate(body.lines)
    ]
    try:
        check_unique(lines, "lines")
    except CsvImportError as exc:
        raise _invalid(exc.problems, lambda p: ("body", "lines", p.line)) from None
    return lines


def _book(
    engine: Engine, lines: list[BookLine], source: str, at: datetime, options: BookOptions
) -> BookImportOut:
    try:
        diff: BookDiff = import_book(engine.store, lines, source=source, at=at, options=options)
    except ImportRefusedError as exc:
        raise HTTPException(409, str(exc)) from None
    return BookImportOut(
        applied=diff.applied,
        records=diff.records,
        added=ChangeOut(records=diff.added.records, value=diff.added.value),
        changed=ChangeOut(records=diff.changed.records, value=diff.changed.value),
        removed=ChangeOut(records=diff.removed.records, value=diff.removed.value),
        unchanged=diff.unchanged,
        net_value=diff.net_value,
    )


def _csv_book(raw: bytes, source: str, encoding: str | None) -> list[BookLine]:
    try:
        return parse_book(raw, source, encoding=encoding).lines
    except CsvImportError as exc:
        loc = lambda p: ("body", "line", p.line, p.column)  # noqa: E731
        raise _invalid(exc.problems, loc, csv=True) from None
    except LookupError:
        error = {"type": "value_error", "loc": ("query", "encoding"), "msg": "unknown encoding"}
        raise RequestValidationError([error]) from None


def _line_out(change: LineChange) -> LineChangeOut:
    old, new = change.old, change.new
    return LineChangeOut(
        change=change.change.value,
        location=change.location,
        sku=change.sku,
        old_qty=None if old is None else old.qty,
        new_qty=None if new is None else new.qty,
        old_unit_cost=None if old is None else old.unit_cost,
        new_unit_cost=None if new is None else new.unit_cost,
        old_abc=None if old is None else old.abc.value,
        new_abc=None if new is None else new.abc.value,
    )


def _bad_file(problems: Sequence[Problem]) -> BookPreviewOut:
    nothing = ChangeOut(records=0, value=0.0)
    return BookPreviewOut(
        would_apply=False,
        records=0,
        locations=0,
        added=nothing,
        changed=nothing,
        removed=nothing,
        unchanged=0,
        net_value=0.0,
        lines=[],
        lines_left_out=0,
        problems=[ProblemOut(line=p.line, column=p.column, why=p.why) for p in problems][
            :PREVIEW_LINES
        ],
        problems_left_out=max(0, len(problems) - PREVIEW_LINES),
        refused=None,
        encoding=None,
        delimiter=None,
        ignored_columns=[],
    )


def _preview(
    engine: Engine, raw: bytes, source: str, encoding: str | None, options: BookOptions
) -> BookPreviewOut:
    try:
        parsed: BookFile = parse_book(raw, source, encoding=encoding)
    except CsvImportError as exc:
        return _bad_file(exc.problems)
    except LookupError:
        error = {"type": "value_error", "loc": ("query", "encoding"), "msg": "unknown encoding"}
        raise RequestValidationError([error]) from None
    refused = None
    try:  # the importer's own checks, on its own read of the book
        import_book(
            engine.store,
            parsed.lines,
            source=source,
            at=datetime.now(UTC),
            options=dataclasses.replace(options, dry_run=True),
        )
    except ImportRefusedError as exc:
        refused = str(exc)
    current = engine.store.book_lines()
    diff = diff_book(current, parsed.lines, locations_only=options.locations_only)
    changes = changed_lines(current, parsed.lines, locations_only=options.locations_only)
    return BookPreviewOut(
        would_apply=refused is None,
        records=diff.records,
        locations=len({line.location for line in parsed.lines}),
        added=ChangeOut(records=diff.added.records, value=diff.added.value),
        changed=ChangeOut(records=diff.changed.records, value=diff.changed.value),
        removed=ChangeOut(records=diff.removed.records, value=diff.removed.value),
        unchanged=diff.unchanged,
        net_value=diff.net_value,
        lines=[_line_out(c) for c in changes[:PREVIEW_LINES]],
        lines_left_out=max(0, len(changes) - PREVIEW_LINES),
        problems=[],
        problems_left_out=0,
        refused=refused,
        encoding=parsed.encoding,
        delimiter=parsed.delimiter,
        ignored_columns=list(parsed.ignored),
    )


def _movements(engine: Engine, body: MovementsIn, actor: str) -> MovementsOut:
    moves = [
        Movement(
            m.ts,
            m.location,
            _gtin14(m.sku, ("body", "movements", i, "sku")),
            m.qty_delta,
            m.user,
            m.doc,
            m.movement_id,
        )
        for i, m in enumerate(body.movements)
    ]
    try:
        check_unique_ids(moves, "movements")
        done = import_movements(engine.store, moves, source="movements", actor=actor)
    except CsvImportError as exc:
        loc = lambda p: ("body", "movements", p.line, p.column)  # noqa: E731
        raise _invalid(exc.problems, loc) from None
    return MovementsOut(added=done.added, already_imported=done.already)


# -- routes --------------------------------------------------------------------------------------

_CSV_BODY = {
    "requestBody": {"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}}
}
_BOOK_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/BookSnapshotIn"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


def _document_book_body(app: FastAPI) -> None:
    """Put :class:`BookSnapshotIn` into the OpenAPI components (``POST /book`` reads its body
    itself, to take CSV too, so FastAPI does not see the model)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "BookSnapshotIn" not in components:
            model = BookSnapshotIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(model.pop("$defs", {}))
            components["BookSnapshotIn"] = model
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_preview_route(app: FastAPI, engine: Engine, uploading: Any) -> None:
    """``POST /book/preview``: a book CSV, compared record by record, applied never."""

    @app.post(
        "/book/preview",
        openapi_extra=_CSV_BODY,
        dependencies=[uploading],
        responses={415: {"description": "not a text/csv body"}},
    )
    async def preview_book_route(
        request: Request,
        *,
        allow_empty: bool = False,
        confirm: bool = False,
        locations_only: bool = False,
        source: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        encoding: Annotated[str | None, Query(max_length=32)] = None,
    ) -> BookPreviewOut:
        """What ``POST /book`` would do with a book CSV, record by record; applies nothing."""
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in CSV_TYPES:
            raise HTTPException(415, "send the book as a text/csv body")
        raw = await request.body()
        options = BookOptions(True, allow_empty, confirm, locations_only)
        src = source or "request"
        return await run_in_threadpool(_preview, engine, raw, src, encoding, options)


def add_upload_routes(
    app: FastAPI, engine: Engine, booking: Callable[[Request], Awaitable[Identity]]
) -> None:
    """Add ``POST /book``, ``POST /book/preview`` and ``POST /movements`` to the API.

    Args:
        app: The application.
        engine: The engine.
        booking: The dependency that admits who may upload (the ``book`` scope).
    """
    _document_book_body(app)
    uploading = Depends(booking)  # a default, not Annotated: it is a local

    @app.post("/book", openapi_extra=_BOOK_BODY, dependencies=[uploading])
    async def import_book_route(
        request: Request,
        *,
        dry_run: bool = False,
        allow_empty: bool = False,
        confirm: bool = False,
        locations_only: bool = False,
        snapshot_at: Annotated[AwareDatetime | None, Query()] = None,
        source: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
        encoding: Annotated[str | None, Query(max_length=32)] = None,
    ) -> BookImportOut:
        """Import a book snapshot (JSON, or a ``text/csv`` body with ``?snapshot_at=``)."""
        raw = await request.body()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        options = BookOptions(dry_run, allow_empty, confirm, locations_only)
        if media in CSV_TYPES:
            if snapshot_at is None:
                error = {
                    "type": "missing",
                    "loc": ("query", "snapshot_at"),
                    "msg": "Field required",
                }
                raise RequestValidationError([error])
            src = source or "request"
            lines = await run_in_threadpool(_csv_book, raw, src, encoding)
            return await run_in_threadpool(_book, engine, lines, src, snapshot_at, options)
        body = _json_body(raw)
        options = BookOptions(
            dry_run or body.dry_run,
            allow_empty or body.allow_empty,
            confirm or body.confirm,
            locations_only or body.locations_only,
        )
        lines = _json_lines(body)
        return await run_in_threadpool(
            _book, engine, lines, source or body.source, body.snapshot_at, options
        )

    _add_preview_route(app, engine, uploading)

    @app.post("/movements")
    async def add_movements(body: MovementsIn, by: Identity = uploading) -> MovementsOut:
        """Add movements to the log; one whose ``movement_id`` was imported before is skipped."""
        return await run_in_threadpool(_movements, engine, body, by.user)


__all__ = [
    "BookImportOut",
    "BookLineIn",
    "BookPreviewOut",
    "BookSnapshotIn",
    "ChangeOut",
    "LineChangeOut",
    "MovementIn",
    "MovementsIn",
    "MovementsOut",
    "ProblemOut",
    "add_upload_routes",
]
