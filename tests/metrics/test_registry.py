"""The Prometheus registry renders the text format (0.0.4) and parses back."""

from __future__ import annotations

import math

import pytest

from edgecount.metrics import Metric, Registry, parse


def test_render_has_help_type_and_one_line_per_label_set() -> None:
    registry = Registry()
    reads = registry.counter("edgecount_reader_reads_total", "Tag reads.", ["reader"])
    depth = registry.gauge("edgecount_outbox_depth", "Waiting.")
    reads.set(3, reader="b")
    reads.inc(2, reader="a")
    reads.inc(reader="a")
    depth.set(0.25)
    assert registry.render() == (
        "# HELP edgecount_reader_reads_total Tag reads.\n"
        "# TYPE edgecount_reader_reads_total counter\n"
        'edgecount_reader_reads_total{reader="a"} 3\n'
        'edgecount_reader_reads_total{reader="b"} 3\n'
        "# HELP edgecount_outbox_depth Waiting.\n"
        "# TYPE edgecount_outbox_depth gauge\n"
        "edgecount_outbox_depth 0.25\n"
    )


def test_label_values_are_escaped_and_parse_back() -> None:
    registry = Registry()
    gauge = registry.gauge("g", "odd labels\nand help", ["name"])
    odd = 'a "quoted" \\ back\nslash'
    gauge.set(math.inf, name=odd)
    gauge.set(-1.5, name="plain")
    text = registry.render()
    assert "# HELP g odd labels\\nand help" in text
    samples = parse(text)
    assert samples[("g", frozenset({("name", odd)}))] == math.inf
    assert samples[("g", frozenset({("name", "plain")}))] == -1.5


def test_collectors_run_at_each_render() -> None:
    registry = Registry()
    gauge = registry.gauge("edgecount_scan_requests_queued", "Waiting.")
    figures = [1, 2]
    registry.collector(lambda: gauge.set(figures.pop(0)))
    assert "edgecount_scan_requests_queued 1\n" in registry.render()
    assert "edgecount_scan_requests_queued 2\n" in registry.render()


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("reads", "counter", ()),  # a counter ends in _total
        ("bad-name", "gauge", ()),
        ("g", "gauge", ("__reserved",)),
        ("g", "gauge", ("1st",)),
    ],
)
def test_invalid_names_are_refused(name: str, kind: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match=r"must end|invalid"):
        Metric(name, kind, "x", labels)  # type: ignore[arg-type]


def test_wrong_labels_and_decreasing_counters_are_refused() -> None:
    registry = Registry()
    counter = registry.counter("c_total", "x", ["reader"])
    with pytest.raises(ValueError, match="takes labels"):
        counter.set(1, camera="c")
    with pytest.raises(ValueError, match="cannot go down"):
        counter.inc(-1, reader="r")
    with pytest.raises(ValueError, match="registered twice"):
        registry.gauge("c_total", "again")
