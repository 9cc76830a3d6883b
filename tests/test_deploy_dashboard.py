"""Every PromQL query of the Grafana dashboard returns data from a REAL Prometheus scraping the REAL service.

The service runs as ``archcast serve`` in a subprocess (the shipped predictor, else the small ONNX fixture predictor); a
Debian ``prometheus`` binary scrapes it every second with its TSDB in tmp_path. Skips when no ``prometheus`` binary is
installed (``.ci/run`` installs Debian's package). Bounded: the stack is up for well under a minute.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy.stack import (
    Prometheus,
    dashboard_queries,
    drive_traffic,
    find_prometheus,
    run_prometheus,
    run_service,
    shipped_predictor_dir,
    substitute,
)

QUERIES = dashboard_queries()


@dataclass
class Stack:
    prometheus: Prometheus
    service_url: str
    statuses: dict[int, int]
    evaluated_at: float


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Service + Prometheus, two bursts of traffic each followed by scrapes, so every series has grown between samples."""
    binary = find_prometheus()
    if binary is None:
        pytest.skip("no prometheus binary on PATH (apt-get install prometheus; .ci/run does) - the dashboard queries need one")
    predictor_dir: Path | None = shipped_predictor_dir()
    if predictor_dir is None:
        predictor_dir = request.getfixturevalue("toy_predictors")[0]
    workdir = tmp_path_factory.mktemp("deploy-stack")
    deadline = time.monotonic() + 55
    with run_service(predictor_dir, workdir) as service, \
            run_prometheus(binary, workdir, [service.url.removeprefix("http://")]) as prom:
        prom.wait_for_scrapes(1, timeout=20)  # the target is known and its series exist before the traffic
        statuses = drive_traffic(service.url, rounds=2, offset=0)
        prom.wait_for_scrapes(2, timeout=20)
        for status, count in drive_traffic(service.url, rounds=2, offset=100).items():
            statuses[status] = statuses.get(status, 0) + count
        prom.wait_for_scrapes(2, timeout=20)
        assert time.monotonic() < deadline, "the stack took too long to set up"
        yield Stack(prom, service.url, statuses, time.time())


def test_traffic_had_successes_and_client_errors(stack: Stack) -> None:
    assert stack.statuses.get(200, 0) > 0 and stack.statuses.get(422, 0) > 0 and stack.statuses.get(404, 0) > 0, stack.statuses
    assert not any(status >= 500 for status in stack.statuses), stack.statuses


def test_dashboard_has_queries() -> None:
    assert len(QUERIES) >= 10


@pytest.mark.parametrize("query", QUERIES, ids=[f"{q.panel}/{q.ref_id}" for q in QUERIES])
def test_dashboard_query_returns_data(stack: Stack, query) -> None:
    """Grafana's variables substituted, the query is accepted and yields at least one series with a finite value."""
    expr = substitute(query.expr, rate_interval="1m", interval="1s", range_="5m")
    assert "$" not in expr
    result = stack.prometheus.query(expr, at=stack.evaluated_at)
    assert result, f"no data for panel {query.panel!r}: {expr}"
    values = [float(series["value"][1]) for series in result]
    assert any(math.isfinite(v) for v in values), f"only NaN/Inf for panel {query.panel!r}: {expr} -> {result}"
