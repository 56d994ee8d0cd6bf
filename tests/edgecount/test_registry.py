"""Our metrics helpers on prometheus_client: per-service registries, filled at each scrape."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from edgecount.metrics import Family, counter, gauge, render, scrape_registry
from tests.edgecount.exposition import parse, value


def test_render_has_help_type_and_one_line_per_label_set() -> None:
    def collect() -> Iterator[Family]:
        reads = counter("edgecount_reader_reads_total", "Tag reads.", ["reader"])
        reads.add_metric(["a"], 3)
        reads.add_metric(["b"], 3)
        depth = gauge("edgecount_outbox_depth", "Waiting.")
        depth.add_metric([], 0.25)
        yield from (reads, depth)

    assert render(scrape_registry(collect)) == (
        "# HELP edgecount_reader_reads_total Tag reads.\n"
        "# TYPE edgecount_reader_reads_total counter\n"
        'edgecount_reader_reads_total{reader="a"} 3.0\n'
        'edgecount_reader_reads_total{reader="b"} 3.0\n'
        "# HELP edgecount_outbox_depth Waiting.\n"
        "# TYPE edgecount_outbox_depth gauge\n"
        "edgecount_outbox_depth 0.25\n"
    )


def test_label_values_are_escaped_and_parse_back() -> None:
    odd = 'a "quoted" \\ back\nslash'

    def collect() -> Iterator[Family]:
        family = gauge("g", "odd labels\nand help", ["who"])
        family.add_metric([odd], math.inf)
        family.add_metric(["plain"], -1.5)
        yield family

    text = render(scrape_registry(collect))
    assert "# HELP g odd labels\\nand help" in text
    samples = parse(text)
    assert value(samples, "g", who=odd) == math.inf
    assert value(samples, "g", who="plain") == -1.5


def test_collectors_run_at_each_scrape_and_registries_are_separate() -> None:
    figures = [1, 2]

    def collect() -> Iterator[Family]:
        family = gauge("edgecount_scan_requests_queued", "Waiting.")
        family.add_metric([], figures.pop(0))
        yield family

    registry = scrape_registry(collect)
    other = scrape_registry(collect)  # a second gateway in the same process: no clash
    assert value(parse(render(registry)), "edgecount_scan_requests_queued") == 1
    assert value(parse(render(other)), "edgecount_scan_requests_queued") == 2
    assert figures == []


def test_a_counter_must_end_in_total() -> None:
    with pytest.raises(ValueError, match="must end in _total"):
        counter("reads", "x")
