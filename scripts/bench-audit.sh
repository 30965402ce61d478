#!/usr/bin/env bash
# Loopback load benchmark of what the audit log costs on the hit path: two proxies in front of one
# origin, alike but for `audit_log` (a file output, rotating at 100 MB), serving 1 KiB memory-cache
# hits; rounds alternate the two. Request log lines are off in both.
#
#   bash scripts/bench-audit.sh            # 5 rounds, 10 s per run, 64 connections
#
# Needs wrk (installed with apt-get when missing). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/bench-lib.sh
ROUNDS=${ROUNDS:-5}
AUDITED_PORT=${AUDITED_PORT:-9185}

bench_setup
cache="cache: {cache_layers: [memory]}"
start_proxy "$PROXY_PORT" "$cache"
start_proxy "$AUDITED_PORT" "$cache
audit_log:
  enabled: true
  outputs: [file]
  file: {path: \"$work/audit.log\", max_file_size_mb: 100, max_backup_files: 2}"
for port in "$PROXY_PORT" "$AUDITED_PORT"; do
    curl -sf -o /dev/null "http://127.0.0.1:$port/bench/obj-1k"
done

alternate "$ROUNDS" "audit log" "http://127.0.0.1:$PROXY_PORT/bench/obj-1k" "http://127.0.0.1:$AUDITED_PORT/bench/obj-1k"
echo
echo "audit records: $(curl -s "http://127.0.0.1:$AUDITED_PORT/metrics" | grep audit_records || echo 'metrics off'); lines in the current file: $(wc -l <"$work/audit.log")"
machine
