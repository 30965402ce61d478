#!/usr/bin/env bash
# Loopback load benchmark of what Prometheus metrics cost on the hit path: two proxies in front of
# one origin, alike but for `metrics: {enabled: true}`, serving 1 KiB memory-cache hits; rounds
# alternate the two, so a drift of the machine shows in both columns alike. Request log lines off.
#
#   bash scripts/bench-metrics.sh          # 5 rounds, 10 s per run, 64 connections
#
# Needs wrk (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-5}
METRICS_PORT=${METRICS_PORT:-9183}

bench_setup
cache="cache: {cache_layers: [memory]}"
start_proxy "$PROXY_PORT" "$cache"
start_proxy "$METRICS_PORT" "$cache
metrics: {enabled: true}"
for port in "$PROXY_PORT" "$METRICS_PORT"; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/bench/obj-1k"
done
curl -sf "http://127.0.0.1:$METRICS_PORT/metrics" | grep -q yatagarasu_requests_total || { echo "no metrics" >&2; exit 1; }

alternate "$ROUNDS" "metrics" "http://127.0.0.1:$PROXY_PORT/bench/obj-1k" "http://127.0.0.1:$METRICS_PORT/bench/obj-1k"
echo
machine
