#!/usr/bin/env bash
# Per-request latency of 64 concurrent single-cell clients that think between queries (cache off): each wrk connection
# waits an exponential time of mean THINK_MS before each request (benchmarks/wrk_paced_nb201.lua), so the offered load is
# about 64 / (THINK_MS + latency) requests/s; THINK_MS=0 is the saturated closed loop of concurrency_wrk.sh. One worker
# and ARCHCAST_WORKERS=2, dynamic batching on; 2 x 10 s per point after a 3 s warm-up.
# Prints and writes benchmarks/results/latency_under_load.md (or $OUT). Needs Debian's wrk. The servers inherit the
# environment: ARCHCAST_GC_TUNING=false OUT=benchmarks/results/latency_under_load_gc_default.md runs Python's GC defaults.
#   bash benchmarks/latency_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-8033}
out=${OUT:-benchmarks/results/latency_under_load.md}
{
  echo "# 64 concurrent clients with think time, one NB201 cell per request, cache off"
  echo
  echo "Machine: $(.venv/bin/python -c 'from benchmarks.machine import describe_machine; print(describe_machine())'); server and wrk on the same machine (loopback)."
  echo "Command: \`bash benchmarks/latency_under_load.sh\` (wrk -t1 -c64 -d10s, exponential think time of mean THINK_MS per client, 2 runs per point); ARCHCAST_GC_TUNING=${ARCHCAST_GC_TUNING:-true}."
  echo
  echo "| workers | mean think ms | run | requests/s | p50 | p90 | p99 |"
  echo "|---|---|---|---|---|---|---|"
} > "$out"
for workers in 1 2; do
  ARCHCAST_PORT=$port ARCHCAST_CACHE_SIZE=0 ARCHCAST_WORKERS=$workers ARCHCAST_LOG_LEVEL=warning .venv/bin/archcast serve &
  server=$!
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.5; done
  wrk -t1 -c64 -d3s -s benchmarks/wrk_single_nb201.lua "http://127.0.0.1:$port" >/dev/null
  for think in 200 100 50 25 0; do
    for run in 1 2; do
      result=$(THINK_MS=$think wrk -t1 -c64 -d10s --latency -s benchmarks/wrk_paced_nb201.lua "http://127.0.0.1:$port")
      rps=$(awk '/Requests\/sec/ {print $2}' <<<"$result")
      p50=$(awk '$1 == "50%" {print $2}' <<<"$result")
      p90=$(awk '$1 == "90%" {print $2}' <<<"$result")
      p99=$(awk '$1 == "99%" {print $2}' <<<"$result")
      echo "| $workers | $think | $run | $rps | $p50 | $p90 | $p99 |" >> "$out"
    done
  done
  kill "$server"; wait "$server" 2>/dev/null || true
  for _ in $(seq 40); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null || break; sleep 0.5; done
done
cat "$out"
