"""The exit statuses are an interface: their values are pinned, and the docs list the same."""

from __future__ import annotations

import re
from pathlib import Path

from edgecount.exitcodes import ExitCode

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_values_do_not_change() -> None:
    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "FAILED": 1,
        "USAGE": 2,
        "INCOMPLETE": 3,
        "UNDELIVERED": 4,
        "TIMEOUT": 5,
        "BROKEN_PIPE": 141,
    }


def test_the_scan_table_in_the_docs_uses_these_codes() -> None:
    text = DOCS.read_text()
    table = text[text.index("Exit codes of `scan` and `scan-request`") :].split("\n\n")[1]
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert documented == {0, 2, 3, 4, 5}
    assert documented <= {int(code) for code in ExitCode}
