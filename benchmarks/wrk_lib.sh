# Shared by the wrk benchmarks (sourced, run from the repository root): start and stop `archcast serve`, and one wrk run
# of benchmarks/wrk_single_nb201.lua. WRK_SECONDS (default 10) sets each run's length.

# serve PORT [NAME=VALUE ...]: start `archcast serve` on PORT with the given environment (log level warning) and wait
# until it is ready; its pid is in $server.
serve() {
  local port=$1
  shift
  env "$@" ARCHCAST_PORT="$port" ARCHCAST_LOG_LEVEL=warning .venv/bin/archcast serve &
  server=$!
  for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && return; sleep 0.5; done
  echo "archcast serve on port $port did not become ready" >&2
  return 1
}

# stop_server PORT: stop $server and wait until PORT no longer answers.
stop_server() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  for _ in $(seq 40); do curl -sf "http://127.0.0.1:$1/healthz" >/dev/null || return 0; sleep 0.5; done
}

# warm_up PORT CONNECTIONS: a 3 s closed-loop wrk run whose figures are dropped.
warm_up() {
  wrk -t1 -c"$2" -d3s -s benchmarks/wrk_single_nb201.lua "http://127.0.0.1:$1" >/dev/null
}

# wrk_stats PORT CONNECTIONS [THINK_MS]: one timed wrk run; prints "requests/s p50 p90 p99" as wrk writes them.
# wrk corrects its percentiles for coordinated omission: each latency above twice the mean interval between a
# connection's requests adds samples below it (stats_correct in wrk.c). That matters only in closed-loop saturated runs.
wrk_stats() {
  local result
  result=$(THINK_MS=${3:-0} wrk -t1 -c"$2" -d"${WRK_SECONDS:-10}s" --latency -s benchmarks/wrk_single_nb201.lua "http://127.0.0.1:$1")
  awk '/Requests\/sec/ {r = $2} $1 == "50%" {a = $2} $1 == "90%" {b = $2} $1 == "99%" {c = $2} END {print r, a, b, c}' <<<"$result"
}

# report_header TITLE COMMAND [WHO]: the lines every wrk report starts with: title, machine, what ran on it (default
# "server and wrk"), command.
report_header() {
  echo "# $1"
  echo
  echo "Machine: $(.venv/bin/python -c 'from benchmarks.machine import describe_machine; print(describe_machine())'); ${3:-server and wrk} on the same machine (loopback)."
  echo "Command: $2"
  echo
}
