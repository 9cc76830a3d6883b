"""Render docs/dashboard.png: the Grafana dashboard's panels with real data, without Grafana.

Runs the same stack as tests/test_deploy_dashboard.py (``archcast serve`` on the shipped predictor, a real Debian
``prometheus`` scraping it every second), drives a varying load for ``--seconds``, then evaluates every panel's PromQL
over the run with ``/api/v1/query_range`` and draws the panels with matplotlib at their dashboard positions.

    .venv/bin/python docs/render_dashboard.py --seconds 120 --out docs/dashboard.png
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.gridspec import GridSpec  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from deploy.stack import (  # noqa: E402
    DASHBOARD,
    Prometheus,
    dashboard_panels,
    find_prometheus,
    nb201_cells,
    request,
    run_prometheus,
    run_service,
    shipped_predictor_dir,
    substitute,
)

RATE_WINDOW = "15s"  # what $__rate_interval would be for a 1 s scrape interval at this zoom


def load(url: str, seconds: float, seed: int = 0) -> dict[int, int]:
    """A load that ramps up, spikes and calms down; the share of repeated cells (cache hits) and of bad requests varies."""
    rng = random.Random(seed)
    statuses: dict[int, int] = {}
    next_cell = 0
    seen: list[dict[str, str]] = []
    start = time.monotonic()

    def one(kind: str, body: object | None = None) -> None:
        if kind == "predict":
            status = request(f"{url}/v1/predict", "POST", body)
        elif kind == "bad":
            bad = rng.choice([{"architectures": []}, {"architectures": [{"space": "x"}]}])  # 422: empty batch, unknown space
            status = request(f"{url}/v1/predict", "POST", bad)
        elif kind == "missing":
            status = request(f"{url}/v1/nothing-here")
        else:
            status = request(f"{url}/v1/predictors")
        statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(max_workers=6) as pool:
        while (elapsed := time.monotonic() - start) < seconds:
            phase = elapsed / seconds
            rps = 6 + 30 * math.sin(math.pi * phase) ** 2 + (25 if 0.55 < phase < 0.65 else 0)
            repeat_share = 0.2 + 0.6 * phase
            for _ in range(max(1, round(rps / 4))):  # one tick = 0.25 s
                size = rng.choice([1, 2, 4, 8, 16, 32])
                if seen and rng.random() < repeat_share:
                    cells = rng.sample(seen, min(size, len(seen)))
                else:
                    cells = nb201_cells(size, next_cell)
                    next_cell += size
                    seen.extend(cells)
                roll = rng.random()
                kind = "predict" if roll < 0.85 else "bad" if roll < 0.93 else "missing" if roll < 0.97 else "predictors"
                pool.submit(one, kind, {"architectures": cells})
            time.sleep(0.25)
    return statuses


def series_label(legend: str, metric: dict[str, str]) -> str:
    label = legend
    for key, value in metric.items():
        label = label.replace("{{" + key + "}}", value)
    return label or ", ".join(f"{k}={v}" for k, v in metric.items()) or "value"


SCALE = {"s": (1000.0, "ms"), "percentunit": (100.0, "%"), "reqps": (1.0, "req/s"), "ops": (1.0, "/s"), "short": (1.0, "")}


def draw_timeseries(ax: Any, panel: dict[str, Any], prom: Prometheus, start: float, end: float) -> None:
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    factor, suffix = SCALE.get(unit, (1.0, ""))
    stacked = panel["fieldConfig"]["defaults"].get("custom", {}).get("stacking", {}).get("mode") == "normal"
    drawn = 0
    base: dict[float, float] = {}
    for target in panel["targets"]:
        expr = substitute(target["expr"], rate_interval=RATE_WINDOW, interval="1s", range_=f"{int(end - start)}s")
        for series in prom.query_range(expr, start, end, 1.0):
            xs = [float(t) - start for t, _ in series["values"]]
            ys = [float(v) * factor for _, v in series["values"]]
            label = series_label(target.get("legendFormat", ""), series["metric"])
            if stacked:  # as Grafana's "normal" stacking: each series on top of the ones before
                lows = [base.get(x, 0.0) for x in xs]
                highs = [lo + y for lo, y in zip(lows, ys, strict=True)]
                ax.fill_between(xs, lows, highs, linewidth=0.8, alpha=0.7, label=label)
                base.update(zip(xs, highs, strict=True))
            else:
                ax.plot(xs, ys, linewidth=1.2, label=label)
            drawn += 1
    ax.set_xlim(0, end - start)
    top = ax.get_ylim()[1]
    ax.set_ylim(-0.02 * top, top)  # a series at 0 (no cache errors) stays visible above the axis
    ax.set_xlabel("seconds", fontsize=7)
    ax.set_ylabel(suffix, fontsize=7)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=6, loc="upper left", ncol=2 if drawn > 4 else 1, framealpha=0.6)


def draw_stat(ax: Any, panel: dict[str, Any], prom: Prometheus, start: float, end: float) -> None:
    (target,) = panel["targets"]
    expr = substitute(target["expr"], rate_interval=RATE_WINDOW, interval="1s", range_=f"{int(end - start)}s")
    result = prom.query(expr, at=end)
    value = float(result[0]["value"][1]) if result else float("nan")
    unit = panel["fieldConfig"]["defaults"].get("unit", "short")
    text = f"{100 * value:.1f} %" if unit == "percentunit" else f"{value:.0f}"
    ax.text(0.5, 0.6, text, ha="center", va="center", fontsize=26, color="#2a7", weight="bold", transform=ax.transAxes)
    ax.axis("off")


def draw_table(ax: Any, panel: dict[str, Any], prom: Prometheus, start: float, end: float) -> None:
    (target,) = panel["targets"]
    rows = [r["metric"] for r in prom.query(substitute(target["expr"]), at=end)]
    columns = ["predictor", "version", "provider", "instance"]
    ax.axis("off")
    if rows:
        table = ax.table(cellText=[[r.get(c, "") for c in columns] for r in rows], colLabels=columns, loc="upper center")
        table.auto_set_font_size(False)
        table.set_fontsize(9)
        table.scale(1, 1.6)


def render(prom: Prometheus, start: float, end: float, out: Path, subtitle: str) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    panels = dashboard_panels()
    height = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(20, height * 0.62))
    grid = GridSpec(height, 24, figure=fig, hspace=2.2, wspace=1.6, top=0.97, bottom=0.02, left=0.04, right=0.99)
    for panel in panels:
        pos = panel["gridPos"]
        ax = fig.add_subplot(grid[pos["y"] + 1 : pos["y"] + pos["h"], pos["x"] : pos["x"] + pos["w"]])
        ax.set_title(panel["title"], fontsize=10, loc="left", weight="bold")
        {"timeseries": draw_timeseries, "stat": draw_stat, "table": draw_table}[panel["type"]](ax, panel, prom, start, end)
    fig.suptitle(f"{dashboard['title']} (rendered from Prometheus with matplotlib) - {subtitle}", fontsize=13, y=0.995)
    fig.savefig(out, dpi=80, bbox_inches="tight")
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0, help="how long to drive the load")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    binary = find_prometheus()
    predictors = shipped_predictor_dir()
    if binary is None or predictors is None:
        print("needs a prometheus binary on PATH (apt-get install prometheus) and the shipped predictor", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with run_service(predictors, workdir) as service, run_prometheus(binary, workdir, [service.url[len("http://"):]]) as prom:
            prom.wait_for_scrapes(2)
            start = time.time()
            statuses = load(service.url, args.seconds)
            prom.wait_for_scrapes(3)
            end = time.time()
            print(f"traffic: {dict(sorted(statuses.items()))}")
            render(prom, start, end, args.out, f"{args.seconds:.0f} s of synthetic load, shipped predictor, CPU")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
