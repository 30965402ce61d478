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

alternate "$ROUNDS" "request lines" "http://127.0.0.1:$PROXY_PORT/bench/obj-1k" "http://127.0.0.1:$LOGGED_PORT/bench/obj-1k"
lines=$(grep -c 'INFO request:\|"message":"request"' "$work/proxy-$LOGGED_PORT.out" || true)
echo
echo "request lines written by the logging proxy: $lines"
machine
