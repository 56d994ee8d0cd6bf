"""Progress of a long step, drawn the way its stream can show it.

On a terminal, a live ``tqdm`` bar (redrawn in place). Anywhere else (a redirected file, a pipe,
a journal) one plain line per tenth of the work, never a ``\\r`` frame, so a log reads::

    scan A  10% 120 reads
    scan A  20% 251 reads
    ...

Example::

    with Progress("data", total=200, unit="images") as progress:
        for done in range(1, 201):
            progress.update(done)
"""

from __future__ import annotations

import sys
from types import TracebackType
from typing import NoReturn, TextIO

from tqdm import tqdm

__all__ = ["Progress"]

STEPS = 10
"""Plain lines per run (one per tenth of ``total``), plus the one at 100 %."""


class Progress:
    """A progress display on ``stream``: a live bar on a terminal, plain lines otherwise.

    Args:
        label: What is progressing (``scan A``, ``data``); starts each line.
        total: The amount of work (``done`` counts up to it).
        unit: The unit of ``done`` (``images``); empty shows percent only.
        stream: Where to draw; ``sys.stderr`` when None (stdout stays for results).
        live: Force the live bar (True) or plain lines (False); None asks ``stream.isatty()``.
    """

    def __init__(
        self,
        label: str,
        total: int,
        *,
        unit: str = "",
        stream: TextIO | None = None,
        live: bool | None = None,
    ) -> None:
        self.label = label
        self.total = max(total, 1)
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.live = _isatty(self.stream) if live is None else live
        self._step = 0  # the last tenth written as a plain line (the first is 10 %)
        self._bar: tqdm[NoReturn] | None = None
        if self.live:
            self._bar = tqdm(
                total=self.total,
                desc=label,
                unit=unit or "%",
                file=self.stream,
                leave=True,
                dynamic_ncols=True,
            )

    def update(self, done: int, note: str = "") -> None:
        """Show ``done`` of ``total`` (clamped), with a short ``note`` (``120 reads``)."""
        done = min(max(done, 0), self.total)
        if self._bar is not None:
            self._bar.n = done
            self._bar.set_postfix_str(note, refresh=False)
            self._bar.refresh()
            return
        step = done * STEPS // self.total
        if step <= self._step:
            return
        self._step = step
        counted = f" {done}/{self.total} {self.unit}" if self.unit else ""
        tail = f" {note}" if note else ""
        self.stream.write(f"{self.label} {done / self.total:4.0%}{counted}{tail}\n")
        self.stream.flush()

    def update_fraction(self, fraction: float, note: str = "") -> None:
        """Show ``fraction`` (0 to 1) of ``total`` done."""
        self.update(round(min(max(fraction, 0.0), 1.0) * self.total), note)

    def close(self) -> None:
        """End the display (the live bar's line ends; plain lines need nothing)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a stream without a terminal, or one already closed
        return False
