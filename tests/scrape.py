"""Reading ``GET /metrics`` in tests: every sample, parsed by prometheus-client's own text parser."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families


@dataclass(frozen=True)
class Scrape:
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def get(self, name: str, **labels: str) -> float:
        """Value of the sample ``name`` with exactly these labels; 0 when the series does not exist (yet)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def since(self, earlier: Scrape, name: str, **labels: str) -> float:
        """How much the sample grew from the ``earlier`` scrape to this one."""
        return self.get(name, **labels) - earlier.get(name, **labels)

    def label_values(self, name: str, label: str) -> set[str]:
        return {dict(key)[label] for sample, key in self.samples if sample == name and label in dict(key)}


def scrape_text(text: str) -> Scrape:
    samples = {
        (s.name, frozenset(s.labels.items())): s.value for family in text_string_to_metric_families(text) for s in family.samples
    }
    return Scrape(samples)


def scrape(client: TestClient) -> Scrape:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return scrape_text(response.text)
