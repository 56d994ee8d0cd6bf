"""Fuzz targets log every rejection: quiet those loggers for each fuzz test, then restore them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fuzz.targets import quiet_logs, restore_logs


@pytest.fixture(autouse=True)
def _quiet_logs() -> Iterator[None]:
    levels = quiet_logs()
    yield
    restore_logs(levels)
