#!/usr/bin/env bash
# 64 concurrent single-architecture clients (wrk, a C load generator, so the client is not the bottleneck) against
# `archcast serve` with the cache off: one worker with dynamic batching on and off, then ARCHCAST_WORKERS=2 with it on
# (default ORT threads: each worker gets its share of the CPUs); 3 x 10 s each after a 3 s warm-up.
# Prints and writes benchmarks/results/concurrency_wrk.md (or $OUT). Needs Debian's wrk.
#   bash benchmarks/concurrency_wrk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/wrk_lib.sh
port=${PORT:-8031}
out=${OUT:-benchmarks/results/concurrency_wrk.md}
{
  report_header "64 concurrent clients, one NB201 cell per request, cache off" "\`bash benchmarks/concurrency_wrk.sh\` (wrk -t1 -c64 -d10s, 3 runs per mode)."
  echo "| workers | dynamic batching | run | requests/s | p50 | p99 |"
  echo "|---|---|---|---|---|---|"
} > "$out"
for mode in "1 true" "1 false" "2 true"; do
  read -r workers batching <<<"$mode"
  serve "$port" ARCHCAST_CACHE_SIZE=0 ARCHCAST_WORKERS="$workers" ARCHCAST_DYNAMIC_BATCHING="$batching"
  warm_up "$port" 64
  for run in 1 2 3; do
    read -r rps p50 _ p99 <<<"$(wrk_stats "$port" 64)"
    echo "| $workers | $batching | $run | $rps | $p50 | $p99 |" >> "$out"
  done
  metrics=$(curl -s "http://127.0.0.1:$port/metrics")  # with 2 workers, merged over both (multiprocess mode)
  sum=$(awk '/^archcast_batch_size_sum/ {print $2}' <<<"$metrics")
  count=$(awk '/^archcast_batch_size_count/ {print $2}' <<<"$metrics")
  echo "| $workers | $batching | architectures per ONNX run | $(awk -v s="$sum" -v c="$count" 'BEGIN {printf "%.1f", s / c}') | | |" >> "$out"
  stop_server "$port"
done
cat "$out"
