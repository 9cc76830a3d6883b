"""Prometheus scrape config and Grafana provisioning/dashboard, checked without running them.

``promtool`` (Debian's prometheus package) checks the scrape config and the PromQL syntax of every panel when installed;
the dashboard must chart every metric the service exports (tests/test_deploy_dashboard.py runs the queries for real).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from deploy.files import COMPOSE, load_yaml
from deploy.stack import DASHBOARD, JOB, ROOT, dashboard_panels, dashboard_queries, substitute

from service.metrics import ServiceMetrics

PROMETHEUS_YML = ROOT / "docker" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "docker" / "grafana" / "provisioning"


def provisioned_datasource() -> dict[str, Any]:
    (datasource,) = [d for f in sorted((PROVISIONING / "datasources").glob("*.yml")) for d in load_yaml(f)["datasources"]]
    return datasource


def test_scrape_config_targets_the_api_every_5s() -> None:
    config = load_yaml(PROMETHEUS_YML)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB and job.get("metrics_path", "/metrics") == "/metrics"
    assert job["scrape_interval"] == "5s"
    (discovery,) = job["dns_sd_configs"]
    assert "api" in discovery["names"] and "api-gpu" in discovery["names"]
    assert discovery["type"] == "A" and discovery["port"] == 8000
    assert set(discovery["names"]) <= set(load_yaml(COMPOSE)["services"])


def test_promtool_accepts_scrape_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool on PATH (Debian's prometheus package brings it; .ci/run installs it)")
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS_YML)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each panel query, Grafana variables substituted, as a recording rule: promtool parses every expression."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool on PATH (Debian's prometheus package brings it; .ci/run installs it)")
    rules = [{"record": f"archcast:panel_{i}", "expr": substitute(q.expr)} for i, q in enumerate(dashboard_queries())]
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_datasource_provisioning_points_at_compose_prometheus() -> None:
    datasource = provisioned_datasource()
    assert datasource["type"] == "prometheus" and datasource["uid"]
    assert datasource["url"] == "http://prometheus:9090"
    assert datasource["jsonData"]["timeInterval"] == load_yaml(PROMETHEUS_YML)["scrape_configs"][0]["scrape_interval"]


def test_dashboard_provider_reads_the_mounted_folder() -> None:
    (provider,) = load_yaml(PROVISIONING / "dashboards" / "archcast.yml")["providers"]
    grafana = load_yaml(COMPOSE)["services"]["grafana"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]
    assert DASHBOARD.parent == ROOT / "docker" / "grafana" / "dashboards"


def test_every_panel_uses_the_provisioned_datasource() -> None:
    uid = provisioned_datasource()["uid"]
    panels = dashboard_panels()
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert "expr" in target and target["refId"]


def test_dashboard_layout() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["templating"]["list"] == []
    panels = dashboard_panels()
    assert len({p["id"] for p in panels}) == len(panels)
    assert len({p["title"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def exported_metrics() -> dict[str, str]:
    """name -> type of every metric family the service registers."""
    return {family.name: family.type for family in ServiceMetrics().registry.collect()}


def test_dashboard_charts_every_exported_metric() -> None:
    """Counters through ``_total``, histograms through their buckets (quantiles), gauges by name; so a metric added to
    service/metrics.py (e.g. a queue-wait histogram) needs a panel before this passes."""
    exprs = " ".join(q.expr for q in dashboard_queries())
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": ""}
    for name, kind in exported_metrics().items():
        assert re.search(rf"\b{name}{suffix[kind]}\b", exprs), f"no panel charts {name} ({kind})"


@pytest.mark.parametrize(
    ("title_words", "needles"),
    [
        (("request rate",), ("archcast_http_requests_total",)),
        (("error rate",), ('status=~"[45].."', '"4xx"', '"5xx"')),
        (("latency",), ("histogram_quantile(0.5,", "histogram_quantile(0.95,", "histogram_quantile(0.99,",
                        "archcast_http_request_duration_seconds_bucket")),
        (("predictions",), ("by (target)", "archcast_predictions_total")),
        (("cache hit ratio",), ('result="hit"',)),
        (("batch size",), ("archcast_batch_size_sum", "archcast_batch_size_count", "histogram_quantile(0.95,")),
        (("inference",), ("histogram_quantile(0.5,", "histogram_quantile(0.99,", "archcast_inference_seconds_bucket")),
        (("tokenize",), ("archcast_tokenize_seconds_bucket",)),
        (("predictors", "provider"), ("archcast_model_info",)),
        (("cache error",), ("archcast_cache_errors_total",)),
    ],
)
def test_dashboard_has_the_required_panels(title_words: tuple[str, ...], needles: tuple[str, ...]) -> None:
    panels = [p for p in dashboard_panels() if all(w in p["title"].lower() for w in title_words)]
    assert panels, f"no panel titled with {title_words}"
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needle in needles:
        assert needle in exprs, f"{title_words}: {needle!r} not queried"


def test_substitute_knows_grafana_variables() -> None:
    assert substitute("rate(x[$__rate_interval]) + rate(y[${__interval}])", rate_interval="30s", interval="2s") == (
        "rate(x[30s]) + rate(y[2s])"
    )
    assert substitute("increase(x[$__range])", range_="5m") == "increase(x[5m])"
    with pytest.raises(KeyError):
        substitute('label_replace(x, "a", "${1}", "b", "(.*)")')
