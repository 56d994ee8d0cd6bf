"""A small Prometheus registry and its text exposition format (version 0.0.4), no dependency.

Counters and gauges with labels. The services keep most figures in their own health
objects (a driver counts its reads, the publisher its acknowledgements), so a registry also
runs *collectors* at scrape time, which copy those figures into metrics (like
``prometheus_client``'s custom collectors). Rates are left to Prometheus: export a counter
(``edgecount_reader_reads_total``) and let ``rate()`` make reads per second of it.

Example::

    registry = Registry()
    reads = registry.counter("edgecount_reader_reads_total", "Tag reads.", ["reader"])
    reads.set(42, reader="dock-1")
    registry.render()
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

__all__ = ["CONTENT_TYPE", "Metric", "Registry", "parse"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Kind = Literal["counter", "gauge"]
LabelValues = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


class Metric:
    """One metric family: a name, a type, a help text and a value per label set."""

    def __init__(self, name: str, kind: Kind, help_text: str, labels: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        if kind == "counter" and not name.endswith("_total"):
            raise ValueError(f"counter {name!r} must end in _total")
        for label in labels:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r}")
        self.name = name
        self.kind: Kind = kind
        self.help = help_text
        self.labels = tuple(labels)
        self.values: dict[LabelValues, float] = {}

    def _key(self, labels: dict[str, str]) -> LabelValues:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes labels {self.labels}, got {tuple(labels)}")
        return tuple(str(labels[name]) for name in self.labels)

    def set(self, value: float, **labels: str) -> None:
        """Set the value for these labels (a counter copied from a running total)."""
        self.values[self._key(labels)] = float(value)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Add ``amount`` (>= 0 for a counter) to the value for these labels."""
        if self.kind == "counter" and amount < 0:
            raise ValueError(f"counter {self.name} cannot go down")
        key = self._key(labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: str) -> float | None:
        """The value for these labels, if set."""
        return self.values.get(self._key(labels))

    def clear(self) -> None:
        """Forget every label set (a collector does, before copying current figures)."""
        self.values.clear()

    def render(self) -> Iterable[str]:
        """The family's lines of the text format."""
        help_text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        yield f"# HELP {self.name} {help_text}"
        yield f"# TYPE {self.name} {self.kind}"
        for key, value in sorted(self.values.items()):
            pairs = ",".join(
                f'{name}="{_escape(v)}"' for name, v in zip(self.labels, key, strict=True)
            )
            yield (
                f"{self.name}{{{pairs}}} {_number(value)}"
                if pairs
                else (f"{self.name} {_number(value)}")
            )


class Registry:
    """The metrics of one process, and the collectors that refresh them at scrape time."""

    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self._collectors: list[Callable[[], None]] = []

    def _add(self, metric: Metric) -> Metric:
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Metric:
        """Register a counter (its name ends in ``_total``)."""
        return self._add(Metric(name, "counter", help_text, labels))

    def gauge(self, name: str, help_text: str, labels: Sequence[str] = ()) -> Metric:
        """Register a gauge."""
        return self._add(Metric(name, "gauge", help_text, labels))

    def collector(self, collect: Callable[[], None]) -> None:
        """Run ``collect()`` before each rendering (it sets metrics from live figures)."""
        self._collectors.append(collect)

    def render(self) -> str:
        """Run the collectors, then the whole exposition text (ends with a newline)."""
        for collect in self._collectors:
            collect()
        lines = [line for metric in self.metrics.values() for line in metric.render()]
        return "\n".join(lines) + "\n"


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Samples of an exposition text: (name, {(label, value)}) → value (for tests, tools)."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a sample line: {line!r}")
        name, labels, value = match.groups()
        pairs = frozenset(
            (key, raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for key, raw in _PAIR.findall(labels or "")
        )
        samples[(name, pairs)] = float(value)
    return samples
