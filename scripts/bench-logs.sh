#!/usr/bin/env bash
# Loopback load benchmark of what request log lines cost on the hit path: two proxies in front of
# one origin, alike but for the log level (warn: no request lines; info: a line per request, to a
# file as a log collector would read it), serving 1 KiB memory-cache hits; rounds alternate the two.
#
#   bash scripts/bench-logs.sh             # 5 rounds, 10 s per run, 64 connections
#
# Needs wrk (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-5}
LOGGED_PORT=${LOGGED_PORT:-9184}

bench_setup
cache="cache: {cache_layers: [memory]}"
start_proxy "$PROXY_PORT" "$cache"
PROXY_LOG=info start_proxy "$LOGGED_PORT" "$cache"
for port in "$PROXY_PORT" "$LOGGED_PORT"; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/bench/obj-1k"
done

rps() { run "$@" | cut -d'|' -f1; }
echo "| round | request lines off req/s | request lines on req/s | on vs off |"
echo "|---|---|---|---|"
off_sum=0; on_sum=0
for i in $(seq 1 "$ROUNDS"); do
    off=$(rps "http://127.0.0.1:$PROXY_PORT/bench/obj-1k")
    on=$(rps "http://127.0.0.1:$LOGGED_PORT/bench/obj-1k")
    off_sum=$(awk -v a="$off_sum" -v b="$off" 'BEGIN { print a + b }')
    on_sum=$(awk -v a="$on_sum" -v b="$on" 'BEGIN { print a + b }')
    echo "| $i | $off | $on | $(awk -v a="$on" -v b="$off" 'BEGIN { printf "%+.1f%%", 100 * (a - b) / b }') |"
done
echo "| all | $off_sum | $on_sum | $(awk -v a="$on_sum" -v b="$off_sum" 'BEGIN { printf "%+.1f%%", 100 * (a - b) / b }') |"
lines=$(grep -c 'INFO request:\|"message":"request"' "$work/proxy-$LOGGED_PORT.out" || true)
echo
echo "request lines written by the logging proxy: $lines"
machine
