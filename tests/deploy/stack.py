"""A local observability stack for tests and docs: the real ArchCast service (uvicorn in a subprocess) scraped by a real
Prometheus, traffic to drive it, and the PromQL of the Grafana dashboard evaluated against it.

Used by ``tests/test_deploy_dashboard.py`` and ``docs/render_dashboard.py``; nothing here needs Docker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "archcast.json"
SHIPPED_PREDICTORS = ROOT / "model" / "predictors"
JOB = "archcast"  # the job name of docker/prometheus/prometheus.yml, which the dashboard's `up{job=...}` relies on
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_prometheus() -> str | None:
    """The ``prometheus`` binary on PATH (Debian's package installs /usr/bin/prometheus), or ``ARCHCAST_TEST_PROMETHEUS``."""
    explicit = os.environ.get("ARCHCAST_TEST_PROMETHEUS")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("prometheus")


def shipped_predictor_dir() -> Path | None:
    """``model/predictors`` when it holds a card and its ONNX file, else None."""
    cards = list(SHIPPED_PREDICTORS.glob("*.card.json"))
    return SHIPPED_PREDICTORS if cards and list(SHIPPED_PREDICTORS.glob("*.onnx")) else None


def get_json(url: str, timeout: float = 5.0) -> tuple[int, Any]:
    """(status, body) of a GET: parsed JSON, else the text; 4xx/5xx are returned, connection errors raise ``OSError``."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    try:
        return status, json.loads(body or b"null")
    except json.JSONDecodeError:
        return status, body.decode(errors="replace")


def request(url: str, method: str = "GET", body: object | None = None, timeout: float = 30.0) -> int:
    """Status code of one HTTP request with an optional JSON body (4xx/5xx are returned, not raised)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _wait(check: Any, process: subprocess.Popen[bytes], log: Path, what: str, timeout: float) -> float:
    """Poll ``check()`` until true; seconds it took. Fails with the log tail if the process exits or time runs out."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() - start > timeout:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            state = f"exited with {process.returncode}" if process.poll() is not None else f"not ready after {timeout:.0f} s"
            raise RuntimeError(f"{what} {state}:\n{tail}")
        time.sleep(0.05)


@dataclass
class Service:
    """An ``archcast serve`` process on 127.0.0.1."""

    url: str
    process: subprocess.Popen[bytes]
    ready_seconds: float


def service_env(predictor_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a hermetic service process: inherited ``ARCHCAST_*`` and multiprocess settings are dropped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHCAST_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(
        ARCHCAST_HOST="127.0.0.1", ARCHCAST_PORT=str(port), ARCHCAST_PREDICTOR_DIR=str(predictor_dir), ARCHCAST_PROVIDERS="cpu",
        ARCHCAST_ORT_THREADS="1", ARCHCAST_LOG_LEVEL="warning", PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


@contextmanager
def run_service(predictor_dir: Path, workdir: Path, timeout: float = 60.0, **env: str) -> Iterator[Service]:
    """``archcast serve`` (the console command's code path) on a free port, yielded once ``GET /readyz`` answers 200."""
    port = free_port()
    log = workdir / f"archcast-{port}.log"
    command = [sys.executable, "-c", "import sys; from archcast.cli import main; sys.exit(main())", "serve"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=service_env(predictor_dir, port, **env),
                                   cwd=workdir)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = _wait(lambda: get_json(f"{url}/readyz", 2.0)[0] == 200, process, log, "archcast serve", timeout)
        yield Service(url, process, ready)
    finally:
        _stop(process)


@dataclass
class Prometheus:
    """A Prometheus server on 127.0.0.1 scraping the given targets as job ``archcast``."""

    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """``/api/v1/query`` result list (instant vector / scalar as a one-element list)."""
        params = {"query": expr, **({"time": f"{at:.3f}"} if at is not None else {})}
        status, body = get_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode(params)}")
        if status != 200 or body.get("status") != "success":
            raise ValueError(f"Prometheus rejected {expr!r}: {body}")
        data = body["data"]
        return [{"metric": {}, "value": data["result"]}] if data["resultType"] in ("scalar", "string") else data["result"]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """``/api/v1/query_range`` result: one ``{"metric", "values"}`` per series."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step}"}
        status, body = get_json(f"{self.url}/api/v1/query_range?{urllib.parse.urlencode(params)}")
        if status != 200 or body.get("status") != "success":
            raise ValueError(f"Prometheus rejected {expr!r}: {body}")
        return body["data"]["result"]

    def scrapes(self) -> int:
        """Samples of ``up`` stored for the job in the last 5 minutes, over all targets (= successful and failed scrapes)."""
        result = self.query(f'sum(count_over_time(up{{job="{JOB}"}}[5m]))')
        return int(float(result[0]["value"][1])) if result else 0

    def wait_for_scrapes(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` more scrapes of the job than now are stored."""
        target = self.scrapes() + count
        deadline = time.monotonic() + timeout
        while self.scrapes() < target:
            if time.monotonic() > deadline:
                raise TimeoutError(f"fewer than {count} new scrapes in {timeout} s")
            time.sleep(0.1)


def prometheus_config(targets: list[str], scrape_interval: str = "1s") -> str:
    """A scrape config (JSON is valid YAML) for ``targets`` (host:port) as job ``archcast``."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [{"job_name": JOB, "metrics_path": "/metrics", "scrape_interval": scrape_interval,
                            "scrape_timeout": scrape_interval, "static_configs": [{"targets": targets}]}],
    }
    return json.dumps(config, indent=1)


@contextmanager
def run_prometheus(binary: str, workdir: Path, targets: list[str], scrape_interval: str = "1s",
                   timeout: float = 30.0) -> Iterator[Prometheus]:
    """A real ``prometheus`` with its TSDB in ``workdir``, yielded once ``/-/ready`` answers 200."""
    port = free_port()
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval))
    log = workdir / "prometheus.log"
    command = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    server = Prometheus(f"http://127.0.0.1:{port}", process)
    try:
        _wait(lambda: get_json(f"{server.url}/-/ready", 2.0)[0] == 200, process, log, "prometheus", timeout)
        yield server
    finally:
        _stop(process)


def nb201_arch(ops: tuple[str, ...] | list[str]) -> str:
    """NB201 arch string of the six edge operations (in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2)."""
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def nb201_cells(count: int, offset: int = 0) -> list[dict[str, str]]:
    """``count`` distinct NB201 cells, deterministic in ``offset`` (each cell index read as 6 base-5 digits)."""
    cells = []
    for index in range(offset, offset + count):
        digits = [(index * 7919 % 15625) // 5**k % 5 for k in range(6)]
        cells.append({"space": "nb201", "arch": nb201_arch([NB201_OPS[d] for d in digits])})
    return cells


def drive_traffic(url: str, rounds: int = 3, batch: int = 8, offset: int = 0) -> dict[int, int]:
    """Good predictions (new cells, then the same ones again for cache hits) and some 4xx; counts of each status."""
    statuses: dict[int, int] = {}

    def count(status: int) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    for r in range(rounds):
        cells = nb201_cells(batch, offset + r * batch)
        count(request(f"{url}/v1/predict", "POST", {"architectures": cells}))
        count(request(f"{url}/v1/predict", "POST", {"architectures": cells}))  # all cache hits
        count(request(f"{url}/v1/predict", "POST", {"architectures": cells[:1], "targets": None}))
        count(request(f"{url}/v1/predict", "POST", {"architectures": []}))  # 422 empty batch
        count(request(f"{url}/v1/predict", "POST", {"architectures": [{"space": "nb201", "arch": "|bogus~0|+|"}]}))  # 422
        count(request(f"{url}/v1/predict", "GET"))  # 405
        count(request(f"{url}/no/such/route"))  # 404, route "unmatched"
        count(request(f"{url}/v1/predictors"))
        count(request(f"{url}/healthz"))
    return statuses


@dataclass(frozen=True)
class PanelQuery:
    """One PromQL target of a dashboard panel."""

    panel: str
    panel_type: str
    ref_id: str
    expr: str
    legend: str


def dashboard_panels(path: Path = DASHBOARD) -> list[dict[str, Any]]:
    """Every panel of the dashboard, rows' nested panels included, in order."""
    panels: list[dict[str, Any]] = []
    for panel in json.loads(path.read_text())["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def dashboard_queries(path: Path = DASHBOARD) -> list[PanelQuery]:
    """Every ``targets[].expr`` of every panel."""
    return [
        PanelQuery(p.get("title", ""), p.get("type", ""), t.get("refId", ""), t["expr"], t.get("legendFormat", ""))
        for p in dashboard_panels(path) for t in p.get("targets", []) if "expr" in t
    ]


GRAFANA_VARIABLE = re.compile(r"\$(?:\{(\w+)(?::\w+)?\}|(\w+))|\[\[(\w+)\]\]")


def substitute(expr: str, rate_interval: str = "1m", interval: str = "1s", range_: str = "5m") -> str:
    """The expression with Grafana's built-in variables replaced, as Grafana would before sending it to Prometheus.

    An unknown variable raises ``KeyError``: the dashboard defines no template variables of its own.
    """
    seconds = _seconds(range_)
    values = {
        "__rate_interval": rate_interval, "__interval": interval, "interval": interval, "__range": range_,
        "__range_s": str(int(seconds)), "__range_ms": str(int(seconds * 1000)),
        "__interval_ms": str(int(_seconds(interval) * 1000)),
    }

    def replace(match: re.Match[str]) -> str:
        name = next(g for g in match.groups() if g)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    return GRAFANA_VARIABLE.sub(replace, expr)


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", duration)
    if match is None:
        raise ValueError(f"not a duration: {duration!r}")
    return float(match.group(1)) * units[match.group(2)]
