#!/usr/bin/env bash
# Loopback benchmark of the miss path: every request asks for a 4 KiB object nobody asked for
# before, so the proxy (memory cache on) and nginx (`proxy_cache`, cache lock on) both fetch it
# from the origin, store it and answer; and the same requests straight to the origin. Alternating
# rounds in one run. Besides req/s (which depends on how the cores are shared with the origin and
# the load generator), each server's own CPU time per request, from /proc.
#
#   bash scripts/bench-miss.sh            # ROUNDS=2 DURATION=5 MISS_OBJECTS=400000
#   PROXY_FEATURES=mimalloc bash scripts/bench-miss.sh   # the proxy on mimalloc
#
# nginx cannot sign, so the origin here needs no signature (s3s-fs, SigV4 off) and the proxy reads
# it anonymously: neither signs, which spares the proxy its SigV4 work (about 1.5 us a request).
# Needs wrk and nginx (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-5} # before bench-lib.sh, whose default is 10
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-2}
MISS_OBJECTS=${MISS_OBJECTS:-400000}
NGINX_PORT=${NGINX_PORT:-9190}

need nginx nginx-light
echo "creating $MISS_OBJECTS objects of 4 KiB..." >&2
OPEN=1 MISS_OBJECTS=$MISS_OBJECTS ORIGIN_WAIT=300 bench_setup
ANONYMOUS=1 start_proxy "$PROXY_PORT" "cache:
  cache_layers: [memory]
  default_ttl_seconds: 3600
  memory: {max_cache_size_mb: 2048, max_item_size_mb: 16}"
proxy_pid=${pids[-1]}
origin_pid=${pids[0]}

mkdir -p "$work/nginx-cache"
chmod 755 "$work" # nginx workers run as an unprivileged user
cat >"$work/nginx.conf" <<NGINX
worker_processes $(nproc); daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  upstream origin { server 127.0.0.1:$ORIGIN_PORT; keepalive 64; }
  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=s3:64m max_size=4g inactive=60m use_temp_path=off;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /bench/ {
      proxy_cache s3; proxy_cache_lock on; proxy_cache_valid 200 60m; proxy_cache_key \$uri;
      proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_pass http://origin;
    }
  }
}
NGINX
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/bench/obj-1k" && break; sleep 0.1; done
nginx_master=${pids[-1]}
# nginx's master and its workers (read again per run: its cache loader exits after a minute).
nginx_pids() { echo "$nginx_master $(pgrep -P "$nginx_master" | xargs)"; }

# Each wrk thread walks its own residue class of keys from OFFSET, so no key repeats within a run;
# each run starts past the keys the runs before it used.
cat >"$work/miss.lua" <<'LUA'
local next_id = 0
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
end
function init(args)
  n = tonumber(args[1]) + id
  step = tonumber(args[2])
end
function request()
  local path = string.format("/bench/miss/%07d", n)
  n = n + step
  return wrk.format("GET", path)
end
LUA

offset=0
# miss_run PORT PIDS -> "req/s|p50|p99|requests|CPU us per request of PIDS"
miss_run() {
    local out ticks
    # shellcheck disable=SC2086 # PIDS is a list
    ticks=$(cpu_ticks $2)
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/miss.lua" \
        "http://127.0.0.1:$1/" -- "$offset" "$THREADS")
    # shellcheck disable=SC2086
    ticks=$(($(cpu_ticks $2) - ticks))
    if grep -q "Non-2xx" <<<"$out"; then echo "non-2xx answers (out of keys?) on port $1" >&2; fi
    local n
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    echo "$(awk '/Requests\/sec/ {print $2}' <<<"$out")|$(awk '$1=="50%" {print $2}' <<<"$out")|$(awk '$1=="99%" {print $2}' <<<"$out")|$n|$(us_per_request "$ticks" "$n")"
}

echo "| round | server | req/s | p50 | p99 | server CPU per request | vs nginx | vs origin direct |"
echo "|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "$ROUNDS"); do
    # Straight to the origin (no cache: the keys may repeat), then the two caches on fresh keys.
    saved=$offset offset=0
    IFS='|' read -r origin_rps p50 p99 _ cpu <<<"$(miss_run "$ORIGIN_PORT" "$origin_pid")"
    offset=$saved
    echo "| $round | origin direct | $origin_rps | $p50 | $p99 | $cpu us | | |"
    IFS='|' read -r proxy_rps proxy_p50 proxy_p99 used proxy_cpu <<<"$(miss_run "$PROXY_PORT" "$proxy_pid")"
    offset=$((offset + used + 1000))
    IFS='|' read -r nginx_rps p50 p99 used cpu <<<"$(miss_run "$NGINX_PORT" "$(nginx_pids)")"
    offset=$((offset + used + 1000))
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
    echo "| $round | yatagarasu | $proxy_rps | $proxy_p50 | $proxy_p99 | $proxy_cpu us | $(ratio "$proxy_rps" "$nginx_rps") | $(ratio "$proxy_rps" "$origin_rps") |"
    echo "| $round | nginx | $nginx_rps | $p50 | $p99 | $cpu us | | $(ratio "$nginx_rps" "$origin_rps") |"
done
echo
echo "keys used: $offset of $MISS_OBJECTS"
[ "$offset" -le "$MISS_OBJECTS" ] || echo "ran out of keys: raise MISS_OBJECTS or lower DURATION" >&2
machine
