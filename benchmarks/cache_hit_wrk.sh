#!/usr/bin/env bash
# Cache-hit latency: `archcast serve` (in-process LRU cache) warmed with all 15,625 NB201 cells, then wrk posts one random
# NB201 cell per request (every request a hit) with 1 and with 64 connections; 3 x 10 s each after a 3 s warm-up.
# Prints and writes benchmarks/results/cache_hit_wrk.md. Needs Debian's wrk.
#   bash benchmarks/cache_hit_wrk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8032}
out=benchmarks/results/cache_hit_wrk.md
ARCHCAST_PORT=$port ARCHCAST_LOG_LEVEL=warning .venv/bin/archcast serve &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done
.venv/bin/python - "$port" <<'PY'
import itertools, sys, httpx
ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
cells = [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|" for a, b, c, d, e, f in itertools.product(ops, repeat=6)]
for i in range(0, len(cells), 4096):
    body = {"architectures": [{"space": "nb201", "arch": c} for c in cells[i:i + 4096]]}
    httpx.post(f"http://127.0.0.1:{sys.argv[1]}/v1/predict", json=body, timeout=120).raise_for_status()
PY
{
  echo "# Cache hits: one NB201 cell per request, every request answered from the in-process cache"
  echo
  echo "Machine: $(.venv/bin/python -c 'from benchmarks.machine import describe_machine; print(describe_machine())'); server and wrk on the same machine (loopback)."
  echo "Command: \`bash benchmarks/cache_hit_wrk.sh\` (cache warmed with all 15,625 cells; wrk -t1 -cN -d10s, 3 runs per N)."
  echo
  echo "| connections | run | requests/s | p50 | p99 |"
  echo "|---|---|---|---|---|"
} > "$out"
for connections in 1 64; do
  wrk -t1 -c$connections -d3s -s benchmarks/wrk_single_nb201.lua "http://127.0.0.1:$port" >/dev/null
  for run in 1 2 3; do
    result=$(wrk -t1 -c$connections -d10s --latency -s benchmarks/wrk_single_nb201.lua "http://127.0.0.1:$port")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$result")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$result")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$result")
    echo "| $connections | $run | $rps | $p50 | $p99 |" >> "$out"
  done
done
metrics=$(curl -s "http://127.0.0.1:$port/metrics")
echo "" >> "$out"
echo "Cache lookups over the whole run (incl. warm-up): $(grep '^archcast_cache_requests_total' <<<"$metrics" | tr '\n' ' ')" >> "$out"
cat "$out"
