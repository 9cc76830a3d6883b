"""Run the hostile-input corpus (tests/hostile/corpus.json) against the real app with the shipped predictors.

Usage: ``python -m benchmarks.hostile_corpus`` - prints a markdown table (name, description, status, code, expected,
ok, milliseconds) and writes benchmarks/results/hostile_corpus.md and .json. The app runs in-process (TestClient with
its lifespan) on model/predictors/; entries with ``settings`` get their own app with those ARCHCAST overrides.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.machine import describe_machine

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
COMMAND = "python -m benchmarks.hostile_corpus"


def run() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(corpus entries, one result row per entry)."""
    sys.path.insert(0, str(ROOT / "tests"))
    # tests/hostile, importable once tests/ is on the path
    from hostile.generators import small_conv_net
    from hostile.runner import Clients, load_corpus, send

    from model.onnx_graph import parse_onnx

    parse_onnx(small_conv_net().SerializeToString())  # warm-up: imports shape inference, so timings are steady-state
    entries = load_corpus()
    clients = Clients()
    rows = []
    try:
        for entry in entries:
            outcome = send(clients.get(entry.get("settings")), entry)
            rows.append({
                "name": entry["name"],
                "description": entry["description"],
                "status": outcome.status,
                "code": outcome.code,
                "expected": f"{entry['expect_status']} {entry['expect_code']}",
                "ok": outcome.ok(entry),
                "ms": round(outcome.seconds * 1000, 1),
                "bytes_sent": outcome.bytes_sent,
                "bytes_read": outcome.bytes_read,
                "opened": outcome.opened,
            })
    finally:
        clients.close()
    return entries, rows


def markdown(rows: list[dict[str, Any]], machine: str) -> str:
    passed = sum(row["ok"] for row in rows)
    lines = [
        "# Hostile-input corpus",
        "",
        f"Command: `{COMMAND}`  ",
        f"Machine: {machine}  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        "Predictors: model/predictors/ (shipped), in-process app with its lifespan (TestClient); one warm-up parse first.  ",
        f"Result: {passed}/{len(rows)} entries answered with the expected status and code; "
        f"{sum(row['status'] >= 500 for row in rows)} server errors.",
        "",
        "| name | description | status | code | expected | ok | ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        description = row["description"].replace("|", "\\|")
        ok = "yes" if row["ok"] else "**NO**"
        lines.append(
            f"| {row['name']} | {description} | {row['status']} | {row['code']} | {row['expected']} | {ok} | {row['ms']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    _, rows = run()
    machine = describe_machine()
    text = markdown(rows, machine)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hostile_corpus.md").write_text(text)
    payload = {"command": COMMAND, "machine": machine, "results": rows}
    (RESULTS / "hostile_corpus.json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0 if all(row["ok"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
