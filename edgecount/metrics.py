"""Prometheus metrics on ``prometheus_client``: a registry per service, filled at scrape time.

The services keep their figures in their own health objects (a driver counts its reads, the
publisher its acknowledgements), so each service registers one *custom collector* that turns
those live figures into metric families when ``/metrics`` is scraped. Every service gets its own
:class:`~prometheus_client.CollectorRegistry`, never the process-global one: tests run several
gateways in one process. Rates are left to Prometheus: export a counter
(``edgecount_reader_reads_total``) and let ``rate()`` make reads per second of it.

Example::

    def collect() -> Iterator[Family]:
        reads = counter("edgecount_reader_reads_total", "Tag reads.", ["reader"])
        reads.add_metric(["dock-1"], 42)
        yield reads

    registry = scrape_registry(collect)
    render(registry)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

__all__ = [
    "CONTENT_TYPE",
    "Family",
    "ScrapeCollector",
    "counter",
    "gauge",
    "render",
    "scrape_registry",
]

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""What :func:`render` writes: the text format 0.0.4 (our names and labels are plain ASCII)."""

Family = CounterMetricFamily | GaugeMetricFamily


def counter(name: str, help_text: str, labels: Sequence[str] = ()) -> CounterMetricFamily:
    """An empty counter family for one scrape (``name`` ends in ``_total``).

    Raises:
        ValueError: The name does not end in ``_total`` (the sample would be renamed).
    """
    if not name.endswith("_total"):
        raise ValueError(f"counter {name!r} must end in _total")
    return CounterMetricFamily(name, help_text, labels=list(labels))


def gauge(name: str, help_text: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
    """An empty gauge family for one scrape."""
    return GaugeMetricFamily(name, help_text, labels=list(labels))


class ScrapeCollector(Collector):
    """A custom collector that calls ``collect()`` at each scrape for fresh families."""

    def __init__(self, collect: Callable[[], Iterable[Family]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Family]:
        """The families of this scrape."""
        return self._collect()


def scrape_registry(collect: Callable[[], Iterable[Family]]) -> CollectorRegistry:
    """A registry of its own (not the global one) whose only collector is ``collect``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ScrapeCollector(collect))
    return registry


def render(registry: CollectorRegistry) -> str:
    """Run the collectors and return the exposition text (:data:`CONTENT_TYPE`)."""
    return generate_latest(registry).decode()
