#!/usr/bin/env bash
# The HTTP actor under wrk on loopback, against nginx serving a static 200 on
# the same machine in the same run:
#   1. nginx: `return 200` of a small JSON body (one worker process: our
#      server has one I/O thread too)
#   2. the worker's GET /health (answered on the I/O thread)
#   3. the worker's POST /v1/tasks (each request is a task created in the
#      memory: store through the bridge actor and the poller; the worker
#      serves another namespace, so no step runs during the measurement)
# Rounds alternate (nginx, /health, POST, nginx, ...) so that drift in the
# machine's load shows up in both. Prints requests/s and /health's share of
# nginx's rate.
#
# Usage: bench/http_bench.sh [BUILD_DIR]   (default: build-release)
# Environment: DURATION (10s), CONNECTIONS (50), WRK_THREADS (1), ROUNDS (2).
# Needs wrk and nginx (Debian: apt-get install wrk nginx-light).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-$root/build-release}"
# The test worker: tests/runtime/ since the tests mirror the modules (built
# there by the tests, or beside the benchmarks when tests are off).
worker_bin="$build/tests/runtime/pg_worker"
[[ -x "$worker_bin" ]] || worker_bin="$build/bench/pg_worker"
duration="${DURATION:-10s}"
connections="${CONNECTIONS:-50}"
threads="${WRK_THREADS:-1}"
rounds="${ROUNDS:-2}"
for tool in wrk nginx python3; do
  command -v "$tool" >/dev/null || { echo "http_bench: $tool is missing" >&2; exit 2; }
done
[[ -x "$worker_bin" ]] || { echo "http_bench: no pg_worker in $build" >&2; exit 2; }

tmp="$(mktemp -d /tmp/tasker-http-bench.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_for() {  # url
  for _ in $(seq 100); do
    if python3 - "$1" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
urllib.request.urlopen(sys.argv[1], timeout=1).read()
EOF
    sleep 0.1
  done
  echo "http_bench: $1 did not come up" >&2
  exit 1
}

nginx_port="$(free_port)"
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  proxy_temp_path $tmp/nginx/proxy;
  fastcgi_temp_path $tmp/nginx/fastcgi;
  uwsgi_temp_path $tmp/nginx/uwsgi;
  scgi_temp_path $tmp/nginx/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      default_type application/json;
      return 200 '{"status":"ok"}';
    }
  }
}
EOF
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/logs/error.log" &
pids+=($!)

worker_port="$(free_port)"
"$worker_bin" --store=memory: --namespaces=http-bench-idle --http-port="$worker_port" \
  --log-level=warn >"$tmp/worker.log" 2>&1 &
pids+=($!)

wait_for "http://127.0.0.1:$nginx_port/"
wait_for "http://127.0.0.1:$worker_port/health"

cat >"$tmp/post.lua" <<'EOF'
wrk.method = "POST"
wrk.body = '{"namespace":"mp","name":"linear","version":"1","context":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
EOF

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk -t$threads -c$connections -d$duration, $rounds round(s); nginx $(nginx -v 2>&1 | cut -d/ -f2), worker $worker_bin"

# run <label> <wrk args...>: prints one line and appends the rate to $tmp/<label>
run() {
  local label="$1"
  shift
  local out
  out="$(wrk -t"$threads" -c"$connections" -d"$duration" --latency "$@")"
  local rps p50 p99 bad
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  bad="$(awk '/Non-2xx/ {print $NF}' <<<"$out")"
  printf '  %-22s %10s req/s   p50 %8s   p99 %8s%s\n' "$label" "$rps" "$p50" "$p99" \
    "${bad:+   NON-2xx: $bad}"
  echo "$rps" >>"$tmp/$label"
}

for round in $(seq "$rounds"); do
  echo "round $round"
  run nginx_static "http://127.0.0.1:$nginx_port/"
  run tasker_health "http://127.0.0.1:$worker_port/health"
  run tasker_create -s "$tmp/post.lua" "http://127.0.0.1:$worker_port/v1/tasks"
done

mean() { awk '{s += $1} END {printf "%.0f", s / NR}' "$tmp/$1"; }
n="$(mean nginx_static)"
h="$(mean tasker_health)"
c="$(mean tasker_create)"
echo "mean: nginx static $n req/s, /health $h req/s, POST /v1/tasks $c req/s"
awk -v h="$h" -v n="$n" -v c="$c" 'BEGIN {
  printf "/health = %.0f %% of nginx (target >= 50 %%); task creation = %.0f %% of nginx\n",
    100 * h / n, 100 * c / n }'
# bench/run's table: /health against nginx (the issue's target: >= 50 % of
# nginx's rate, a ratio of 0.5) and task creation for information.
awk -v h="$h" -v n="$n" -v c="$c" 'BEGIN {
  r = h / n
  printf "table: HTTP GET /health vs nginx static 200 (share of its rate) | %.0f req/s | %.0f req/s | %.2fx | >= 0.50x | %s\n",
    n, h, r, (r >= 0.5 ? "pass" : "miss")
  printf "table: HTTP POST /v1/tasks (memory store) vs nginx static 200 | %.0f req/s | %.0f req/s | %.2fx | - | info\n",
    n, c, c / n }'
