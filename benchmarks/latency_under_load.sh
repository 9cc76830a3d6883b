#!/usr/bin/env bash
# Per-request latency of 64 concurrent single-cell clients that think between queries (cache off): each wrk connection
# waits an exponential time of mean THINK_MS before each request (benchmarks/wrk_single_nb201.lua), so the offered load
# is about 64 / (THINK_MS + latency) requests/s; THINK_MS=0 is the saturated closed loop of concurrency_wrk.sh. One
# worker and ARCHCAST_WORKERS=2, dynamic batching on; 2 x 10 s per point after a 3 s warm-up.
# Prints and writes benchmarks/results/latency_under_load.md (or $OUT). Needs Debian's wrk. The servers inherit the
# environment: ARCHCAST_GC_TUNING=false OUT=benchmarks/results/latency_under_load_gc_default.md runs Python's GC defaults.
#   bash benchmarks/latency_under_load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/wrk_lib.sh
port=${PORT:-8033}
out=${OUT:-benchmarks/results/latency_under_load.md}
{
  report_header "64 concurrent clients with think time, one NB201 cell per request, cache off" "\`bash benchmarks/latency_under_load.sh\` (wrk -t1 -c64 -d10s, exponential think time of mean THINK_MS per client, 2 runs per point); ARCHCAST_GC_TUNING=${ARCHCAST_GC_TUNING:-true}."
  echo "| workers | mean think ms | run | requests/s | p50 | p90 | p99 |"
  echo "|---|---|---|---|---|---|---|"
} > "$out"
for workers in 1 2; do
  serve "$port" ARCHCAST_CACHE_SIZE=0 ARCHCAST_WORKERS="$workers"
  warm_up "$port" 64
  for think in 200 100 50 25 0; do
    for run in 1 2; do
      read -r rps p50 p90 p99 <<<"$(wrk_stats "$port" 64 "$think")"
      echo "| $workers | $think | $run | $rps | $p50 | $p90 | $p99 |" >> "$out"
    done
  done
  stop_server "$port"
done
cat "$out"
