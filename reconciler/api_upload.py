"""``POST /book`` and ``POST /movements``: the WMS's uploads, through the CLI's importers.

``POST /book`` takes the JSON snapshot (:class:`BookSnapshotIn`) or a ``text/csv`` body (the
book CSV of ``edgecount book import``, with ``?snapshot_at=&source=``); both go through
:func:`reconciler.book_import.import_book`: GTIN SKUs become GTIN-14, an empty book or a mass
removal is refused (409) unless allowed / confirmed, ``dry_run`` applies nothing, and the answer
says what changed. ``POST /movements`` is idempotent on each movement's ``movement_id``
(:func:`reconciler.movement_import.import_movements`).

Errors: 422 lists every bad line or item (``detail``: ``type``, ``loc``, ``msg``; a CSV line's
``msg`` is the CLI's ``FILE:LINE: column: why``), 409 a refused import.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
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
    BookOptions,
    ImportRefusedError,
    check_unique,
    import_book,
    parse_book,
)
from reconciler.csvread import CsvImportError, Problem
from reconciler.engine import Engine
from reconciler.model import BookLine, Movement
from reconciler.movement_import import check_unique_ids, import_movements

CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain"})

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


def add_upload_routes(
    app: FastAPI, engine: Engine, booking: Callable[[Request], Awaitable[Identity]]
) -> None:
    """Add ``POST /book`` and ``POST /movements`` to the API.

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

    @app.post("/movements")
    async def add_movements(body: MovementsIn, by: Identity = uploading) -> MovementsOut:
        """Add movements to the log; one whose ``movement_id`` was imported before is skipped."""
        return await run_in_threadpool(_movements, engine, body, by.user)


__all__ = [
    "BookImportOut",
    "BookLineIn",
    "BookSnapshotIn",
    "ChangeOut",
    "MovementIn",
    "MovementsIn",
    "MovementsOut",
    "add_upload_routes",
]
