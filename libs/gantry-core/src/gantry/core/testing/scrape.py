"""Read a running server's `/metrics` the way Prometheus does, for tests."""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gantry.core.metrics import CollectorRegistry
from gantry.core.server import RunningServer


class Scrape:
    """One scrape: sample values by series name and labels."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                key = (sample.name, frozenset(sample.labels.items()))
                self._samples[key] = sample.value

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; 0 when the series does not exist (yet)."""
        return self._samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """Sum of every series of `name` whose labels include `labels`."""
        want = set(labels.items())
        return sum(v for (n, got), v in self._samples.items() if n == name and want <= got)

    def labels(self, name: str) -> list[Mapping[str, str]]:
        return [dict(got) for (n, got) in self._samples if n == name]


def scrape(running: RunningServer, timeout_s: float = 5.0) -> Scrape:
    """GET the server's `/metrics` over HTTP (its settings must give a metrics port)."""
    endpoint = running.metrics_endpoint
    if endpoint is None:
        raise RuntimeError("the server has no metrics endpoint (metrics_port=0)")
    url = f"http://127.0.0.1:{endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return Scrape(response.read().decode())


def read_registry(registry: CollectorRegistry) -> Scrape:
    """The registry's exposition text, parsed as a scrape would (no HTTP)."""
    return Scrape(generate_latest(registry).decode())
