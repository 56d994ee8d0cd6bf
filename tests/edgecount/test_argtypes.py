"""edgecount.argtypes: bounded numbers on the command line."""

from __future__ import annotations

import argparse
import re

import pytest

from edgecount.argtypes import bounded


def test_bounded_accepts_the_range_and_its_ends() -> None:
    fraction = bounded(float, 0.0, 1.0, "a number")
    assert [fraction(t) for t in ("0", "0.5", "1")] == [0.0, 0.5, 1.0]
    frames = bounded(int, 1, 10, "frames")
    assert frames("10") == 10


@pytest.mark.parametrize(
    ("text", "message"),
    [("x", "expected a number, got 'x'"), ("1.5", "expected a number in 0.0..1.0, got '1.5'")],
)
def test_bounded_refuses_with_what_it_expected(text: str, message: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(message)):
        bounded(float, 0.0, 1.0, "a number")(text)


def test_exclusive_bounds_refuse_the_ends() -> None:
    inside = bounded(float, 0.0, 1.0, "a number", inclusive=False)
    assert inside("0.25") == 0.25
    for end in ("0", "1"):
        with pytest.raises(argparse.ArgumentTypeError, match="exclusive"):
            inside(end)
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape("got '2.5'")):
        bounded(int, 1, 3, "frames")("2.5")  # not a whole number


def test_argparse_turns_it_into_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="edgecount vision count")
    parser.add_argument("--conf", type=bounded(float, 0.0, 1.0, "a number"))
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--conf", "2"])
    assert exited.value.code == 2
    assert "argument --conf: expected a number in 0.0..1.0, got '2'" in capsys.readouterr().err
