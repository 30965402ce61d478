#!/usr/bin/env bash
# Loopback load benchmark of the miss path: the proxy (release build, no cache, its own process)
# against the S3 origin directly (s3s-fs, its own process, hit through presigned URLs), for 1 KiB,
# 64 KiB and 1 MiB objects. With coalescing off every request is routing, SigV4 signing, one origin
# GET and streaming the body back; with it on (the default), concurrent requests for the same object
# share origin fetches, which is what 64 clients hammering three objects mostly do.
#
#   bash scripts/bench-load.sh            # 10 s per run, 64 connections
#   DURATION=30 CONNECTIONS=128 bash scripts/bench-load.sh
#
# Needs wrk (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh

bench_setup
COALESCED_PORT=${COALESCED_PORT:-9182}
start_proxy "$PROXY_PORT" "coalescing: {enabled: false}"
start_proxy "$COALESCED_PORT" ""

echo "| object | origin direct req/s | proxy, no coalescing | proxy / origin | origin p50 / p99 | proxy p50 / p99 | proxy with coalescing |"
echo "|---|---|---|---|---|---|---|"
for key in obj-1k obj-64k obj-1m; do
    IFS='|' read -r o_rps o_mbs o_p50 o_p99 <<<"$(run "$(presigned "$key")")"
    IFS='|' read -r p_rps p_mbs p_p50 p_p99 <<<"$(run "http://127.0.0.1:$PROXY_PORT/bench/$key")"
    IFS='|' read -r c_rps c_mbs c_p50 c_p99 <<<"$(run "http://127.0.0.1:$COALESCED_PORT/bench/$key")"
    ratio=$(awk -v a="$p_rps" -v b="$o_rps" 'BEGIN { printf "%.0f%%", 100 * a / b }')
    echo "| $key | $o_rps | $p_rps | $ratio | $o_p50 / $o_p99 | $p_p50 / $p_p99 | $c_rps req/s, p99 $c_p99 |"
done
echo
machine
