"""Field types and the strict body base shared by the REST API's modules.

:mod:`reconciler.api` (discrepancies, decisions, cursors) and :mod:`reconciler.api_upload`
(book snapshots, movement logs) both build their request bodies from these; neither imports
the other's types.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import StringConstraints as Text

from reconciler.model import AbcClass

Name = Annotated[str, Text(strip_whitespace=True, min_length=1, max_length=128)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Units = Annotated[int, Field(ge=0)]
"""A quantity in whole units (``3`` or ``3.0``; ``3.5`` is refused)."""
UnitDelta = int
Abc = Annotated[AbcClass, BeforeValidator(lambda v: v.upper() if isinstance(v, str) else v)]


class StrictBody(BaseModel):
    """Base of request bodies: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")
