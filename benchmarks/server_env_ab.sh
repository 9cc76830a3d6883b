#!/usr/bin/env bash
# A/B of server environments under single-cell load (cache off, one worker unless a configuration says otherwise):
# each configuration in turn, ROUNDS times interleaved so a drifting machine hits all of them: a lone client (wrk -c1),
# then 64 clients with exponential think times THINKS (ms; 0 = saturated closed loop), WRK_SECONDS (default 8) each.
# Each argument is one configuration: NAME=VALUE pairs for `archcast serve` ("" = the defaults).
# Prints and writes $OUT (default benchmarks/results/server_env_ab.md). Needs Debian's wrk.
#   OUT=benchmarks/results/ort_small_batch_wrk.md bash benchmarks/server_env_ab.sh "ARCHCAST_ORT_SMALL_BATCH=0" ""
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/wrk_lib.sh
port=${PORT:-8036}
out=${OUT:-benchmarks/results/server_env_ab.md}
export WRK_SECONDS=${WRK_SECONDS:-8}
configs=("$@")
[ ${#configs[@]} -gt 0 ] || { echo "usage: $0 CONFIG [CONFIG ...]" >&2; exit 2; }
{
  report_header "Server environments A/B, one NB201 cell per request, cache off" "\`bash benchmarks/server_env_ab.sh$(printf ' "%s"' "${configs[@]}")\` (ROUNDS=${ROUNDS:-3}, THINKS=${THINKS:-200 100 0}, wrk -t1, ${WRK_SECONDS} s per point after a 3 s warm-up)."
  echo "| round | configuration | clients | mean think ms | requests/s | p50 | p90 | p99 |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$out"
for round in $(seq "${ROUNDS:-3}"); do
  for config in "${configs[@]}"; do
    # shellcheck disable=SC2086 # a configuration is a list of NAME=VALUE words
    serve "$port" ARCHCAST_CACHE_SIZE=0 ARCHCAST_WORKERS=1 $config
    warm_up "$port" 64
    read -r rps p50 p90 p99 <<<"$(wrk_stats "$port" 1 0)"
    echo "| $round | ${config:-defaults} | 1 | 0 | $rps | $p50 | $p90 | $p99 |" >> "$out"
    for think in ${THINKS:-200 100 0}; do
      read -r rps p50 p90 p99 <<<"$(wrk_stats "$port" 64 "$think")"
      echo "| $round | ${config:-defaults} | 64 | $think | $rps | $p50 | $p90 | $p99 |" >> "$out"
    done
    stop_server "$port"
  done
done
cat "$out"
