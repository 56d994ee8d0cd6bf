"""``--log-format json`` / ``EDGECOUNT_LOG_FORMAT=json``: one JSON object per log line."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator

import pytest

from edgecount import logs
from edgecount.cli import build_parser


@contextlib.contextmanager
def bare_root() -> Iterator[logging.Logger]:
    """The root logger without the test runner's handlers (restored after).

    Entered inside the test body: pytest adds its capture handlers after fixtures ran.
    """
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    for handler in saved:
        root.removeHandler(handler)
    yield root
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_ts_level_logger_msg_and_exc() -> None:
    out = io.StringIO()
    with bare_root():
        logs.configure(logging.DEBUG, "json", out)
        log = logging.getLogger("edgecount.test")
        log.debug("reader %s: %d reads\nsecond line", "r1", 42)
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            log.exception("scan failed")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["level"] == "DEBUG"
    assert first["logger"] == "edgecount.test"
    assert first["msg"] == "reader r1: 42 reads\nsecond line"
    assert first["ts"].endswith("+00:00")
    assert "exc" not in first
    assert second["level"] == "ERROR"
    assert "RuntimeError: boom" in second["exc"]


def test_the_environment_chooses_json_when_no_option_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EDGECOUNT_LOG_FORMAT", "JSON")
    out = io.StringIO()
    with bare_root():
        logs.configure(logging.INFO, None, out)
        logging.getLogger("x").info("hello")
    assert json.loads(out.getvalue())["msg"] == "hello"
    monkeypatch.setenv("EDGECOUNT_LOG_FORMAT", "nonsense")
    assert logs.format_from_env() == "text"


def test_configure_again_replaces_its_own_handler_only() -> None:
    with bare_root() as root:
        logs.configure(logging.INFO, "text", io.StringIO())
        logs.configure(logging.INFO, "json", io.StringIO())
        assert len(root.handlers) == 1
        foreign = logging.NullHandler()
        root.addHandler(foreign)
        logs.configure(logging.DEBUG, "json", io.StringIO())  # someone else's: left alone
        assert foreign in root.handlers
        assert root.level == logging.INFO


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-format", "json", "gateway", "run", "-c", "x.yaml"],
        ["--log-format=json", "-v", "reconcile", "serve", "-c", "x.yaml"],
    ],
)
def test_log_format_is_a_global_option(argv: list[str]) -> None:
    args = build_parser(argv).parse_args(argv)
    assert args.log_format == "json"
    assert callable(args.handler)
