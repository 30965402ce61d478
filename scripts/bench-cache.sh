#!/usr/bin/env bash
# Loopback benchmark of cache hits: the proxy's memory tier against nginx's proxy_cache (Debian's
# nginx-light, cache lock on), both in front of the same s3s-fs origin, in the same run, for 1 KiB,
# 64 KiB and 1 MiB objects at 64 connections; and the proxy with a disk tier only (disk hits). All
# are warmed first, so every measured request is a hit. nginx reaches the SigV4-protected origin
# through presigned URLs. ROUNDS (default 2) repeats the whole table; the resident memory of each
# server after each run shows whether it stays flat. Each server's own CPU time per request (from
# /proc) is beside its req/s: wrk shares the cores, so req/s ratios depend on the machine more than
# CPU per request does.
#
#   bash scripts/bench-cache.sh
#
# Needs wrk and nginx (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
NGINX_PORT=${NGINX_PORT:-9190}
DISK_PORT=${DISK_PORT:-9181}

need nginx nginx-light
bench_setup
start_proxy "$PROXY_PORT" "cache:
  cache_layers: [memory]
  default_ttl_seconds: 3600
  memory: {max_cache_size_mb: 256, max_item_size_mb: 16}"
memory_pid=${pids[-1]}
start_proxy "$DISK_PORT" "cache:
  cache_layers: [disk]
  disk: {cache_dir: '$work/disk-cache', max_disk_cache_size_mb: 1024}"
disk_pid=${pids[-1]}
# rss PID...: resident memory of the processes, in MiB.
rss() { local kb=0 p; for p in "$@"; do kb=$((kb + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo "$((kb / 1024)) MiB"; }

mkdir -p "$work/nginx-cache"
chmod 755 "$work" # nginx workers run as an unprivileged user
{
    echo "worker_processes $(nproc); daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log warn;"
    echo "events { worker_connections 4096; }"
    echo "http {"
    echo "  access_log off;"
    echo "  proxy_cache_path $work/nginx-cache levels=1:2 keys_zone=s3:64m max_size=1g inactive=60m use_temp_path=off;"
    echo "  server {"
    echo "    listen 127.0.0.1:$NGINX_PORT;"
    echo "    proxy_cache s3; proxy_cache_lock on; proxy_cache_valid 200 60m; proxy_cache_key \$uri;"
    echo "    proxy_http_version 1.1; proxy_set_header Connection \"\";"
    for key in obj-1k obj-64k obj-1m; do
        echo "    location = /bench/$key { proxy_pass $(presigned "$key"); }"
    done
    echo "  }"
    echo "}"
} >"$work/nginx.conf"
nginx -c "$work/nginx.conf" -p "$work" &
pids+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINX_PORT/bench/obj-1k" && break; sleep 0.1; done

nginx_master=${pids[-1]}
# nginx's master and its workers (read again per run: its cache loader exits after a minute).
nginx_pids() { echo "$nginx_master $(pgrep -P "$nginx_master" | xargs)"; }

echo "| round | object | server | req/s | p50 | p99 | throughput | server CPU per request | RSS after the run |"
echo "|---|---|---|---|---|---|---|---|---|"
for round in $(seq 1 "${ROUNDS:-2}"); do
for key in obj-1k obj-64k obj-1m; do
    for server in yatagarasu nginx "yatagarasu (disk tier only)"; do
        port=$PROXY_PORT pid=$memory_pid
        [ "$server" = nginx ] && port=$NGINX_PORT pid=$(nginx_pids)
        [ "$server" = "yatagarasu (disk tier only)" ] && port=$DISK_PORT pid=$disk_pid
        url="http://127.0.0.1:$port/bench/$key"
        for _ in 1 2 3; do curl -sf -o /dev/null "$url"; done # warm: every measured request is a hit
        # shellcheck disable=SC2086 # pid may list several processes
        ticks=$(cpu_ticks $pid)
        out=$(run "$url")
        # shellcheck disable=SC2086
        ticks=$(($(cpu_ticks $pid) - ticks))
        IFS='|' read -r rps mbs p50 p99 <<<"$out"
        cpu=$(us_per_request "$ticks" "$(awk -v r="$rps" -v d="$DURATION" 'BEGIN { print int(r * d) }')")
        if [ "$server" = nginx ]; then mem=$(rss $(pgrep -f "nginx: worker")); else mem=$(rss "$pid"); fi
        echo "| $round | $key | $server | $rps | $p50 | $p99 | $mbs/s | $cpu us | $mem |"
    done
done
done
echo
machine
