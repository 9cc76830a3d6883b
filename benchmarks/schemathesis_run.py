"""Schemathesis against the live service's OpenAPI schema (shipped predictors): every generated request, valid or
invalid, must get a non-5xx answer. Writes the run summary to benchmarks/results/schemathesis.md.

Command: ``python -m benchmarks.schemathesis_run [--max-examples N]`` (schemathesis is in the dev extra).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.machine import describe_machine
from service.app import create_app
from service.settings import Settings
from tests.live_server import LiveServer

RESULTS = Path(__file__).parent / "results"
CHECKS = "not_a_server_error,negative_data_rejection,status_code_conformance"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    server = LiveServer(create_app(Settings(providers="cpu"))).start()
    command = [
        str(Path(sys.executable).parent / "st"), "run", f"{server.url}/openapi.json", "--checks", CHECKS,
        "--max-examples", str(args.max_examples), "--seed", str(args.seed), "--no-color",
    ]
    start = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    finally:
        server.stop()
    seconds = time.perf_counter() - start
    output = re.sub(r"http://127\.0\.0\.1:\d+", "http://127.0.0.1:PORT", result.stdout + result.stderr)
    print(output)
    lines = [
        "# Schemathesis against the OpenAPI schema", "",
        f"Machine: {describe_machine()}. Service: shipped predictors, CPU, default limits, in-process cache.",
        f"Command: `python -m benchmarks.schemathesis_run --max-examples {args.max_examples} --seed {args.seed}` "
        f"(schemathesis checks: {CHECKS}); exit status {result.returncode}; {seconds:.0f} s.", "",
        "```", output.strip(), "```", "",
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "schemathesis.md").write_text("\n".join(lines))
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
